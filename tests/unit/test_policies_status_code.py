"""status_code: a trace is sampled when any span has one of the listed status codes."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import config_errors, decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
UNSET, OK, ERROR = Status.STATUS_CODE_UNSET, Status.STATUS_CODE_OK, Status.STATUS_CODE_ERROR


def _trace(*codes: int) -> list[Span]:
    spans = []
    for code in codes:
        span = make_span(TRACE_ID)
        span.status.code = code  # type: ignore[assignment]
        if code == ERROR:
            span.status.message = "boom"
        spans.append(span)
    return spans


@pytest.mark.parametrize(
    ("codes", "trace", "expected"),
    [
        (["ERROR"], (UNSET, ERROR, OK), Decision.SAMPLED),
        (["ERROR"], (UNSET, OK, OK), Decision.NOT_SAMPLED),
        (["ERROR", "ERROR"], (ERROR,), Decision.SAMPLED),
        (["OK"], (UNSET, OK), Decision.SAMPLED),
        (["OK"], (UNSET, ERROR), Decision.NOT_SAMPLED),
        (["UNSET"], (OK, UNSET, ERROR), Decision.SAMPLED),
        (["UNSET"], (OK, ERROR), Decision.NOT_SAMPLED),
        (["OK", "ERROR"], (UNSET, ERROR), Decision.SAMPLED),
        (["OK", "ERROR"], (OK,), Decision.SAMPLED),
        (["OK", "ERROR"], (UNSET, UNSET), Decision.NOT_SAMPLED),
        (["ERROR", "UNSET"], (OK, OK), Decision.NOT_SAMPLED),
        (["ERROR", "UNSET"], (OK, ERROR), Decision.SAMPLED),
        (["UNSET", "OK", "ERROR"], (OK,), Decision.SAMPLED),
    ],
)
def test_decisions(codes: list[str], trace: tuple[int, ...], expected: Decision) -> None:
    policy = make_policy("status_code", {"status_codes": codes})
    assert decide(policy, _trace(*trace)) is expected


def test_error_found_in_any_resource_or_scope() -> None:
    policy = make_policy("status_code", {"status_codes": ["ERROR", "OK"]})
    spans = _trace(UNSET, UNSET)
    spans[1].status.code = ERROR  # type: ignore[assignment]
    assert decide(policy, spans, service="other", scope="lib") is Decision.SAMPLED
    assert decide(make_policy("status_code", {"status_codes": ["ERROR"]}), spans) is Decision.SAMPLED


def test_error_span_of_another_kind_of_span_counts() -> None:
    span = make_span(TRACE_ID, error=True)
    span.kind = Span.SPAN_KIND_CONSUMER
    assert decide(make_policy("status_code", {"status_codes": ["ERROR"]}), [span]) is Decision.SAMPLED


@pytest.mark.parametrize(
    ("settings", "loc", "kind"),
    [
        (None, ("status_code",), "missing"),
        ({}, ("status_code", "status_codes"), "missing"),
        ({"status_codes": []}, ("status_code", "status_codes"), "too_short"),
        ({"status_codes": ["FAIL"]}, ("status_code", "status_codes", 0), "literal_error"),
        ({"status_codes": ["error"]}, ("status_code", "status_codes", 0), "literal_error"),
        ({"status_codes": "ERROR"}, ("status_code", "status_codes"), "list_type"),
        ({"status_codes": ["ERROR"], "codes": 1}, ("status_code", "codes"), "extra_forbidden"),
    ],
)
def test_config_errors(settings: dict[str, Any] | None, loc: tuple[Any, ...], kind: str) -> None:
    body: dict[str, Any] = {"name": "errors", "type": "status_code"}
    if settings is not None:
        body["status_code"] = settings
    assert [(error_loc, error_kind) for error_loc, error_kind, _ in config_errors(body)] == [(loc, kind)]
