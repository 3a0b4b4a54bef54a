"""A JSON Schema of the whole configuration, for editors (YAML language server) and CI checks.

It is generated from the same typed models that validate the config, so it
cannot drift from what the daemon accepts. Policies and exporters, which the
models pick by their `type` (or key prefix), are spelled out as alternatives.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sampler.config.model import Config
from sampler.config.types import DURATION_JSON_SCHEMA
from sampler.forward.exporters.registry import EXPORTERS
from sampler.policies.registry import POLICIES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SUB_POLICY_FIELDS = {
    "and": ("and_sub_policy", "leaf"),
    "drop": ("drop_sub_policy", "leaf"),
    "not": ("not_sub_policy", "leaf_single"),
    "composite": ("composite_sub_policy", "composite_member"),
}


def config_json_schema() -> dict[str, Any]:
    entry_models = {name: POLICIES.entry_model(name) for name in POLICIES.types}
    models: list[type[BaseModel]] = [
        Config,
        *(kind.config_model for kind in EXPORTERS.values()),
        *entry_models.values(),
    ]
    refs, document = models_json_schema([(model, "validation") for model in models], ref_template="#/$defs/{model}")
    defs: dict[str, Any] = document["$defs"]

    def ref(model: type) -> dict[str, Any]:
        return dict(refs[(model, "validation")])

    def policy_choice(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        return {"anyOf": [ref(entry_models[name]) for name in names]}

    defs["Policy"] = policy_choice(list(POLICIES.types))
    defs["LeafPolicy"] = policy_choice(POLICIES.leaf_types)
    defs["CompositeMemberPolicy"] = policy_choice(POLICIES.composite_member_types)

    sampling = defs["TailSamplingConfig"]
    sampling["properties"]["policies"]["items"] = {"$ref": "#/$defs/Policy"}

    # Sub-policies are validated by the registry at run time; give editors their shapes.
    for type_name, (field, kind) in _SUB_POLICY_FIELDS.items():
        settings_name = POLICIES.types[type_name].settings_model.__name__  # type: ignore[union-attr]
        properties = defs[settings_name]["properties"]
        target = {"$ref": "#/$defs/CompositeMemberPolicy" if kind == "composite_member" else "#/$defs/LeafPolicy"}
        if kind == "leaf_single":
            properties[field] = {**target, "description": "exactly one policy"}
        else:
            properties[field]["items"] = target

    exporters = {f"^{kind}(/.+)?$": ref(exporter.config_model) for kind, exporter in EXPORTERS.items()}
    for definition in defs.values():
        for prop in definition.get("properties", {}).values():
            # Defaults of durations are stored in seconds; show them as the user writes them.
            if prop.get("description") == DURATION_JSON_SCHEMA["description"] and isinstance(
                prop.get("default"), (int, float)
            ):
                prop["default"] = f"{prop['default']:g}s"
    root = dict(defs.pop("Config"))
    root["properties"]["exporters"] = {
        "type": "object",
        "minProperties": 1,
        "patternProperties": exporters,
        "additionalProperties": False,
        "description": "one or more exporters, keyed `type` or `type/name`: " + ", ".join(EXPORTERS),
    }
    return {"$schema": SCHEMA_DIALECT, **root, "title": "tail-sampler configuration", "$defs": defs}
