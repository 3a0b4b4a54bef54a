"""The records of the window's log: one request's trace fragments (spans, and log records
naming the trace) with the request's arrival time.

A record's payload is the request's arrival (u64, wall-clock ns, little-endian) followed by
the fragments in the encoding the workers hand them over in (sampler/spans/fragments.py): one
way to write a fragment as bytes, whether it goes to disk or to another process. The record's
count (sampler/storage/format.py) is the request's span count. Encoding parses nothing;
decoding (on start, after a crash) rebuilds the fragments.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sampler.spans.fragments import FragmentDecoder, FragmentError, encode_fragments
from sampler.spans.trace import TraceSpans

_ARRIVAL = struct.Struct("<Q")


class DamagedRecordError(ValueError):
    """A payload that passed its checksum but does not parse (written by another version?)."""


def encode(fragments: Sequence[TraceSpans], arrival_ns: int) -> bytes:
    """The record's payload, joined once (the checksum and the write then take one buffer)."""
    return encode_fragments(fragments, prefix=_ARRIVAL.pack(arrival_ns))


def decode(payload: bytes, decoder: FragmentDecoder | None = None) -> tuple[int, list[TraceSpans]]:
    """(arrival in wall-clock ns, the fragments, in the order written); raises DamagedRecordError.
    One `decoder` over a replay shares each (resource, scope) prefix among the traces rebuilt."""
    if len(payload) < _ARRIVAL.size:
        raise DamagedRecordError("a window log record does not parse: shorter than its arrival time")
    (arrival,) = _ARRIVAL.unpack_from(payload, 0)
    try:
        return arrival, (decoder or FragmentDecoder()).decode(memoryview(payload)[_ARRIVAL.size :])
    except FragmentError as exc:
        raise DamagedRecordError(f"a window log record does not parse: {exc}") from None
