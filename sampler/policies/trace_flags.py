from sampler.policies.base import Decision, Policy, TraceView

_W3C_SAMPLED = 0x01


class TraceFlagsPolicy(Policy):
    """Samples traces with a span whose W3C trace flags have the sampled bit set."""

    type_name = "trace_flags"

    def evaluate(self, trace: TraceView) -> Decision:
        for record in trace.spans():
            if record.span.flags & _W3C_SAMPLED:
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED
