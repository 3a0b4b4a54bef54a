from fractions import Fraction

from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide

_DEFAULT_SALT = "default-hash-seed"
_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MAX_UINT64 = (1 << 64) - 1


class ProbabilisticSettings(PolicySettings):
    hash_salt: str = ""
    sampling_percentage: float = Field(ge=0, le=100)


def fnv1a_64(data: bytes, state: int = _FNV64_OFFSET) -> int:
    for byte in data:
        state = ((state ^ byte) * _FNV64_PRIME) & _MAX_UINT64
    return state


class ProbabilisticPolicy(Policy):
    """Samples a fixed share of traces, decided by a hash of the salt and the
    trace ID (64-bit FNV-1a, as the Collector computes it), so every replica,
    and a Collector with the same salt, decides a given trace the same way."""

    type_name = "probabilistic"
    settings_model = ProbabilisticSettings

    def prepare(self) -> None:
        salt = self.settings.hash_salt or _DEFAULT_SALT
        self._salted_state = fnv1a_64(salt.encode())
        ratio = Fraction(self.settings.sampling_percentage) / 100
        self._threshold = int(_MAX_UINT64 * ratio)

    def evaluate(self, trace: TraceView) -> Decision:
        if self._threshold == 0:
            return Decision.NOT_SAMPLED
        return decide(fnv1a_64(trace.trace_id, self._salted_state) <= self._threshold)
