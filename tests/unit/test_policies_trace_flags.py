"""trace_flags: the W3C sampled flag on any span."""

from __future__ import annotations

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import decide, make_policy

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def test_trace_flags_samples_when_any_span_has_the_sampled_bit():
    policy = make_policy("trace_flags")
    flagged = make_span(TRACE_ID)
    flagged.flags = 0x101  # sampled bit plus the OTLP "has remote parent" bits
    plain = make_span(TRACE_ID)
    plain.flags = 0x100
    assert decide(policy, [plain, flagged]) is Decision.SAMPLED
    assert decide(policy, [plain]) is Decision.NOT_SAMPLED
