"""Reading deploy/kubernetes as kubectl would: the kustomization's resources, one
document per object, and the lookups the tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sampler.config import Config, parse_config

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
COLLECTOR_DIR = REPO / "deploy" / "collector"


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())


def objects() -> list[dict[str, Any]]:
    """Every object the kustomization applies, in order."""
    found = []
    for resource in kustomization()["resources"]:
        found.extend(doc for doc in yaml.safe_load_all((KUBERNETES_DIR / resource).read_text()) if doc)
    return found


def one(kind: str, name: str) -> dict[str, Any]:
    matches = [obj for obj in objects() if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    """Plain env values; values from the downward API appear as placeholders."""
    env = {}
    for variable in container(deployment).get("env", []):
        env[variable["name"]] = variable.get("value", f"<{variable['name']} from the pod>")
    return env


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def sampler_config() -> Config:
    """The ConfigMap's sampler.yaml, through the daemon's own validation, with the Deployment's env."""
    text = one("ConfigMap", "tail-sampler-config")["data"]["sampler.yaml"]
    return parse_config(text, "deploy/kubernetes/sampler-config.yaml", container_env(one("Deployment", "tail-sampler")))


# The sizing rule of docs/operations/memory.md ("What the daemon holds"): the process's baseline
# (about 70 MiB idle, measured; rounded up), bytes per remembered decision (measured), and
# room for requests in flight (up to the clients; 16 of 4 MiB, as SDK batches are far smaller).
BASELINE_MIB = 100
SAMPLED_DECISION_BYTES = 336
NOT_SAMPLED_DECISION_BYTES = 224
REQUESTS_IN_FLIGHT_MIB = 64


def memory_needed_mib(config: Config) -> float:
    """What the rule says a daemon with this config may hold: the window, the decision caches, the
    requests in flight, and per exporter the batches being forwarded plus, for an in-memory queue,
    the queue (a persistent queue waits on disk)."""
    sampling = config.tail_sampling
    caches = sampling.decision_cache
    batch = config.batch.send_batch_max_bytes
    forwarding = 0
    for exporter in config.exporters.values():
        queue = exporter.sending_queue
        batches = 1 + 2 * queue.num_consumers + (queue.queue_size if queue.storage is None else 0)
        forwarding += batches * batch
    return (
        BASELINE_MIB
        + sampling.memory_limit_mib
        + caches.sampled_cache_size * SAMPLED_DECISION_BYTES / 2**20
        + caches.non_sampled_cache_size * NOT_SAMPLED_DECISION_BYTES / 2**20
        + REQUESTS_IN_FLIGHT_MIB
        + forwarding / 2**20
    )
