"""Reloading the policies from the config file: on SIGHUP and when the file changes.

Only the policies and the options of their evaluation take effect without a
restart; buffered traces and the decision caches are kept. An invalid file is
rejected as a whole: the running policies stay, and a log line and
`tail_sampler_config_reloads_total{result="failure"}` say so.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from sampler.config.load import load_config, parse_config
from sampler.config.model import Config
from sampler.config.types import ConfigError
from sampler.decide.engine import TailSampler
from sampler.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# What a reload can change in place; everything else needs a restart.
RELOADABLE_SAMPLING_KEYS = frozenset(
    {"policies", "sample_on_first_match", "drop_pending_traces_on_shutdown", "record_policy"}
)


def file_digest(path: Path) -> str | None:
    """A digest of the file's content (None if it cannot be read), to tell when it changed."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The top-level sections (and tail_sampling keys) that differ but need a restart."""
    changed = []
    for section in type(old).model_fields:
        if section == "tail_sampling":
            for key in type(old.tail_sampling).model_fields:
                if key not in RELOADABLE_SAMPLING_KEYS and getattr(old.tail_sampling, key) != getattr(
                    new.tail_sampling, key
                ):
                    changed.append(f"tail_sampling.{key}")
        elif getattr(old, section) != getattr(new, section):
            changed.append(section)
    return changed


class ConfigReloader:
    def __init__(self, path: str | Path, config: Config, sampler: TailSampler, metrics: Metrics) -> None:
        self.path = Path(path)
        self.config = config
        self._sampler = sampler
        self._metrics = metrics
        self._digest = file_digest(self.path)
        # The config each reload is turned into before it applies (a worker's share: sampler/workers).
        self.transform: Callable[[Config], Config] = lambda config: config
        metrics.config_last_reload_successful.set(1)

    def reload(self, text: str | None = None) -> bool:
        """Load the file (or `text`, the file's content as read by the supervisor of workers) and
        apply its policies; False (and the old policies kept) if it is invalid."""
        self._digest = file_digest(self.path)
        try:
            new = self.transform(load_config(self.path) if text is None else parse_config(text, str(self.path)))
        except Exception as exc:  # ConfigError, or content the loader has no words for: never fatal
            self._metrics.config_reloads.labels("failure").inc()
            self._metrics.config_last_reload_successful.set(0)
            reason = exc if isinstance(exc, ConfigError) else f"{self.path}: {type(exc).__name__}: {exc}"
            log.error("config reload rejected; the running policies stay in effect: %s", reason)
            return False
        self._sampler.apply(new.tail_sampling)
        ignored = restart_only_changes(self.config, new)
        self.config = self.config.model_copy(update={"tail_sampling": new.tail_sampling})
        self._metrics.config_reloads.labels("success").inc()
        self._metrics.config_last_reload_successful.set(1)
        log.info(
            "config reloaded from %s: policies now %s",
            self.path,
            ", ".join(f"{p.name} ({p.describe()})" for p in self._sampler.policies),
        )
        if ignored:
            log.warning("changes to %s take effect only after a restart", ", ".join(ignored))
        return True

    async def watch(self, interval: float) -> None:
        """Reload whenever the file's content changes; runs until cancelled, whatever the file holds."""
        while True:
            await asyncio.sleep(interval)
            digest = file_digest(self.path)
            if digest is not None and digest != self._digest:
                try:
                    self.reload()
                except Exception:  # applying a valid config failed: a bug, but the watcher goes on
                    self._metrics.config_reloads.labels("failure").inc()
                    self._metrics.config_last_reload_successful.set(0)
                    log.exception("config reload of %s failed; the running policies stay in effect", self.path)
