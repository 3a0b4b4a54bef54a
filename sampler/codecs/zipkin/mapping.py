"""Zipkin v2 spans to and from OTLP: the names both directions share (from_otlp.py, to_otlp.py).

The mapping is the one the OpenTelemetry specification defines ("OpenTelemetry to Zipkin
Transformation" and the generic "mapping to non-OTLP formats"), with the Collector's
conventions where the specification leaves a field open (trace state, links). README.md
has the table.

- resource `service.name` <-> `localEndpoint.serviceName`; the other resource and
  scope attributes become tags (span attributes win on a clash);
- scope name and version <-> tags `otel.scope.name`, `otel.scope.version` (and the
  deprecated `otel.library.*` aliases, which the specification still requires);
- trace IDs: 16 hex digits when the high half is zero (a 64-bit ID), else 32;
  received 64-bit IDs are zero-padded to 16 bytes;
- kind CLIENT, SERVER, PRODUCER, CONSUMER as they are; INTERNAL has no Zipkin kind,
  and a Zipkin span without one reads as INTERNAL;
- times in whole microseconds (truncated; a positive duration is at least 1 µs);
- status ERROR <-> tags `otel.status_code: ERROR` and `error: <message>`;
- events <-> annotations: the name alone, or `"name":{attributes as JSON}`;
- `peer.service`, `network.peer.address`, `network.peer.port` <-> `remoteEndpoint`;
  `network.local.address`, `network.local.port` <-> `localEndpoint`'s IP and port;
- dropped counts <-> tags `otel.dropped_{attributes,events,links}_count`;
- attributes `zipkin.shared`, `zipkin.debug` (bool) <-> the `shared` and `debug` flags.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

SERVICE_NAME = "service.name"
PEER_SERVICE = "peer.service"
PEER_ADDRESS = "network.peer.address"
PEER_PORT = "network.peer.port"
LOCAL_ADDRESS = "network.local.address"
LOCAL_PORT = "network.local.port"
SHARED = "zipkin.shared"
DEBUG = "zipkin.debug"

TAG_STATUS_CODE = "otel.status_code"
TAG_STATUS_DESCRIPTION = "otel.status_description"
TAG_ERROR = "error"
TAG_SCOPE_NAME = "otel.scope.name"
TAG_SCOPE_VERSION = "otel.scope.version"
TAG_LIBRARY_NAME = "otel.library.name"
TAG_LIBRARY_VERSION = "otel.library.version"
TAG_DROPPED_ATTRIBUTES = "otel.dropped_attributes_count"
TAG_DROPPED_EVENTS = "otel.dropped_events_count"
TAG_DROPPED_LINKS = "otel.dropped_links_count"
TAG_TRACE_STATE = "w3c.tracestate"
TAG_LINK_PREFIX = "otlp.link."

KIND_FROM_ZIPKIN = {
    "CLIENT": Span.SPAN_KIND_CLIENT,
    "SERVER": Span.SPAN_KIND_SERVER,
    "PRODUCER": Span.SPAN_KIND_PRODUCER,
    "CONSUMER": Span.SPAN_KIND_CONSUMER,
}


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
