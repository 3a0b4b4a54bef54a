"""Every config example in the docs is one the daemon accepts, so examples cannot rot.

A YAML block whose top-level keys are all sections of the daemon's config (a whole file, or an
`exporters:`, `receivers:`, `tail_sampling:`… excerpt) is run through the daemon's own loader;
an excerpt gets the sections it leaves out from a minimal base. YAML blocks of other programs
(Prometheus, the Collector, Kubernetes) have other top-level keys and are left alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from sampler.config import parse_config
from tests.docs.markdown import DOCS, README, REPO, CodeBlock, code_blocks, pages

if TYPE_CHECKING:
    from sampler.config import Config

SECTIONS = {"receivers", "tail_sampling", "batch", "exporters", "admin", "logging", "reload", "shutdown", "telemetry"}
BASE: dict[str, Any] = {
    "tail_sampling": {"policies": [{"name": "everything", "type": "always_sample"}]},
    "exporters": {"file": {"path": "sampled-traces.jsonl"}},
}
BACKEND_PAGES = ["deploying/jaeger.md", "deploying/tempo.md", "deploying/zipkin.md", "deploying/honeycomb.md"]
_ENV_REFERENCE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)")


def config_blocks(path: Path) -> list[CodeBlock]:
    found = []
    for block in code_blocks(path):
        if block.language != "yaml":
            continue
        data = yaml.safe_load(block.text)
        if isinstance(data, dict) and data and set(data) <= SECTIONS:
            found.append(block)
    return found


def load(block: CodeBlock, environ: dict[str, str] | None = None) -> Config:
    data = yaml.safe_load(block.text)
    text = block.text
    sampling = data.get("tail_sampling")
    if isinstance(sampling, dict) and "policies" not in sampling:
        # An excerpt about the window alone: give it a policy (its line numbers then count in the merged text).
        text = yaml.safe_dump({**data, "tail_sampling": {**sampling, **BASE["tail_sampling"]}}, sort_keys=False)
        data = yaml.safe_load(text)
    if set(BASE) - set(data):
        # The sections an excerpt leaves out come from the base, appended as YAML to its own text
        # (so the loader's line numbers still point into the block).
        text += yaml.safe_dump({key: value for key, value in BASE.items() if key not in data})
    if environ is None:
        # Any environment variable an example refers to gets a placeholder value.
        environ = {name: f"example-{name.lower()}" for name in _ENV_REFERENCE.findall(text)}
    return parse_config(text, block.where(), environ)


ALL_BLOCKS = [block for path in [*pages(), README] for block in config_blocks(path)]


def test_the_docs_have_config_examples_to_check():
    assert len(ALL_BLOCKS) >= 20, f"only {len(ALL_BLOCKS)} config examples found; is the block detection broken?"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.where() for block in ALL_BLOCKS])
def test_config_example_is_valid(block: CodeBlock):
    load(block)  # raises ConfigError naming the file and line of the block


def _speaks_tls(exporter: Any) -> bool:
    endpoint = str(getattr(exporter, "traces_endpoint", None) or exporter.endpoint)
    if endpoint.startswith(("https://", "http://")):
        return endpoint.startswith("https://")
    # An endpoint without a scheme: gRPC speaks TLS unless tls.insecure says otherwise.
    return not exporter.tls.insecure


@pytest.mark.parametrize("relative", BACKEND_PAGES)
def test_each_backend_page_has_a_plaintext_and_a_tls_exporter_example(relative: str):
    kinds = set()
    for block in config_blocks(DOCS / relative):
        config = load(block)
        if "exporters" not in yaml.safe_load(block.text):
            continue
        for exporter in config.exporters.values():
            if hasattr(exporter, "endpoint"):
                kinds.add("tls" if _speaks_tls(exporter) else "plaintext")
    assert kinds == {"tls", "plaintext"}, f"{relative}: exporter examples found: {sorted(kinds) or 'none'}"


def test_the_shipped_config_is_the_one_the_reference_shows():
    # The reference quotes config/sampler.yaml without its comments; both load to the same config.
    shipped = parse_config((REPO / "config" / "sampler.yaml").read_text(), "config/sampler.yaml", {})
    quoted = [block for block in config_blocks(DOCS / "reference" / "configuration.md") if "receivers" in block.text]
    assert quoted, "the configuration reference no longer quotes the shipped config"
    assert load(quoted[0], environ={}) == shipped
