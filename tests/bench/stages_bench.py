"""CPU per span of each stage in one process: the protobuf-object splitter against the wire-level
splitter (sampler/receive/wire_split.py), as plain Python and compiled with mypyc; then the span
metrics and the stages after them (window ingest, decisions and batching), plain and compiled, to
show where compiling pays. The whole daemon is measured by cpu_bench.py (--daemon-builds).

Run:  python tests/bench/stages_bench.py [--repeats 7] [--rounds 3] [--no-compile] [--builds shipped]

Every variant runs in a child process of its own, on a copy of sampler/ in a temporary
directory: the plain modules, or the same modules compiled with mypyc (needs mypy[mypyc] and a C
compiler; the three builds take a minute or two). Two request shapes, each a set of requests of
1000 spans (5 services, ~10 attributes a span, an exception event on 1 span in 10, 10% of traces
with an error): 100 traces x 10 spans, and 1000 traces x 1 span. Figures are CPU microseconds
per span (time.process_time), the best of --repeats passes over the set; the machine is shared,
so compare variants within one run. Trace IDs are fresh in every pass, so every trace is new.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("frontend", "cart", "checkout", "payment", "inventory")


def setup_constants() -> tuple[list[str], list[str]]:
    """setup.py's compiled modules (HOT_PATH) and mypy flags, read without running it."""
    import ast

    found = {}
    for node in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    return ast.literal_eval(found["HOT_PATH"]), ast.literal_eval(found["MYPY_FLAGS"])


SHIPPED, MYPY_FLAGS = setup_constants()
# Builds: the wire modules alone, the per-span modules, and what setup.py compiles.
BUILDS = {
    "wire": [m for m in SHIPPED if "/receive/" in m],
    "spans": [m for m in SHIPPED if "/receive/" in m or "/spans/" in m],
    "shipped": SHIPPED,
}


# --- requests -------------------------------------------------------------------------------


def build_requests(count: int, traces: int, spans_per_trace: int, seed: int) -> list[tuple[bytes, list[int]]]:
    """Serialized requests, each with the offsets of its trace IDs (to make them fresh per pass)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        request = ExportTraceServiceRequest()
        scopes = {}
        for service in SERVICES:
            resource_spans = request.resource_spans.add()
            for key, value in (("service.name", service), ("service.version", "1.4.2"), ("host.name", "node-7d9f")):
                resource_spans.resource.attributes.add(key=key, value=AnyValue(string_value=value))
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = f"io.opentelemetry.{service}"
            scope_spans.scope.version = "1.25.0"
            scopes[service] = scope_spans
        now = 1_700_000_000_000_000_000 + rng.randrange(10**12)
        trace_ids = []
        for _ in range(traces):
            trace_id = rng.randbytes(16)
            trace_ids.append(trace_id)
            error = rng.random() < 0.1
            root = rng.randbytes(8)
            for index in range(spans_per_trace):
                span = scopes[SERVICES[index % len(SERVICES)]].spans.add()
                span.trace_id = trace_id
                span.span_id = root if index == 0 else rng.randbytes(8)
                if index:
                    span.parent_span_id = root
                span.name = f"GET /api/v1/items/{{id}}/part-{index}"
                span.kind = Span.SPAN_KIND_SERVER if index == 0 else Span.SPAN_KIND_CLIENT
                span.start_time_unix_nano = now + index * 1000
                span.end_time_unix_nano = now + index * 1000 + rng.randint(1, 900) * 1_000_000
                attributes: list[tuple[str, AnyValue]] = [
                    ("http.request.method", AnyValue(string_value="GET")),
                    ("http.route", AnyValue(string_value="/api/v1/items/{id}")),
                    ("http.response.status_code", AnyValue(int_value=500 if error and index == 0 else 200)),
                    ("url.path", AnyValue(string_value=f"/api/v1/items/{rng.randint(1, 99999)}")),
                    ("server.address", AnyValue(string_value="items.internal")),
                    ("server.port", AnyValue(int_value=8080)),
                    ("network.protocol.version", AnyValue(string_value="1.1")),
                    ("user_agent.original", AnyValue(string_value="okhttp/4.12.0")),
                    ("app.cache_hit", AnyValue(bool_value=rng.random() < 0.5)),
                    ("app.items", AnyValue(int_value=rng.randint(0, 50))),
                ]
                span.attributes.extend(KeyValue(key=k, value=v) for k, v in attributes)
                if rng.random() < 0.1:
                    event = span.events.add(time_unix_nano=now + index * 1000 + 500, name="exception")
                    for key, text in (
                        ("exception.type", "java.net.SocketTimeoutException"),
                        ("exception.message", "Read timed out"),
                        ("exception.stacktrace", "java.net.SocketTimeoutException: Read timed out\n\tat ..." * 3),
                    ):
                        event.attributes.add(key=key, value=AnyValue(string_value=text))
                if error and index == 0:
                    span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="upstream failed"))
        data = request.SerializeToString()
        offsets = []
        for trace_id in trace_ids:
            start = 0
            while (found := data.find(trace_id, start)) >= 0:
                offsets.append(found)
                start = found + 16
        out.append((data, offsets))
    return out


SHAPES = {"100 traces x 10 spans": (100, 10), "1000 traces x 1 span": (1000, 1)}


def fresh(requests: list[tuple[bytes, list[int]]], generation: int) -> list[bytes]:
    """The requests with every trace ID's first 4 bytes set to `generation`: all traces new."""
    stamp = generation.to_bytes(4, "big")
    out = []
    for data, offsets in requests:
        body = bytearray(data)
        for offset in offsets:
            body[offset : offset + 4] = stamp
        out.append(bytes(body))
    return out


