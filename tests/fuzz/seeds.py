"""Seed inputs for the atheris target: a valid request in each encoding and the shipped
config, each behind the selector byte fuzz_receive.py reads first.

Run:  python -m tests.fuzz.seeds DIRECTORY
"""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from tests.support import json_body, make_request, make_span

PROTOBUF, JSON, CONFIG = b"\x00", b"\x01", b"\x02"
REPO = Path(__file__).resolve().parents[2]


def seeds() -> dict[str, bytes]:
    trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    root = make_span(trace_id, b"\x01" * 8, error=True, attributes={"http.route": "/checkout", "n": 3, "ok": True})
    nested = KeyValueList(
        values=[KeyValue(key="inner", value=AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=1.5)])))]
    )
    root.attributes.add(key="map", value=AnyValue(kvlist_value=nested))
    root.events.add(name="retry", attributes=[KeyValue(key="attempt", value=AnyValue(int_value=2))])
    child = make_span(trace_id, b"\x02" * 8, parent=b"\x01" * 8, attributes={"db.statement": "SELECT 1"})
    child.links.add(trace_id=trace_id, span_id=b"\x03" * 8)
    request = make_request([root, child], service="checkout")
    return {
        "request.pb": PROTOBUF + request.SerializeToString(),
        "request.json": JSON + json_body(request),
        "sampler.yaml": CONFIG + (REPO / "config" / "sampler.yaml").read_bytes(),
    }


def write_seeds(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    write_seeds(Path(sys.argv[1]))
