"""Every policy type the daemon knows, by name: the built-in ones and those installed packages add
through the `tail_sampler.policies` entry point group, registered through the same checks.

The registry also validates policy entries: each type gets a config model (name, type and the
settings block named after the type), and the registry passes itself to the validation of
sub-policies (see base.LeafSubPolicy), so compound types need not import it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError, create_model
from pydantic_core import InitErrorDetails, PydanticCustomError

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
from sampler.policies.base import Policy, PolicyConfig, PolicySettings

PLUGIN_GROUP = "tail_sampler.policies"
log = logging.getLogger(__name__)

# In the order error messages list the valid types.
BUILTIN_POLICIES: tuple[type[Policy], ...] = (
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


class PolicyTypeError(Exception):
    """A policy type that cannot be registered; the message says why."""


def check_policy_type(name: str, policy: object, taken: Collection[str]) -> type[Policy]:
    """`policy` as a policy type registered under `name`, or PolicyTypeError saying why it cannot be."""
    if not (isinstance(policy, type) and issubclass(policy, Policy)):
        raise PolicyTypeError("it is not a subclass of sampler.policies.base.Policy")
    if getattr(policy, "type_name", None) != name:
        raise PolicyTypeError(f"its type_name is {getattr(policy, 'type_name', None)!r}, not the entry point's name")
    if name in taken:
        raise PolicyTypeError("a policy type of that name exists already")
    if policy.settings_model is not None and not issubclass(policy.settings_model, PolicySettings):
        raise PolicyTypeError("its settings_model is not a subclass of PolicySettings")
    return policy


def _entry_model(type_name: str, policy: type[Policy]) -> type[PolicyConfig]:
    fields: dict[str, Any] = {"type": (Literal[type_name], ...)}
    settings = policy.settings_model
    if settings is not None:
        # The block may be left out only when its defaults are valid on their own.
        try:
            fields[type_name] = (settings, settings())
        except ValidationError:
            fields[type_name] = (settings, ...)
    model = create_model(f"{type_name}_policy", __base__=PolicyConfig, **fields)
    model.policy_type = policy
    return model


def _error(loc: tuple[Any, ...], kind: str, message: str) -> ValidationError:
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)
    return ValidationError.from_exception_data("policy", [detail])


class PolicyRegistry:
    """Policy types by name with the model of their config entry; read-only once built."""

    def __init__(self, policies: Iterable[type[Policy]]) -> None:
        types: dict[str, type[Policy]] = {}
        for policy in policies:
            types[policy.type_name] = check_policy_type(policy.type_name, policy, types)
        self.types: Mapping[str, type[Policy]] = MappingProxyType(types)
        self.leaf_types: tuple[str, ...] = tuple(name for name, policy in types.items() if not policy.compound)
        # A composite holds leaf policies and `and` policies of leaf policies, as in the Collector.
        self.composite_member_types: tuple[str, ...] = (*self.leaf_types, "and")
        self._entry_models: Mapping[str, type[PolicyConfig]] = MappingProxyType(
            {name: _entry_model(name, policy) for name, policy in types.items()}
        )

    @classmethod
    def discover(cls) -> PolicyRegistry:
        """The built-in types and those of the installed plugins. A plugin that cannot be loaded or
        fails the checks a built-in type passes is skipped with an error log."""
        policies = list(BUILTIN_POLICIES)
        taken = {policy.type_name for policy in policies}
        for entry_point in entry_points(group=PLUGIN_GROUP):
            where = f"policy plugin {entry_point.name!r} ({entry_point.value})"
            try:
                loaded = entry_point.load()
            except Exception as exc:  # a broken plugin must not take the built-in policies down
                log.error("%s cannot be loaded: %s", where, exc)
                continue
            try:
                policies.append(check_policy_type(entry_point.name, loaded, taken))
            except PolicyTypeError as exc:
                log.error("%s is skipped: %s", where, exc)
                continue
            taken.add(entry_point.name)
        return cls(policies)

    def entry_model(self, type_name: str) -> type[PolicyConfig]:
        return self._entry_models[type_name]

    def validate(self, body: Any, allowed: Collection[str] | None = None) -> PolicyConfig:
        """Validate one policy entry; errors carry the location and the valid type names.
        `allowed` narrows the types (sub-policies cannot be compound)."""
        valid = ", ".join(allowed if allowed is not None else self.types)
        if not isinstance(body, dict):
            raise _error((), "policy_type", "each policy must be a mapping with name and type")
        type_name = body.get("type")
        if type_name is None:
            raise _error(("type",), "missing", f"required key is missing; valid types: {valid}")
        model = self._entry_models.get(type_name)
        if model is None:
            raise _error(("type",), "policy_type", f"unknown policy type {type_name!r}; valid types: {valid}")
        if allowed is not None and type_name not in allowed:
            raise _error(("type",), "policy_type", f"{type_name!r} cannot be used here; valid types: {valid}")
        return model.model_validate(body, context=self)

    def validate_sub_policy(self, body: Any, composite_member: bool) -> PolicyConfig:
        return self.validate(body, self.composite_member_types if composite_member else self.leaf_types)


POLICIES = PolicyRegistry.discover()
