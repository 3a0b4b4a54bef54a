"""What each worker process gets of the config: its share of every bound and rate, directories of
its own, and the receiver ports the supervisor holds.

Every bound and rate in the file is for the whole daemon. Each worker decides the traces whose
IDs hash to it, 1/workers of them, so it gets 1/workers of what bounds or paces them: the window
(`num_traces`, `memory_limit_mib`), the decision caches, the exporter queues, and the rates and
budgets of the policies (each type states its share: Policy.settings_for_workers). What a worker
writes to disk goes to a directory of its own, `worker-<index>`, beside what the file names, so
two workers never share a file. Bounds per trace or per request stay as written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from sampler.config.exporters import QueueConfig, QueueStorageConfig
from sampler.config.model import Config
from sampler.config.receivers import ReceiversConfig
from sampler.config.tail_sampling import TailSamplingConfig, WindowStorageConfig
from sampler.forward.disk_queue.format import holds_batches, queue_directory
from sampler.telemetry.endpoints import split_endpoint
from sampler.window.log import STORE as WINDOW_STORE

log = logging.getLogger("sampler")

_WORKER_PREFIX = "worker-"
# Either store's settings (both have a directory and a max_size_mib), or None for no store.
StorageT = TypeVar("StorageT", WindowStorageConfig | None, QueueStorageConfig | None)


def worker_directory(path: str, index: int) -> str:
    """The worker's own directory for what the config puts in `path` (a directory)."""
    return str(Path(path) / f"{_WORKER_PREFIX}{index}")


def worker_file(path: str, index: int) -> str:
    """The worker's own copy of the file `path`: in a `worker-<index>` directory beside it."""
    file = Path(path)
    return str(file.parent / f"{_WORKER_PREFIX}{index}" / file.name)


def _share(value: int, workers: int) -> int:
    """An integer bound's share, rounded up: the shares add up to at least the bound, and none is 0."""
    return max(1, math.ceil(value / workers)) if value else 0


def worker_config(config: Config, index: int, workers: int, ports: Mapping[str, int]) -> Config:
    """The config worker `index` of `workers` runs. `ports` are the receiver ports the supervisor
    bound (by receiver: grpc, http, zipkin), for endpoints written with port 0."""
    return config.model_copy(
        update={
            "receivers": _receivers(config.receivers, ports),
            "tail_sampling": _tail_sampling(config.tail_sampling, index, workers),
            "exporters": {name: _exporter(body, index, workers) for name, body in config.exporters.items()},
            # The supervisor watches the file and tells every worker to reload.
            "reload": config.reload.model_copy(update={"watch_file": False}),
            # The supervisor checks admin.auth's token; a worker answers its supervisor alone.
            "admin": config.admin.model_copy(update={"auth": None}),
        }
    )


def _tail_sampling(sampling: TailSamplingConfig, index: int, workers: int) -> TailSamplingConfig:
    cache = sampling.decision_cache
    return sampling.model_copy(
        update={
            # The window's log and decision journal of this worker's traces.
            "storage": _storage_share(sampling.storage, index, workers),
            "num_traces": _share(sampling.num_traces, workers),
            "expected_new_traces_per_sec": _share(sampling.expected_new_traces_per_sec, workers),
            "memory_limit_mib": sampling.memory_limit_mib / workers,
            "decision_cache": cache.model_copy(
                update={
                    "sampled_cache_size": _share(cache.sampled_cache_size, workers),
                    "non_sampled_cache_size": _share(cache.non_sampled_cache_size, workers),
                    "persist_path": cache.persist_path and worker_file(cache.persist_path, index),
                }
            ),
            "policies": [policy.for_workers(workers) for policy in sampling.policies],
        }
    )


def _storage_share(storage: StorageT, index: int, workers: int) -> StorageT:
    """A store's settings for one worker: a directory of its own and its share of the cap."""
    if storage is None:
        return storage
    return storage.model_copy(
        update={"directory": worker_directory(storage.directory, index), "max_size_mib": storage.max_size_mib / workers}
    )


def share_policies(sampling: TailSamplingConfig, workers: int) -> TailSamplingConfig:
    """The policies alone as each worker runs them (what a reload changes)."""
    return sampling.model_copy(update={"policies": [policy.for_workers(workers) for policy in sampling.policies]})


def _exporter(body: Any, index: int, workers: int) -> Any:
    queue: QueueConfig = body.sending_queue
    storage = _storage_share(queue.storage, index, workers)
    shared_queue = queue.model_copy(update={"queue_size": _share(queue.queue_size, workers), "storage": storage})
    return body.model_copy(update={"sending_queue": shared_queue})


def _receivers(receivers: ReceiversConfig, ports: Mapping[str, int]) -> ReceiversConfig:
    def bound(protocol: Any, name: str) -> Any:
        if protocol is None or name not in ports:
            return protocol
        host, _ = split_endpoint(protocol.endpoint)
        host = f"[{host}]" if ":" in host else host
        return protocol.model_copy(update={"endpoint": f"{host}:{ports[name]}"})

    protocols = receivers.otlp.protocols
    otlp = receivers.otlp.model_copy(
        update={
            "protocols": protocols.model_copy(
                update={"grpc": bound(protocols.grpc, "grpc"), "http": bound(protocols.http, "http")}
            )
        }
    )
    return receivers.model_copy(update={"otlp": otlp, "zipkin": bound(receivers.zipkin, "zipkin")})


def receiver_endpoints(config: Config) -> dict[str, str]:
    """The configured endpoint of each receiver that is on, by name (grpc, http, zipkin)."""
    protocols = config.receivers.otlp.protocols
    endpoints = {}
    if protocols.grpc is not None:
        endpoints["grpc"] = protocols.grpc.endpoint
    if protocols.http is not None:
        endpoints["http"] = protocols.http.endpoint
    if config.receivers.zipkin is not None:
        endpoints["zipkin"] = config.receivers.zipkin.endpoint
    return endpoints


def _unread_directories(base: Path, workers: int) -> list[Path]:
    """Directories under a configured `base` that no process of a run with `workers` uses: the
    base itself when there are workers (each uses its `worker-<i>`), and `worker-<i>` beyond them."""
    in_use = {base} if workers == 1 else {Path(worker_directory(str(base), index)) for index in range(workers)}
    candidates = [base]
    if base.is_dir():
        candidates += sorted(child for child in base.iterdir() if child.name.startswith(_WORKER_PREFIX))
    return [candidate for candidate in candidates if candidate not in in_use]


def orphaned_state(config: Config, workers: int) -> list[tuple[Path, str]]:
    """Persistent exporter queues and window logs with data in them that no process of this run
    reads, each with what it holds: left by a run with another number of workers (or by one
    process, which uses the configured directory itself)."""
    found: list[tuple[Path, str]] = []
    for name, body in config.exporters.items():
        storage = body.sending_queue.storage
        if storage is not None:
            for base in _unread_directories(Path(storage.directory), workers):
                queue = queue_directory(str(base), name)
                if holds_batches(queue):
                    found.append((queue, f"batches of exporter {name}'s persistent queue"))
    window = config.tail_sampling.storage
    if window is not None:
        for base in _unread_directories(Path(window.directory), workers):
            if any((base / WINDOW_STORE).glob("*.seg")):
                found.append((base / WINDOW_STORE, "acknowledged spans of the window's log"))
    return found


def warn_orphaned_state(config: Config, workers: int) -> None:
    for directory, held in orphaned_state(config, workers):
        log.warning(
            "%s holds %s that no process of this run reads (a run with another number of workers "
            "left them): run with that number of workers until they are sent, then change it",
            directory,
            held,
        )
