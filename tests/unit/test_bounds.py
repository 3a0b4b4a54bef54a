"""receive/bounds.py: the cap a request gets before it is parsed (max_spans_per_request, or fewer
when memory_limit_mib could never hold its spans), which splitter runs, large work in the decoding
thread, and a large batch taken into the window in slices with the same result as at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sampler.config.receivers import OtlpReceiverConfig
from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.engine import TailSampler
from sampler.policies.registry import POLICIES
from sampler.receive import bounds, wire_split
from sampler.receive.bounds import INGEST_SLICE_TRACES, WORST_SPAN_MEMORY, TraceDecoder, ingest_in_slices
from sampler.receive.split import RequestSplitter, parse_protobuf
from sampler.spans.fields import SpanFields
from sampler.telemetry.metrics import Metrics
from tests.support import make_request, make_span, make_trace, minimal_spans_body
from tests.unit.helpers import FakeClock

MIB = 1024 * 1024


def decoder(memory_limit: int = 0, **receiver: object) -> TraceDecoder:
    return TraceDecoder(OtlpReceiverConfig.model_validate(receiver), memory_limit)


def test_max_spans_per_request_caps_a_request_by_default() -> None:
    assert OtlpReceiverConfig().max_spans_per_request == 100_000
    body, spans = minimal_spans_body(64 * 1024)
    batch = asyncio.run(decoder(max_spans_per_request=100).split(body, None))
    assert (batch.span_count, batch.over_limit_spans, batch.rejected_spans) == (100, spans - 100, spans - 100)
    assert batch.over_limit_reason == "max_spans_per_request"
    assert batch.rejection_message == (
        f"{spans - 100} span(s) rejected: the request holds more than max_spans_per_request (100) spans; "
        "send smaller batches"
    )


def test_spans_memory_limit_mib_could_never_hold_are_refused() -> None:
    body, spans = minimal_spans_body(64 * 1024)
    limit = 500 * WORST_SPAN_MEMORY  # room for about 500 one-span traces
    batch = asyncio.run(decoder(limit).split(body, None))
    assert 450 < batch.span_count <= 500
    assert batch.over_limit_reason == "memory_limit"
    assert batch.span_count + batch.over_limit_spans == spans
    assert f"the request's {spans} spans could take up to" in batch.rejection_message
    assert "memory_limit_mib (" in batch.rejection_message and "send smaller batches" in batch.rejection_message
    # max_spans_per_request still applies when it is the lower of the two.
    capped = asyncio.run(decoder(limit, max_spans_per_request=100).split(body, None))
    assert (capped.span_count, capped.over_limit_reason) == (100, "max_spans_per_request")


def test_the_memory_cap_applies_to_requests_parsed_from_other_formats_too() -> None:
    request = make_request([make_span(make_trace()[0]) for _ in range(50)])
    batch = asyncio.run(decoder(10 * WORST_SPAN_MEMORY).split(request, None))
    assert batch.span_count < 10 and batch.over_limit_reason == "memory_limit"


def test_a_request_that_fits_is_not_counted_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes) -> int:
        raise AssertionError("counted, though its size alone showed that it fits")

    monkeypatch.setattr(bounds, "count_spans", refuse)
    body, spans = minimal_spans_body(4096)
    assert decoder(512 * MIB).limits_for(body) is not None  # the default max_spans_per_request
    assert asyncio.run(decoder(512 * MIB).split(body, None)).span_count == spans


def test_protobuf_bodies_take_the_wire_splitter_when_it_is_compiled_with_the_same_result() -> None:
    assert decoder().compiled is wire_split.COMPILED
    request = make_request(make_trace(spans=4)[1] + [make_span(bytes(16))])
    outcomes = []
    for compiled in (False, True):
        chosen = decoder(max_spans_per_request=3)
        chosen.compiled = compiled
        fields = SpanFields()
        batch = asyncio.run(chosen.split(request.SerializeToString(), fields))
        series = {
            (text(service), text(name), kind, code): v for (service, name, kind, code), v in fields.series.items()
        }
        outcomes.append((batch.span_count, batch.rejected_spans, batch.rejection_message, series))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:2] == (3, 2)


def text(name: bytes | str) -> str:
    """A series name as text: the wire splitter keeps bytes, the other one strings."""
    return name if isinstance(name, str) else name.decode()


def test_large_bodies_are_decoded_in_the_decoding_thread() -> None:
    chosen = decoder()
    threads: list[str] = []

    def work(data: bytes) -> int:
        threads.append(threading.current_thread().name)
        return len(data)

    async def both() -> None:
        assert await chosen.offload(work, b"x" * 100) == 100
        assert await chosen.offload(work, b"x" * bounds.OFFLOAD_BYTES) == bounds.OFFLOAD_BYTES

    asyncio.run(both())
    chosen.close()
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("tail-sampler-decode")


def test_a_large_batch_enters_the_window_in_slices_as_it_would_at_once() -> None:
    config = TailSamplingConfig.model_validate(
        {
            "num_traces": 3 * INGEST_SLICE_TRACES,
            "policies": [POLICIES.validate({"name": "all", "type": "always_sample"})],
        }
    )
    body, spans = minimal_spans_body(30 * (2 * INGEST_SLICE_TRACES + 500))
    turns = 0

    async def run() -> tuple[int, int]:
        nonlocal turns
        sampler = TailSampler(config, lambda trace: None, Metrics(), clock=FakeClock())
        batch = RequestSplitter().split(parse_protobuf(body))
        ticking = asyncio.get_running_loop().create_task(count_turns())
        new = await ingest_in_slices(sampler, batch)
        ticking.cancel()
        return new, sampler.window.trace_count

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    new, held = asyncio.run(run())
    assert new == held == spans
    assert turns >= 2  # the event loop ran between the slices