# --- the child: one variant, every stage -----------------------------------------------------


class Passes:
    """Sets of request bodies with trace IDs never seen before, one set per timed pass."""

    def __init__(self, requests: list[tuple[bytes, list[int]]], repeats: int, rounds: int) -> None:
        self.requests = requests
        self.repeats = repeats
        self.rounds = rounds
        self.generation = 0
        self.spans_per_pass = 0

    def __call__(self) -> list[list[bytes]]:
        out = []
        for _ in range(self.repeats):
            bodies = []
            for _ in range(self.rounds):
                self.generation += 1
                bodies.extend(fresh(self.requests, self.generation))
            out.append(bodies)
        return out


def best(passes: list[list[bytes]], run: Any, spans: int, after: Any = None) -> float:
    """CPU us per span of the fastest pass; `after` runs untimed after each pass."""
    timings = []
    for bodies in passes:
        started = time.process_time()
        run(bodies)
        timings.append((time.process_time() - started) / spans * 1e6)
        if after is not None:
            after()
    return min(timings)


def measure_shape(split: Any, passes: Passes, spans: int) -> dict[str, float]:
    from sampler.config.exporters import BatchConfig
    from sampler.config.model import SpanMetricsConfig
    from sampler.config.tail_sampling import TailSamplingConfig
    from sampler.decide.engine import TailSampler
    from sampler.forward.batcher import Batcher
    from sampler.policies.registry import POLICIES
    from sampler.telemetry.metrics import Metrics
    from sampler.telemetry.span_metrics import SpanMetrics

    figures: dict[str, float] = {}

    def split_only(bodies: list[bytes]) -> None:
        for body in bodies:
            split(body, None)

    figures["split"] = best(passes(), split_only, spans)
    span_metrics = SpanMetrics(SpanMetricsConfig(), Metrics())

    def split_and_count(bodies: list[bytes]) -> None:
        for body in bodies:
            fields = span_metrics.new_fields()
            split(body, fields)
            span_metrics.count(fields)

    figures["split + span metrics"] = best(passes(), split_and_count, spans)
    clock = [1000.0]
    metrics = Metrics()
    batcher = Batcher(BatchConfig(), lambda payload: None, metrics)
    config = {
        "decision_wait": "1s",
        "num_traces": 200_000,
        "decision_cache": {"sampled_cache_size": 100_000, "non_sampled_cache_size": 400_000},
        "policies": [
            POLICIES.validate({"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}})
        ],
    }
    sampler = TailSampler(TailSamplingConfig.model_validate(config), batcher.add, metrics, clock=lambda: clock[0])

    def ingest(bodies: list[bytes]) -> None:
        for body in bodies:
            sampler.ingest(split(body, None))

    def decide() -> None:
        clock[0] += 2.0
        sampler.decide_due()
        batcher.flush()

    def pipeline(bodies: list[bytes]) -> None:
        for body in bodies:
            sampler.ingest(split(body, None))
            decide()

    figures["split + window ingest"] = best(passes(), ingest, spans, after=decide)
    figures["split + ingest + decide + batch"] = best(passes(), pipeline, spans)
    return figures


def run_variant(variant: str, tree: str, repeats: int, rounds: int) -> dict[str, Any]:
    sys.path.insert(0, tree)
    import asyncio

    from sampler.receive import wire_check, wire_split
    from sampler.receive.split import RequestSplitter, parse_protobuf
    from sampler.receive.wire_split import WireSplitter
    from sampler.spans.fields import SpanFields

    assert str(wire_split.__file__).startswith(tree) and str(wire_check.__file__).startswith(tree)
    protobuf = RequestSplitter()
    wire = WireSplitter()

    def split_protobuf(data: bytes, fields: SpanFields | None) -> Any:
        return protobuf.split(parse_protobuf(data), None, fields)

    results: dict[str, Any] = {}

    async def measure() -> None:  # the batcher asks for the running loop
        for shape, (traces, per_trace) in SHAPES.items():
            passes = Passes(build_requests(8, traces, per_trace, seed=7), repeats, rounds)
            spans = 8 * traces * per_trace * rounds
            results[shape] = measure_shape(split_protobuf if variant == "protobuf" else wire.split, passes, spans)

    asyncio.run(measure())
    results["compiled"] = sorted(
        name
        for name, module in sys.modules.items()
        if name.startswith("sampler") and str(getattr(module, "__file__", "")).endswith(".so")
    )
    results["protobuf requests"] = wire.protobuf_requests
    return results


# --- the parent: trees, builds, table --------------------------------------------------------


def copy_tree(target: Path) -> None:
    shutil.copytree(REPO / "sampler", target / "sampler", ignore=shutil.ignore_patterns("*.so", "__pycache__"))


def build(target: Path, modules: list[str]) -> float:
    """Compile `modules` in the tree at `target` with mypyc, as setup.py does; the CPU seconds it took."""
    before = os.times()
    subprocess.run(
        [sys.executable, "-m", "mypyc", *MYPY_FLAGS, *modules], cwd=target, check=True, stdout=subprocess.DEVNULL
    )
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="passes per figure; the best is reported")
    parser.add_argument("--rounds", type=int, default=3, help="times each pass goes over the 8 requests")
    parser.add_argument("--no-compile", action="store_true", help="plain Python variants only")
    parser.add_argument(
        "--builds", default=",".join(BUILDS), help=f"compiled builds to measure, of: {', '.join(BUILDS)}"
    )
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "TREE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child[0], args.child[1], args.repeats, args.rounds)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="stages-bench-"))
    try:
        trees = {"plain": workdir / "plain"}
        copy_tree(trees["plain"])
        variants = [("protobuf path", "protobuf", "plain"), ("wire, plain Python", "wire", "plain")]
        build_seconds = {}
        builds = [] if args.no_compile else [name.strip() for name in args.builds.split(",") if name.strip()]
        for name in builds:
            trees[name] = workdir / name.replace("+", "-")
            copy_tree(trees[name])
            build_seconds[name] = build(trees[name], BUILDS[name])
            variants.append((f"wire, mypyc: {name}", "wire", name))
        if builds:
            variants.append((f"protobuf path, mypyc: {builds[-1]}", "protobuf", builds[-1]))
        print(
            f"python {sys.version.split()[0]}; {os.cpu_count()} cores (shared); CPU us per span, best of "
            f"{args.repeats} passes of {args.rounds} x 8 requests of 1000 spans"
        )
        for name, seconds in build_seconds.items():
            print(f"mypyc build ({name}: {', '.join(BUILDS[name])}): {seconds:.0f} CPU-s")
        rows = []
        for label, variant, tree in variants:
            out = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--repeats",
                    str(args.repeats),
                    "--rounds",
                    str(args.rounds),
                    "--child",
                    variant,
                    str(trees[tree]),
                ],
                capture_output=True,
                text=True,
                cwd=workdir,
            )
            if out.returncode:
                raise SystemExit(f"{label} failed:\n{out.stderr}")
            result = json.loads(out.stdout)
            rows.append((label, result))
            compiled = ", ".join(m.removeprefix("sampler.") for m in result["compiled"]) or "none"
            print(f"\n{label}  [compiled: {compiled}]", flush=True)
            for shape in SHAPES:
                figures = "; ".join(f"{stage} {value:.2f}" for stage, value in result[shape].items())
                print(f"  {shape:22s} {figures}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
