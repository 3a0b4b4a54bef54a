"""The `docker run` lines of docs/deploying/docker.md, run as written with a config of the user's own, expose
/healthz on the published admin port and the OTLP receivers on theirs, and the image's
HEALTHCHECK passes. No container engine runs here, so each line runs as the process the image
would start, in a network namespace of its own (see tests/deploy/container.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.container import (
    documented_run_lines,
    parse_run_line,
    process_spec,
    read_image,
    run_in_own_network,
)
from tests.deploy.manifests import REPO
from tests.peers import unavailable

IMAGE = read_image(REPO / "Dockerfile")
RUN_LINES = documented_run_lines(REPO / "docs" / "deploying" / "docker.md")

# A config of the user's own, mounted over the shipped one: its admin endpoint is loopback, as
# any config written for a process outside a container would have it.
USER_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "0.0.0.0:4317"}
      http: {endpoint: "0.0.0.0:4318"}
tail_sampling:
  decision_wait: 5s
  policies:
    - {name: keep-errors, type: status_code, status_code: {status_codes: [ERROR]}}
exporters:
  file: {path: "${env:TAIL_SAMPLER_OUTPUT}"}
admin:
  endpoint: "127.0.0.1:8888"
"""


@pytest.fixture(scope="module")
def network_namespaces() -> None:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            unavailable("a network namespace", f"`{tool}` is not on PATH (util-linux, iproute2)")


def _run(line: str, tmp_path: Path, drop_env: tuple[str, ...] = ()) -> dict:
    pwd = tmp_path / "pwd"
    (pwd / "tls").mkdir(parents=True)
    (pwd / "my.yaml").write_text(USER_CONFIG)
    run = parse_run_line(line)
    assert run.image == "tail-sampler"
    spec = process_spec(IMAGE, run, REPO, tmp_path / "container", pwd)
    for name in drop_env:
        del spec["env"][name]
    return run_in_own_network(spec, REPO, tmp_path / "spec.json") | {"published": run.published, "spec": spec}


def test_the_readme_documents_docker_run_lines_with_a_mounted_config():
    assert len(RUN_LINES) >= 2, RUN_LINES
    for line in RUN_LINES:
        run = parse_run_line(line)
        assert ("$PWD/my.yaml", IMAGE.env["TAIL_SAMPLER_CONFIG"]) in run.volumes, line
        assert IMAGE.healthcheck and IMAGE.entrypoint == ["tail-sampler"] and IMAGE.cmd == ["run"]


@pytest.mark.parametrize("line", RUN_LINES, ids=[f"line{number}" for number in range(1, len(RUN_LINES) + 1)])
def test_a_documented_docker_run_line_serves_healthz_on_its_published_port(line, tmp_path, network_namespaces):
    seen = _run(line, tmp_path)
    assert seen["running"], seen["log"]
    admin = seen["spec"]["admin_port"]
    assert admin in seen["published"], f"the line does not publish the admin port {admin}"
    assert seen["healthz_outside"] == 200, seen
    assert seen["healthcheck_exit"] == 0, seen
    assert all(seen["published_reachable"].values()), seen["published_reachable"]
    assert seen["exit"] == 0, seen["log"]
    assert "(from TAIL_SAMPLER_ADMIN_ENDPOINT" in seen["log"]


def test_the_probe_tells_a_loopback_admin_endpoint_from_a_published_one(tmp_path, network_namespaces):
    """Without the image's TAIL_SAMPLER_ADMIN_ENDPOINT, the user's config keeps admin on loopback:
    healthy inside, unreachable through the published port -- the bug this image had."""
    seen = _run(RUN_LINES[0], tmp_path, drop_env=("TAIL_SAMPLER_ADMIN_ENDPOINT",))
    assert seen["running"], seen["log"]
    assert seen["healthz_loopback"] == 200, seen
    assert seen["healthz_outside"] != 200 and "refused" in str(seen["healthz_outside"]).lower(), seen
    assert seen["published_reachable"] == {"4317": True, "4318": True, "8888": False}
