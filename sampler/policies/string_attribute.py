import re
from collections import OrderedDict

from pydantic import Field, model_validator

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide


class StringAttributeSettings(PolicySettings):
    key: str = Field(min_length=1)
    values: list[str] = Field(min_length=1)
    enabled_regex_matching: bool = False
    cache_max_size: int = Field(128, ge=0)
    invert_match: bool = False

    @model_validator(mode="after")
    def _regexes_compile(self) -> "StringAttributeSettings":
        if self.enabled_regex_matching:
            for pattern in self.values:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return self


class StringAttributePolicy(Policy):
    """Samples traces where a span or its resource has `key` set to one of `values`
    (exactly, or by regular expression with enabled_regex_matching).
    With invert_match, samples the traces where no span or resource matches."""

    type_name = "string_attribute"
    settings_model = StringAttributeSettings

    def prepare(self) -> None:
        self._values = frozenset(value for value in self.settings.values if value)
        # Compiled once here; the regexes are tried with search, anchored only if the user anchors them.
        self._patterns = (
            tuple(re.compile(p) for p in self.settings.values) if self.settings.enabled_regex_matching else ()
        )
        self._match_cache: OrderedDict[str, bool] = OrderedDict()

    def _matches(self, value: str) -> bool:
        if not self._patterns:
            return value in self._values
        cache = self._match_cache
        hit = cache.get(value)
        if hit is not None:
            return hit
        hit = any(pattern.search(value) for pattern in self._patterns)
        cache[value] = hit
        if len(cache) > (self.settings.cache_max_size or 128):
            cache.popitem(last=False)
        return hit

    def evaluate(self, trace: TraceView) -> Decision:
        matched = any(
            isinstance(value, str) and self._matches(value) for value in trace.attribute_values(self.settings.key)
        )
        return decide(matched != self.settings.invert_match)
