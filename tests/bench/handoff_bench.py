"""What handing fragments to their owner costs, against taking them all in one process.

Run:  python tests/bench/handoff_bench.py [--requests 300] [--repeats 3]

The benchmark's requests (1000 spans: 100 traces x 10 spans over 5 services) go through
the receive path as a worker runs it, in this process, with no gRPC in front:
  one process   parse + split + the engine's ingest of every trace (what `workers: 1` does)
  worker of 2   parse + split + Router.take: the traces this worker owns into its engine, the
                others encoded and handed to a second process (a HandoffServer with an engine
                of its own) over a Unix socket, waiting for its answer, as `workers: 2` does
The CPU time of each process (getrusage of this one, /proc of the owner) over the same
requests gives CPU-µs per span received, and of the owner per span it took. Traces are
decided by neither (decision_wait is long), so only the receive path and the hand-over count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sampler.config.tail_sampling import TailSamplingConfig  # noqa: E402
from sampler.decide.engine import TailSampler  # noqa: E402
from sampler.policies.registry import POLICIES  # noqa: E402
from sampler.receive.handoff import HandoffServer, PeerLink, Router  # noqa: E402
from sampler.receive.split import RequestSplitter, parse_protobuf  # noqa: E402
from sampler.telemetry.metrics import Metrics  # noqa: E402
from tests.bench.bench import build_pool  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def engine() -> TailSampler:
    config = TailSamplingConfig(
        decision_wait="1h",
        num_traces=10_000_000,
        decision_cache={"sampled_cache_size": 1, "non_sampled_cache_size": 1},
        policies=[POLICIES.validate({"name": "all", "type": "always_sample"})],
    )
    return TailSampler(config, lambda trace: None, Metrics())


def bodies(count: int) -> list[bytes]:
    pool = build_pool(20, seed=1)
    out = []
    for number in range(count):
        request = pool[number % len(pool)]
        data = request.data
        stamp = number.to_bytes(4, "big")
        for offset in request.offsets:  # fresh trace IDs, as the load generator makes them
            data[offset : offset + 4] = stamp
            data[offset + 8 : offset + 12] = stamp
        out.append(bytes(data))
    return out


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def one_process(requests: list[bytes]) -> float:
    splitter, sampler = RequestSplitter(), engine()
    started = own_cpu()
    for body in requests:
        batch = splitter.split(parse_protobuf(body))
        await sampler.wait_for_room(batch)
        sampler.ingest(batch)
    return own_cpu() - started


async def worker_of_two(requests: list[bytes], path: str, owner_pid: int) -> tuple[float, float]:
    splitter, sampler = RequestSplitter(), engine()
    router = Router(0, 2, sampler, {1: PeerLink(1, path)}, Metrics())
    await router.take(splitter.split(parse_protobuf(requests[0])), "grpc", None)  # connected before measuring
    await router.flush(30)
    started, owner_started = own_cpu(), process_cpu(owner_pid)
    for body in requests:
        await router.take(splitter.split(parse_protobuf(body)), "grpc", None)
    await router.flush(30)  # the owner has taken everything handed to it
    spent, owner_spent = own_cpu() - started, process_cpu(owner_pid) - owner_started
    await router.close()
    return spent, owner_spent


async def serve_owner(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    server = HandoffServer(listener, engine(), Metrics())
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_owner(args.serve))
        return
    requests = bodies(args.requests)
    spans = 1000 * len(requests)
    single, receiver, owner = [], [], []
    with tempfile.TemporaryDirectory() as directory:
        for repeat in range(args.repeats):
            path = os.path.join(directory, f"owner-{repeat}.sock")
            peer = subprocess.Popen(
                [sys.executable, __file__, "--serve", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert peer.stdout is not None and peer.stdout.readline().strip() == "ready"
            single.append(asyncio.run(one_process(requests)) / spans * 1e6)
            mine, theirs = asyncio.run(worker_of_two(requests, path, peer.pid))
            receiver.append(mine / spans * 1e6)
            owner.append(theirs / (spans / 2) * 1e6)
            peer.communicate("", timeout=30)
            time.sleep(0.1)
    print(f"{args.requests} requests of 1000 spans; CPU-µs per span (median of {args.repeats}):")
    print(f"  one process, per span received: parse, split, ingest             {statistics.median(single):6.2f}")
    print(f"  worker of 2, per span received: the same, handing half over      {statistics.median(receiver):6.2f}")
    print(f"  its owner, per span taken over: decode, ingest                   {statistics.median(owner):6.2f}")


if __name__ == "__main__":
    main()
