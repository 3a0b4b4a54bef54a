"""The daemon's log output: plain text or JSON lines, and the effective-config summary it logs at start.

Fields passed with `extra=` are part of the record: JSON lines carry them as keys of their own,
text lines append them as `key=value` (values as compact JSON).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from sampler.config.model import Config

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
# Keys whose values are credentials wherever they appear in the config.
_SECRET_KEY = re.compile(r"token|password|passwd|secret|api[_-]?key|authorization|credential", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+(?=@)")
_RESERVED = frozenset(RESERVED_ATTRS) | {"message", "asctime", "taskName"}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _RESERVED}


class TextFormatter(logging.Formatter):
    """The classic one-line format, with any extra fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra_fields(record)
        if not extra:
            return line
        fields = " ".join(
            f"{key}={json.dumps(value, separators=(',', ':'), default=str)}" for key, value in extra.items()
        )
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {fields}{newline}{rest}"


def json_formatter() -> JsonFormatter:
    """JSON lines: time (ISO 8601, UTC), level, logger, message, then the extra fields."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
    )


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send the daemon's logs to stderr at `level`, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def mask_secrets(value: Any, key: str = "") -> Any:
    """`value` with credentials replaced by MASK: everything under a `headers` key, values of keys
    naming tokens, passwords or secrets, and user:password in URLs."""
    if isinstance(value, dict):
        if key == "headers":
            return {name: MASK for name in value}
        return {name: mask_secrets(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [mask_secrets(item, key) for item in value]
    if value and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str):
        return _URL_USERINFO.sub(MASK, value)
    return value


def effective_config(config: Config) -> dict[str, Any]:
    """The whole validated config, defaults filled in, durations in seconds, credentials masked."""
    return mask_secrets(config.model_dump(mode="json"))
