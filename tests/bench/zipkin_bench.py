"""Cost of the Zipkin mapping per span, in-process (no sockets): spans per second.

Run:  python tests/bench/zipkin_bench.py                       (5 repeats of 20,000 spans)
      python tests/bench/zipkin_bench.py --spans 5000 --repeats 3

receive: a Zipkin v2 JSON (and protobuf) body as Brave reports it (server and client spans with
endpoints, ~8 tags, an annotation on a third of them) mapped to an OTLP request
and split per trace, which is what the Zipkin receiver does per request; beside
it, the same spans as an OTLP/JSON body through the OTLP/HTTP receiver's parse
and split, as the reference.
export: the same spans as a batcher payload (a serialized OTLP request) mapped to
a Zipkin JSON (and protobuf) body, which is what the Zipkin exporter does per batch; beside it,
the file exporter's OTLP/JSON encoding of the payload.
Prints the median over the repeats.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

from sampler.codecs import otlp_json  # noqa: E402
from sampler.codecs.zipkin import from_otlp, proto, to_otlp  # noqa: E402
from sampler.receive.split import RequestSplitter, parse_json  # noqa: E402

SPANS_PER_TRACE = 10
SERVICES = ("frontend", "cart", "checkout", "payment", "inventory")


def zipkin_spans(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    spans = []
    t0 = 1_700_000_000_000_000
    for index in range(count):
        if index % SPANS_PER_TRACE == 0:
            trace_id = f"{rng.getrandbits(128):032x}"
            root = f"{rng.getrandbits(64):016x}"
        span_id = root if index % SPANS_PER_TRACE == 0 else f"{rng.getrandbits(64):016x}"
        service = SERVICES[index % len(SERVICES)]
        span = {
            "traceId": trace_id,
            "id": span_id,
            "kind": "CLIENT" if index % 2 else "SERVER",
            "name": f"get /api/v1/items/{index % 50}",
            "timestamp": t0 + index * 1000,
            "duration": rng.randint(100, 900_000),
            "localEndpoint": {"serviceName": service, "ipv4": "10.0.0.1", "port": 8080},
            "tags": {
                "http.method": "GET",
                "http.path": f"/api/v1/items/{index % 50}",
                "http.status_code": "500" if rng.random() < 0.03 else "200",
                "http.route": "/api/v1/items/{id}",
                "otel.scope.name": "brave",
                "otel.scope.version": "6.0.3",
                "customer.tier": rng.choice(("free", "pro", "enterprise")),
                "region": "eu-west-1",
            },
        }
        if index % SPANS_PER_TRACE:
            span["parentId"] = root
        if index % 2:
            span["remoteEndpoint"] = {"serviceName": SERVICES[(index + 1) % len(SERVICES)], "ipv4": "10.0.0.2"}
        if index % 3 == 0:
            span["annotations"] = [{"timestamp": t0 + index * 1000 + 5, "value": '"retry":{"attempt":1}'}]
        spans.append(span)
    return spans


def median_rate(spans: int, repeats: int, run: Callable[[], object]) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        rates.append(spans / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    zipkin_body = json.dumps(zipkin_spans(args.spans, args.seed)).encode()
    request = to_otlp.parse_json(zipkin_body)
    otlp_json_body = otlp_json.request_to_json(request).encode()
    payload = request.SerializeToString()
    zipkin_proto_body = proto.encode(json.loads(zipkin_body))
    splitter = RequestSplitter()

    def receive_zipkin() -> object:
        return splitter.split(to_otlp.parse_json(zipkin_body))

    def receive_zipkin_proto() -> object:
        return splitter.split(to_otlp.request_from_zipkin(proto.decode(zipkin_proto_body)))

    def receive_otlp_json() -> object:
        return splitter.split(parse_json(otlp_json_body))

    def export_zipkin() -> object:
        return from_otlp.encode_json(ExportTraceServiceRequest.FromString(payload))

    def export_zipkin_proto() -> object:
        return proto.encode(from_otlp.request_to_zipkin(ExportTraceServiceRequest.FromString(payload)))

    def export_otlp_json() -> object:
        return otlp_json.request_to_json(ExportTraceServiceRequest.FromString(payload))

    print(f"{args.spans} spans, {args.repeats} repeats, median spans/s (Python {sys.version.split()[0]})")
    sizes = (len(zipkin_body), len(zipkin_proto_body), len(otlp_json_body))
    print(
        "  bytes per span: Zipkin JSON {:.0f}, Zipkin protobuf {:.0f}, OTLP/JSON {:.0f}".format(
            *(s / args.spans for s in sizes)
        )
    )
    for label, run in (
        ("receive Zipkin JSON -> per-trace batches", receive_zipkin),
        ("receive Zipkin protobuf -> per-trace batches", receive_zipkin_proto),
        ("receive OTLP/JSON -> per-trace batches (reference)", receive_otlp_json),
        ("export payload -> Zipkin JSON body", export_zipkin),
        ("export payload -> Zipkin protobuf body", export_zipkin_proto),
        ("export payload -> OTLP/JSON line (file exporter, reference)", export_otlp_json),
    ):
        print(f"  {label:60s} {median_rate(args.spans, args.repeats, run):>10,.0f}")


if __name__ == "__main__":
    main()
