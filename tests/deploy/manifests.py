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
