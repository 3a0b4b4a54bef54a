from typing import Literal

from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView

_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


class StatusCodeSettings(PolicySettings):
    status_codes: list[Literal["OK", "ERROR", "UNSET"]] = Field(min_length=1)


class StatusCodePolicy(Policy):
    """Samples traces with at least one span whose status code is listed."""

    type_name = "status_code"
    settings_model = StatusCodeSettings

    def prepare(self) -> None:
        self._codes = frozenset(_CODES[code] for code in self.settings.status_codes)

    def evaluate(self, trace: TraceView) -> Decision:
        if self._codes == {2}:
            # The ingest summary already knows; no need to look at the spans.
            return Decision.SAMPLED if trace.error_seen else Decision.NOT_SAMPLED
        codes = self._codes
        for record in trace.spans():
            if record.span.status.code in codes:
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED
