"""Every key the daemon's config accepts, read from the JSON Schema that `tail-sampler schema`
prints (generated from the same pydantic models that validate the file)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

from tests.docs.markdown import REPO

NO_DEFAULT = object()
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Key:
    path: str
    default: Any  # NO_DEFAULT when the model has none
    required: bool
    duration: bool


@cache
def config_schema() -> dict[str, Any]:
    # The CLI, not an import: the command is the interface that stays put when modules move.
    result = subprocess.run(
        [sys.executable, "-m", "sampler", "schema"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow $ref and optional (anyOf with null) wrappers to the schema that has the content."""
    while True:
        if "$ref" in node:
            rest = {key: value for key, value in node.items() if key != "$ref"}
            node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **rest}
        elif "anyOf" in node and not _is_duration(node):
            options = [option for option in node["anyOf"] if option.get("type") != "null"]
            if len(options) != 1 or "$ref" not in options[0]:
                return node
            rest = {key: value for key, value in node.items() if key != "anyOf"}
            node = {**options[0], **rest}
        else:
            return node


def _is_duration(node: dict[str, Any]) -> bool:
    return str(node.get("description", "")).startswith("a duration")


def _walk(node: dict[str, Any], path: str, default: Any, required: bool, stop: set[str], found: list[Key]) -> None:
    defs = config_schema()["$defs"]
    node = _resolve(node, defs)
    properties = node.get("properties")
    if properties and path not in stop:
        for name, child in properties.items():
            # A section's own default (e.g. the file exporter's sending_queue) wins over its model's defaults.
            if isinstance(default, dict) and name in default:
                child_default = default[name]
            else:
                child_default = _resolve(child, defs).get("default", child.get("default", NO_DEFAULT))
            child_path = f"{path}.{name}" if path else name
            _walk(child, child_path, child_default, name in node.get("required", []), stop, found)
        return
    found.append(Key(path, default, required, _is_duration(node)))


@cache
def config_keys() -> dict[str, Key]:
    """Leaf keys of the daemon's config by dotted path; exporters as `exporters.<type>.…`.
    `tail_sampling.policies` is one key here: the policy reference documents what goes in it."""
    schema = config_schema()
    found: list[Key] = []
    _walk(schema, "", NO_DEFAULT, True, {"tail_sampling.policies", "exporters"}, found)
    for pattern, exporter in schema["properties"]["exporters"]["patternProperties"].items():
        kind = re.fullmatch(r"\^(\w+)\(/\.\+\)\?\$", pattern)
        assert kind, f"exporter key pattern {pattern!r} is not ^type(/.+)?$"
        _walk(exporter, f"exporters.{kind[1]}", NO_DEFAULT, True, set(), found)
    return {key.path: key for key in found}


@cache
def policy_settings() -> dict[str, set[str]]:
    """Each policy type and the keys of its settings block (`latency: {threshold_ms: …}`)."""
    defs = config_schema()["$defs"]
    settings: dict[str, set[str]] = {}
    for option in defs["Policy"]["anyOf"]:
        entry = _resolve(option, defs)
        kind = entry["properties"]["type"]["const"]
        block = entry["properties"].get(kind)
        settings[kind] = set(_resolve(block, defs).get("properties", {})) if block else set()
    return settings


def seconds(text: str) -> float:
    """A Go-style duration in seconds (the docs write defaults the way users write them)."""
    if text in ("0", ""):
        return 0.0
    parts = list(_DURATION_PART.finditer(text))
    assert parts and "".join(part[0] for part in parts) == text, f"{text!r} is not a duration"
    return sum(float(part[1]) * _DURATION_UNITS[part[2]] for part in parts)
