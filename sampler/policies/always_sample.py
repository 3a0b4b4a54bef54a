from sampler.policies.base import Decision, Policy, TraceView


class AlwaysSamplePolicy(Policy):
    """Samples every trace."""

    type_name = "always_sample"

    def evaluate(self, trace: TraceView) -> Decision:
        return Decision.SAMPLED
