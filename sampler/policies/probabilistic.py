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


def collector_threshold(percentage: float) -> int:
    """MaxUint64 x (percentage / 100) computed as the Collector does: the ratio is a
    float64, the product is rounded to a 64-bit mantissa (nearest even), then
    truncated to an integer, so thresholds match bit for bit."""
    product = _MAX_UINT64 * Fraction(percentage / 100)
    if product <= 0:
        return 0
    exponent = product.numerator.bit_length() - product.denominator.bit_length()
    if Fraction(2) ** exponent > product:
        exponent -= 1
    shift = exponent - 63  # the mantissa holds bits exponent .. exponent-63
    scaled = product / Fraction(2) ** shift
    mantissa, remainder = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * remainder
    if twice > scaled.denominator or (twice == scaled.denominator and mantissa % 2):
        mantissa += 1
    return min(int(mantissa * Fraction(2) ** shift), _MAX_UINT64)


class ProbabilisticPolicy(Policy):
    """Samples a fixed share of traces, decided by a hash of the salt and the
    trace ID (64-bit FNV-1a, as the Collector computes it), so every replica,
    and a Collector with the same salt, decides a given trace the same way."""

    type_name = "probabilistic"
    settings_model = ProbabilisticSettings

    def prepare(self) -> None:
        salt = self.settings.hash_salt or _DEFAULT_SALT
        self._salted_state = fnv1a_64(salt.encode())
        self._threshold = collector_threshold(self.settings.sampling_percentage)

    def evaluate(self, trace: TraceView) -> Decision:
        return decide(fnv1a_64(trace.trace_id, self._salted_state) <= self._threshold)

    def sample_rate(self) -> float | None:
        percentage = self.settings.sampling_percentage
        return 100 / percentage if percentage > 0 else None
