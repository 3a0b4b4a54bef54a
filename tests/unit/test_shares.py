"""What each worker gets of the config: its share of every bound and rate, directories of its
own, the ports the supervisor holds (sampler/workers/shares.py, and each policy type's share)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sampler.config import Config, parse_config
from sampler.policies.base import Decision
from sampler.policies.registry import POLICIES
from sampler.workers.shares import orphaned_state, worker_config
from tests.support import make_span
from tests.unit.helpers import FakeClock, decide

RATE = {"name": "rate", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 100, "burst_capacity": 40}}


def _config(tmp_path: Path, policies: list[dict[str, Any]] | None = None, **sampling: Any) -> Config:
    data = {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "[::1]:4318"}}},
            "zipkin": {"endpoint": "0.0.0.0:0"},
        },
        "tail_sampling": {
            "num_traces": 1001,
            "memory_limit_mib": 64,
            "decision_cache": {
                "sampled_cache_size": 10,
                "non_sampled_cache_size": 0,
                "persist_path": str(tmp_path / "state" / "decisions.bin"),
            },
            "policies": policies or [RATE],
            **sampling,
        },
        "exporters": {
            "otlp/backend": {
                "endpoint": "127.0.0.1:4317",
                "sending_queue": {
                    "queue_size": 5,
                    "storage": {"directory": str(tmp_path / "queue"), "max_size_mib": 100},
                },
            },
            "file": {"path": str(tmp_path / "kept.jsonl")},
        },
        "workers": 4,
    }
    return parse_config(yaml.safe_dump(data), "<test>")


def test_each_worker_gets_a_share_of_every_bound_and_directories_of_its_own(tmp_path: Path) -> None:
    config = _config(tmp_path)
    shares = [worker_config(config, index, 4, {"grpc": 4317, "zipkin": 9411}) for index in range(4)]
    for index, share in enumerate(shares):
        sampling = share.tail_sampling
        assert sampling.num_traces == 251  # rounded up: the shares hold at least the whole
        assert sampling.memory_limit_mib == 16
        assert sampling.decision_cache.sampled_cache_size == 3
        assert sampling.decision_cache.non_sampled_cache_size == 0  # off stays off
        assert sampling.decision_cache.persist_path == str(tmp_path / "state" / f"worker-{index}" / "decisions.bin")
        queue = share.exporters["otlp/backend"].sending_queue
        assert queue.queue_size == 2
        assert queue.storage.directory == str(tmp_path / "queue" / f"worker-{index}")
        assert queue.storage.max_size_mib == 25
        # The file exporter's output is one file: each worker appends whole lines to it.
        assert share.exporters["file"].path == str(tmp_path / "kept.jsonl")
        assert share.reload.watch_file is False  # the supervisor watches and tells every worker
    protocols = shares[0].receivers.otlp.protocols
    assert protocols.grpc.endpoint == "127.0.0.1:4317"  # port 0 became the supervisor's port
    assert protocols.http.endpoint == "[::1]:4318"  # not bound by the supervisor: as written
    assert shares[0].receivers.zipkin.endpoint == "0.0.0.0:9411"
    assert config.tail_sampling.num_traces == 1001  # the daemon's own config is left alone


def _policy_settings(config: Config) -> Any:
    return config.tail_sampling.policies[0].settings


def test_rates_and_budgets_are_split_across_workers(tmp_path: Path) -> None:
    composite = {
        "name": "budget",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": 1000,
            "composite_sub_policy": [
                {"name": "bytes", "type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": 4000}},
                {
                    "name": "both",
                    "type": "and",
                    "and": {"and_sub_policy": [RATE, {"name": "all", "type": "always_sample"}]},
                },
            ],
            "rate_allocation": [{"policy": "bytes", "percent": 50}, {"policy": "both", "percent": 50}],
        },
    }
    share = worker_config(_config(tmp_path, [composite]), 1, 4, {})
    settings = _policy_settings(share)
    assert settings.max_total_spans_per_second == 250
    bytes_limiting, both = settings.composite_sub_policy
    assert bytes_limiting.settings.bytes_per_second == 1000
    assert bytes_limiting.settings.burst_capacity is None  # its default, twice the (shared) rate
    rate = both.settings.and_sub_policy[0].settings
    assert (rate.spans_per_second, rate.burst_capacity) == (25, 10)

    throughput = {"name": "t", "type": "throughput", "throughput": {"goal_throughput_per_sec": 10}}
    assert _policy_settings(worker_config(_config(tmp_path, [throughput]), 0, 4, {})).goal_throughput_per_sec == 2.5
    negated = {"name": "n", "type": "not", "not": {"not_sub_policy": RATE}}
    assert (
        _policy_settings(worker_config(_config(tmp_path, [negated]), 0, 2, {})).not_sub_policy.settings.spans_per_second
        == 50
    )
    dropped = {"name": "d", "type": "drop", "drop": {"drop_sub_policy": [RATE]}}
    assert (
        _policy_settings(worker_config(_config(tmp_path, [dropped]), 0, 2, {}))
        .drop_sub_policy[0]
        .settings.spans_per_second
        == 50
    )


def test_ratios_and_per_trace_rules_stay_as_written(tmp_path: Path) -> None:
    for policy in (
        {"name": "d", "type": "dynamic", "dynamic": {"goal_sample_rate": 10, "key_fields": ["service.name"]}},
        {"name": "p", "type": "probabilistic", "probabilistic": {"sampling_percentage": 5}},
        {"name": "a", "type": "always_sample"},
    ):
        config = _config(tmp_path, [policy])
        assert worker_config(config, 0, 4, {}).tail_sampling.policies == config.tail_sampling.policies
    config = _config(tmp_path, max_spans_per_trace=50, maximum_trace_size_bytes=4096)
    sampling = worker_config(config, 0, 4, {}).tail_sampling
    assert (sampling.max_spans_per_trace, sampling.maximum_trace_size_bytes) == (50, 4096)


def test_a_worker_with_its_share_of_the_rate_keeps_its_share_of_the_spans() -> None:
    entry = POLICIES.validate(RATE)
    assert entry.for_workers(1) is entry
    clock = FakeClock()
    policy = entry.for_workers(4).build(clock)
    trace_id = bytes(15) + b"\x01"
    assert decide(policy, [make_span(trace_id) for _ in range(10)]) is Decision.SAMPLED  # burst 10 of 40
    assert decide(policy, [make_span(trace_id)]) is Decision.NOT_SAMPLED
    clock.advance(0.25)  # 25 spans/s: 6.25 tokens (at the whole rate, 25)
    assert decide(policy, [make_span(trace_id) for _ in range(7)]) is Decision.NOT_SAMPLED
    assert decide(policy, [make_span(trace_id) for _ in range(6)]) is Decision.SAMPLED


def test_queues_left_by_a_run_with_another_number_of_workers_are_found(tmp_path: Path) -> None:
    config = _config(tmp_path)
    queue = tmp_path / "queue"
    for directory in (
        "otlp%2Fbackend",
        "worker-1/otlp%2Fbackend",
        "worker-3/otlp%2Fbackend",
        "worker-5/otlp%2Fbackend",
    ):
        (queue / directory).mkdir(parents=True)
        (queue / directory / "queue.lock").touch()
    (queue / "worker-3" / "otlp%2Fbackend" / "00000001.seg").touch()
    (queue / "worker-5" / "otlp%2Fbackend" / "00000001.seg").touch()
    assert orphaned_queues(config, 4) == [queue / "worker-5" / "otlp%2Fbackend"]
    assert orphaned_queues(config, 2) == [queue / "worker-3" / "otlp%2Fbackend", queue / "worker-5" / "otlp%2Fbackend"]
    (queue / "otlp%2Fbackend" / "00000002.seg").touch()  # left by one process
    assert queue / "otlp%2Fbackend" in orphaned_queues(config, 4)
    assert queue / "otlp%2Fbackend" not in orphaned_queues(config, 1)  # read by one process
    assert queue / "worker-3" / "otlp%2Fbackend" in orphaned_queues(config, 1)


def orphaned_queues(config: Config, workers: int) -> list[Path]:
    return [directory for directory, held in orphaned_state(config, workers) if "persistent queue" in held]


def test_window_logs_left_by_a_run_with_another_number_of_workers_are_found(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    config = _config(tmp_path, storage={"directory": str(storage)})
    for name in ("window", "worker-0/window", "worker-2/window"):
        (storage / name).mkdir(parents=True)
    assert orphaned_state(config, 2) == []  # nothing written in any of them
    (storage / "worker-2" / "window" / "00000001.seg").touch()
    (storage / "window" / "00000001.seg").touch()
    assert orphaned_state(config, 2) == [
        (storage / "window", "acknowledged spans of the window's log"),
        (storage / "worker-2" / "window", "acknowledged spans of the window's log"),
    ]
    assert orphaned_state(config, 3) == [(storage / "window", "acknowledged spans of the window's log")]
    assert orphaned_state(config, 1) == [(storage / "worker-2" / "window", "acknowledged spans of the window's log")]
