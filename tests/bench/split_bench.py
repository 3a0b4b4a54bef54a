"""The per-span receive path alone: RequestSplitter.split over the benchmark's requests,
with the receiver's limits off, on but never reached, and on and reached by every span.

Run:  python tests/bench/split_bench.py [--seconds 3] [--repeats 5]

Prints spans/s per setting (median over the repeats). Everything runs in this one
process on one core; the figures move with the machine's load, so compare settings
within one run, not across runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from sampler.config.receivers import SpanLimitsConfig  # noqa: E402
from sampler.receive.split import RequestSplitter  # noqa: E402
from tests.bench.bench import SPANS_PER_TRACE, TRACES_PER_REQUEST, build_pool  # noqa: E402

SETTINGS = {
    "no limits (default)": RequestSplitter(),
    "limits not reached": RequestSplitter(
        max_spans_per_request=10_000,
        span_limits=SpanLimitsConfig(attribute_count_limit=128, attribute_value_length_limit=4096),
    ),
    "limits reached by every span": RequestSplitter(
        span_limits=SpanLimitsConfig(attribute_count_limit=8, attribute_value_length_limit=4)
    ),
}


def measure(splitter: RequestSplitter, bodies: list[bytes], seconds: float) -> float:
    spans = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for body in bodies:
            spans += splitter.split(ExportTraceServiceRequest.FromString(body)).span_count
    return spans / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per setting and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bodies = [bytes(request.data) for request in build_pool(20, seed=1)]
    print(f"{SPANS_PER_TRACE} spans/trace, {TRACES_PER_REQUEST} traces/request, 10 attributes/span; parse + split")
    results: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, splitter in SETTINGS.items():  # interleaved, so load changes hit every setting alike
            results[name].append(measure(splitter, bodies, args.seconds))
    for name, rates in results.items():
        runs = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"{name:30s} median {statistics.median(rates):>10,.0f} spans/s  (runs: {runs})")


if __name__ == "__main__":
    main()
