"""The `tail_sampling` section: the window, the decision options and the policies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sampler.config.types import Duration, Model


class DecisionCacheConfig(Model):
    sampled_cache_size: int = Field(100_000, ge=0)
    non_sampled_cache_size: int = Field(100_000, ge=0)
    # Decisions are journaled beside this file as they are made and compacted into it, so late
    # spans after a restart, even after a crash, follow their trace's decision (decide/journal.py).
    persist_path: str | None = None


class WindowStorageConfig(Model):
    """The durable window: requests are acknowledged once their spans are in a log under `directory`."""

    directory: str
    # always: a request is acknowledged once its spans reach the device (one sync per round of
    # requests); interval: every fsync_interval; never: left to the operating system (survives
    # a crash of the daemon, not of the machine).
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval: Duration = Field(1.0, gt=0)
    max_size_mib: float = Field(1024, gt=0)
    # When the log reaches max_size_mib: refuse requests (clients retry after a hint), or decide
    # the oldest traces early to free room, refusing only if that frees none in time.
    when_full: Literal["refuse", "decide_early"] = "refuse"


class TailSamplingConfig(Model):
    decision_wait: Duration = Field(30.0, gt=0)
    decision_wait_after_root_received: Duration = Field(0.0, ge=0)
    num_traces: int = Field(50_000, gt=0)
    num_shards: int = Field(4, gt=0, le=1024)
    expected_new_traces_per_sec: int = Field(0, ge=0)
    sample_on_first_match: bool = False
    maximum_trace_size_bytes: int = Field(0, ge=0)
    block_on_overflow: bool = False
    # trace-complete: decide whole traces when due. span-ingest: decide as spans arrive,
    # with stateless policies only (see sampler/engine.py).
    sampling_strategy: Literal["trace-complete", "span-ingest"] = "trace-complete"
    # With block_on_overflow: how long a request whose client set no deadline (HTTP) waits for room.
    block_on_overflow_timeout: Duration = Field(5.0, gt=0)
    # Kept spans' scopes carry tailsampling.policy and friends (see sampler/records.py).
    record_policy: bool = True
    drop_pending_traces_on_shutdown: bool = False
    # Bound on the estimated memory of buffered traces (span bytes plus bookkeeping, see
    # sampler/buffer.py); when passed, the oldest traces are decided early. 0 turns it off.
    memory_limit_mib: float = Field(0, ge=0)
    # A trace reaching this many buffered spans is decided at once. 0 turns it off.
    max_spans_per_trace: int = Field(0, ge=0)
    # Log records naming no trace (no trace ID) have no decision to follow: forwarded at once, or dropped.
    untraced_logs: Literal["pass_through", "drop"] = "pass_through"
    decision_cache: DecisionCacheConfig = DecisionCacheConfig()
    storage: WindowStorageConfig | None = None
    # Validated per policy type in a second step (see parse_config), since the
    # models of policy types come from the policy registry.
    policies: list[Any] = Field(min_length=1)
