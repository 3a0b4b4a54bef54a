"""The engine alone: CPU per trace to take new traces into the window and decide them, and per
trace fragment to follow a remembered decision (late spans), on the benchmark's requests.

Run:  python tests/bench/decide_bench.py [--rounds 200] [--repeats 5] [--code OTHER_CHECKOUT]

`--code` imports `sampler` from another checkout (e.g. the main branch), so two versions of
the engine can be compared on the same machine in the same minute; run it once per version,
interleaved. Each round patches fresh trace IDs into 20 requests of 50 traces of 10 spans, splits
them (not timed), then times, in CPU seconds of this process: ingest + decide_due of the new
traces (policies: a drop that matches nothing, status_code errors, probabilistic 10%), and ingest
of the same requests again, every trace now decided (late spans: ~12% kept, ~88% dropped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--rounds", type=int, default=100, help="rounds of 1000 traces per repeat")
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[2], help="checkout to import from")
args = parser.parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.bench.bench
sys.path.insert(0, str(args.code.resolve()))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

import sampler  # noqa: E402
from sampler.config.tail_sampling import TailSamplingConfig  # noqa: E402
from sampler.decide.engine import TailSampler  # noqa: E402
from sampler.policies.registry import POLICIES  # noqa: E402
from sampler.receive.split import RequestSplitter  # noqa: E402
from sampler.telemetry.metrics import Metrics  # noqa: E402
from tests.bench.bench import build_pool  # noqa: E402

POLICY_ENTRIES = [
    {
        "name": "no-health",
        "type": "drop",
        "drop": {
            "drop_sub_policy": [
                {
                    "name": "health",
                    "type": "string_attribute",
                    "string_attribute": {"key": "http.route", "values": ["/h"]},
                }
            ]
        },
    },
    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    {"name": "some", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}},
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def one_repeat(rounds: int, pool: list, round_base: int) -> tuple[float, float, int]:
    """(CPU seconds deciding, CPU seconds on late fragments, traces) over `rounds` rounds."""
    clock = Clock()
    config = TailSamplingConfig.model_validate(
        {
            "decision_wait": "10s",
            "num_traces": 100_000,
            "policies": [POLICIES.validate(entry) for entry in POLICY_ENTRIES],
            "decision_cache": {"sampled_cache_size": 1_000_000, "non_sampled_cache_size": 1_000_000},
        }
    )
    engine = TailSampler(config, lambda trace: None, Metrics(), clock)
    splitter = RequestSplitter()
    deciding = late = 0.0
    traces = 0
    for number in range(rounds):
        prefix = (round_base + number).to_bytes(8, "big")
        bodies = []
        for request in pool:
            data = bytearray(request.data)
            for offset in request.offsets:
                data[offset : offset + 8] = prefix
            bodies.append(bytes(data))
        batches = [splitter.split(ExportTraceServiceRequest.FromString(body)) for body in bodies]
        again = [splitter.split(ExportTraceServiceRequest.FromString(body)) for body in bodies]
        started = time.process_time()
        for batch in batches:
            traces += engine.ingest(batch)
        clock.now += 10
        engine.decide_due()
        deciding += time.process_time() - started
        started = time.process_time()
        for batch in again:
            engine.ingest(batch)
        late += time.process_time() - started
    return deciding, late, traces


def main() -> None:
    pool = build_pool(20, seed=1)
    print(f"sampler from {Path(sampler.__file__).parent}")
    per_trace, per_late = [], []
    for repeat in range(args.repeats):
        deciding, late, traces = one_repeat(args.rounds, pool, repeat * args.rounds)
        per_trace.append(deciding / traces * 1e6)
        per_late.append(late / traces * 1e6)
    print(f"{args.rounds * 1000} traces of 10 spans per repeat, {args.repeats} repeats (CPU µs, median [runs])")
    print(
        f"  ingest + decide, per trace:       {statistics.median(per_trace):6.2f}  {[round(v, 2) for v in per_trace]}"
    )
    print(f"  late fragment, per trace decided: {statistics.median(per_late):6.2f}  {[round(v, 2) for v in per_late]}")


if __name__ == "__main__":
    main()
