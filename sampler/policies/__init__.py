"""Policy types, one module each, all behind `sampler.policies.base.Policy`."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import InitErrorDetails, PydanticCustomError

from sampler.clock import Clock
from sampler.policies import (
    always_sample,
    and_,
    boolean_attribute,
    bytes_limiting,
    composite,
    drop,
    dynamic,
    latency,
    not_,
    numeric_attribute,
    ottl_condition,
    probabilistic,
    rate_limiting,
    span_count,
    status_code,
    string_attribute,
    throughput,
    trace_flags,
    trace_state,
)
from sampler.policies.base import Decision, Policy, PolicySettings, TraceView

PLUGIN_GROUP = "tail_sampler.policies"
log = logging.getLogger(__name__)

BUILTIN_POLICY_TYPES: Mapping[str, type[Policy]] = MappingProxyType(
    {
        cls.type_name: cls
        for cls in (
            always_sample.AlwaysSamplePolicy,
            latency.LatencyPolicy,
            status_code.StatusCodePolicy,
            probabilistic.ProbabilisticPolicy,
            rate_limiting.RateLimitingPolicy,
            string_attribute.StringAttributePolicy,
            numeric_attribute.NumericAttributePolicy,
            boolean_attribute.BooleanAttributePolicy,
            span_count.SpanCountPolicy,
            bytes_limiting.BytesLimitingPolicy,
            trace_state.TraceStatePolicy,
            trace_flags.TraceFlagsPolicy,
            ottl_condition.OttlConditionPolicy,
            dynamic.DynamicPolicy,
            throughput.ThroughputPolicy,
            and_.AndPolicy,
            drop.DropPolicy,
            not_.NotPolicy,
            composite.CompositePolicy,
        )
    }
)


def _plugin_policy_types() -> dict[str, type[Policy]]:
    """Policy types added by installed packages through the `tail_sampler.policies` entry point group.

    The entry point's name is the policy type; its object a Policy subclass whose
    type_name is that name. A plugin that fails these checks is skipped with an error log."""
    found: dict[str, type[Policy]] = {}
    for entry_point in entry_points(group=PLUGIN_GROUP):
        where = f"policy plugin {entry_point.name!r} ({entry_point.value})"
        try:
            policy = entry_point.load()
        except Exception as exc:  # a broken plugin must not take the built-in policies down
            log.error("%s cannot be loaded: %s", where, exc)
            continue
        problem = None
        if not (isinstance(policy, type) and issubclass(policy, Policy)):
            problem = "it is not a subclass of sampler.policies.base.Policy"
        elif getattr(policy, "type_name", None) != entry_point.name:
            problem = f"its type_name is {getattr(policy, 'type_name', None)!r}, not the entry point's name"
        elif entry_point.name in BUILTIN_POLICY_TYPES or entry_point.name in found:
            problem = "a policy type of that name exists already"
        elif policy.settings_model is not None and not issubclass(policy.settings_model, PolicySettings):
            problem = "its settings_model is not a subclass of PolicySettings"
        if problem:
            log.error("%s is skipped: %s", where, problem)
            continue
        found[entry_point.name] = policy
    return found


POLICY_TYPES: Mapping[str, type[Policy]] = MappingProxyType({**BUILTIN_POLICY_TYPES, **_plugin_policy_types()})
LEAF_TYPES: tuple[str, ...] = tuple(name for name, policy in POLICY_TYPES.items() if not policy.compound)


class PolicyConfig(BaseModel):
    """One entry of `tail_sampling.policies`: name, type, and the block named after the type."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    type: str

    @property
    def settings(self) -> Any:
        return getattr(self, self.type, None)


def _entry_model(type_name: str, policy: type[Policy]) -> type[PolicyConfig]:
    fields: dict[str, Any] = {"type": (Literal[type_name], ...)}  # type: ignore[valid-type]
    settings = policy.settings_model
    if settings is not None:
        # The block may be left out only when its defaults are valid on their own.
        try:
            fields[type_name] = (settings, settings())
        except ValidationError:
            fields[type_name] = (settings, ...)
    return create_model(f"{type_name}_policy", __base__=PolicyConfig, **fields)


_ENTRY_MODELS: Mapping[str, type[PolicyConfig]] = MappingProxyType(
    {type_name: _entry_model(type_name, policy) for type_name, policy in POLICY_TYPES.items()}
)


def policy_model(type_name: Any) -> type[PolicyConfig]:
    return _ENTRY_MODELS[type_name]


def validate_policy_config(body: Any, allowed: Collection[str] | None = None) -> PolicyConfig:
    """Validate one policy entry; errors carry the location and the valid type names.
    `allowed` narrows the types (sub-policies cannot be compound)."""
    valid = ", ".join(allowed if allowed is not None else POLICY_TYPES)
    if not isinstance(body, dict):
        raise _error((), "policy_type", "each policy must be a mapping with name and type")
    type_name = body.get("type")
    if type_name is None:
        raise _error(("type",), "missing", f"required key is missing; valid types: {valid}")
    model = _ENTRY_MODELS.get(type_name)
    if model is None:
        raise _error(("type",), "policy_type", f"unknown policy type {type_name!r}; valid types: {valid}")
    if allowed is not None and type_name not in allowed:
        raise _error(("type",), "policy_type", f"{type_name!r} cannot be used here; valid types: {valid}")
    return model.model_validate(body)


def _error(loc: tuple[Any, ...], kind: str, message: str) -> ValidationError:
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)
    return ValidationError.from_exception_data("policy", [detail])


# Policies whose answer depends on more than the spans seen so far (a budget, a learned rate).
_STATEFUL_TYPES = frozenset({"rate_limiting", "bytes_limiting", "composite", "dynamic", "throughput"})


def stateful_reason(config: PolicyConfig) -> str | None:
    """Why a policy cannot decide traces span by span as they arrive (span-ingest), or None."""
    if config.type in _STATEFUL_TYPES:
        return f"{config.type} keeps state across traces"
    settings = config.settings
    if config.type == "latency" and settings.upper_threshold_ms:
        return "latency with upper_threshold_ms can change its answer as spans arrive"
    if config.type == "span_count" and settings.max_spans:
        return "span_count with max_spans can change its answer as spans arrive"
    if config.type == "not":
        return "not can change its answer as spans arrive"
    for field in ("and_sub_policy", "drop_sub_policy"):
        for sub in getattr(settings, field, ()) or ():
            reason = stateful_reason(sub)
            if reason:
                return f"its sub-policy {sub.name!r}: {reason}"
    return None


def build_policy(config: PolicyConfig, clock: Clock) -> Policy:
    return POLICY_TYPES[config.type](config.name, config.settings, clock)


__all__ = [
    "LEAF_TYPES",
    "POLICY_TYPES",
    "Decision",
    "Policy",
    "PolicyConfig",
    "TraceView",
    "build_policy",
    "validate_policy_config",
]
