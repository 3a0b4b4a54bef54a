"""Typed helpers for the unit tests: a fake clock, traces built through the real
decoding path, and policies built from config dicts as the daemon builds them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import ValidationError

from sampler.policies.base import Decision, Policy, TraceView
from sampler.policies.registry import POLICIES
from sampler.receive.split import RequestSplitter
from sampler.spans.trace import TraceSpans
from tests.support import make_request


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def split(request: ExportTraceServiceRequest, splitter: RequestSplitter | None = None) -> dict[bytes, TraceSpans]:
    """The traces of one request, as the receivers decode it."""
    batch = (splitter or RequestSplitter()).split(request)
    assert batch.rejected_spans == 0, batch.rejection_message
    return batch.traces


def trace_of(spans: Iterable[Span], **request: Any) -> TraceSpans:
    """The one trace made of `spans`, decoded from a real request (see make_request for the keywords)."""
    traces = split(make_request(spans, **request))
    assert len(traces) == 1, f"expected one trace, got {len(traces)}"
    return next(iter(traces.values()))


def view_of(spans: Iterable[Span], **request: Any) -> TraceView:
    return TraceView(trace_of(spans, **request))


def make_policy(
    type_name: str, settings: dict[str, Any] | None = None, clock: FakeClock | None = None, name: str = "p"
) -> Policy:
    """A policy validated and built exactly as the daemon builds one from its config."""
    body: dict[str, Any] = {"name": name, "type": type_name}
    if settings is not None:
        body[type_name] = settings
    return POLICIES.validate(body).build(clock or FakeClock())


def decide(policy: Policy, spans: Iterable[Span], **request: Any) -> Decision:
    """The policy's decision on a fresh view of the trace made of `spans`."""
    return policy.evaluate(view_of(spans, **request))


def config_errors(body: Any) -> list[tuple[tuple[Any, ...], str, str]]:
    """(location, error type, message) of every error the policy registry reports for `body`."""
    with pytest.raises(ValidationError) as caught:
        POLICIES.validate(body)
    return [(tuple(error["loc"]), error["type"], error["msg"]) for error in caught.value.errors()]
