from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView

# W3C trace-context limits a list member to 256 characters.
_MAX_MEMBER = 256


class TraceStateSettings(PolicySettings):
    key: str = Field(min_length=1)
    values: list[str] = Field(min_length=1)


def trace_state_value(trace_state: str, key: str) -> str | None:
    """The value of `key` in a W3C tracestate header value, or None."""
    for member in trace_state.split(","):
        name, sep, value = member.strip().partition("=")
        if sep and name == key:
            return value
    return None


class TraceStatePolicy(Policy):
    """Samples traces with a span whose W3C tracestate has `key` set to one of `values`."""

    type_name = "trace_state"
    settings_model = TraceStateSettings

    def prepare(self) -> None:
        key = self.settings.key
        self._values = frozenset(v for v in self.settings.values if v and len(key) + len(v) < _MAX_MEMBER)

    def evaluate(self, trace: TraceView) -> Decision:
        key = self.settings.key
        for record in trace.spans():
            state = record.span.trace_state
            if state and trace_state_value(state, key) in self._values:
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED
