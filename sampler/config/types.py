"""The building blocks of every config model: the base model, durations, and the error type."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(Exception):
    """An invalid configuration; the message names file, line and key path."""


def parse_duration(value: Any) -> float:
    """A Go-style duration ("30s", "1m30s", "250ms") in seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s or 250ms")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise ValueError(f"duration {value!r} has no unit; write it like 30s, 250ms or 1m")
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s or 250ms")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"invalid duration {value!r}; valid units are ns, us, ms, s, m, h (e.g. 30s, 1m30s)")
    return total


DURATION_JSON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": "^(0|([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h))+$"},
        {"const": 0},
    ],
    "description": "a duration such as 30s, 250ms or 1m30s",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
