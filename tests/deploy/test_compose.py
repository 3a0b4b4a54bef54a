"""deploy/compose, checked offline: no Docker engine runs here, so the compose file is
validated against the Compose Specification's JSON Schema (as check-jsonschema vendors
it), and every file, port and host name it wires together is checked against the others
and against the sampler's own config validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sampler.cli import build_parser
from sampler.config import load_config
from sampler.telemetry.endpoints import split_endpoint
from tests.deploy.manifests import container, one
from tests.test_repo_checks import _tool

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
SCALE_OUT_FILE = COMPOSE_DIR / "compose.scale-out.yaml"
SERVICES = {"sampler", "loadgen", "jaeger", "prometheus", "grafana"}


def load_compose(path: Path) -> dict[str, Any]:
    """A compose file with its services' `extends` applied (all files live in one directory)."""
    data = yaml.safe_load(path.read_text())
    for name, service in data["services"].items():
        if "extends" in service:
            base = load_compose(COMPOSE_DIR / service["extends"]["file"])["services"][service["extends"]["service"]]
            merged = {**base, **{key: value for key, value in service.items() if key != "extends"}}
            merged["depends_on"] = {**base.get("depends_on", {}), **service.get("depends_on", {})}
            data["services"][name] = merged
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE_FILE)


@pytest.fixture(scope="module")
def scale_out() -> dict[str, Any]:
    return load_compose(SCALE_OUT_FILE)


def bind_mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """Container path -> host path of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, dict) and volume["type"] == "bind", f"use the long bind syntax: {volume}"
        mounts[PurePosixPath(volume["target"])] = (COMPOSE_DIR / volume["source"]).resolve()
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a file the container reads comes from, through its bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in bind_mounts(service).items():
        if wanted == target:
            return source
        if target in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not under any bind mount: {bind_mounts(service)}")


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port)."""
    ports = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container_port = entry.split(":")
        ports[int(container_port)] = (host_ip, int(host_port))
    return ports


def sampler_config_path(compose: dict[str, Any]) -> Path:
    command = compose["services"]["sampler"]["command"]
    return host_path(compose["services"]["sampler"], command[command.index("--config") + 1])


@pytest.mark.parametrize("path", [COMPOSE_FILE, SCALE_OUT_FILE], ids=lambda path: path.name)
def test_compose_files_follow_the_compose_specification(path):
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_sampler_backend_prometheus_grafana_and_traffic(compose):
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        if "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name}: pin the image"


@pytest.mark.parametrize("path", [COMPOSE_FILE, SCALE_OUT_FILE], ids=lambda path: path.name)
def test_every_mounted_file_and_build_context_exists(path):
    for name, service in load_compose(path)["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {target} is mounted from {source}, which does not exist"
        if "build" in service:
            context = (COMPOSE_DIR / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), f"{name}: no Dockerfile in {context}"
            assert context == REPO


def test_mounted_sampler_config_passes_tail_sampler_check(compose):
    path = sampler_config_path(compose)
    result = subprocess.run(
        [sys.executable, "-m", "sampler", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert f"{path}: valid" in result.stdout


def test_sampler_listens_on_the_published_ports_and_exports_to_jaeger(compose):
    config = load_config(sampler_config_path(compose))
    sampler = compose["services"]["sampler"]
    protocols = config.receivers.otlp.protocols
    for endpoint in (protocols.grpc.endpoint, protocols.http.endpoint, config.admin.endpoint):
        host, port = split_endpoint(endpoint)
        # Other containers reach it over the compose network, so it must not listen on loopback only.
        assert host == "0.0.0.0", endpoint
        assert port in published(sampler), f"port {port} of {endpoint} is not published"
    for container_port, (host_ip, _) in published(sampler).items():
        assert host_ip == "127.0.0.1", f"{container_port} is published beyond the loopback interface"
    [exporter] = config.exporters.values()
    host, port = split_endpoint(exporter.endpoint)
    assert host in compose["services"] and (host, port) == ("jaeger", 4317)
    assert exporter.tls.insecure
    assert sampler["read_only"] and "/tmp" in sampler["tmpfs"]


def test_loadgen_runs_the_sampler_image_against_the_grpc_receiver(compose):
    loadgen, sampler = compose["services"]["loadgen"], compose["services"]["sampler"]
    assert loadgen["image"] == sampler["image"] and loadgen["build"] == sampler["build"]
    args = build_parser().parse_args(loadgen["command"])
    assert args.command == "loadgen" and args.protocol == "grpc"
    grpc_port = split_endpoint(load_config(sampler_config_path(compose)).receivers.otlp.protocols.grpc.endpoint)[1]
    assert split_endpoint(args.endpoint) == ("sampler", grpc_port)
    # It waits for the image's health check of the sampler, and has no admin port to be checked itself.
    assert loadgen["depends_on"]["sampler"]["condition"] == "service_healthy"
    assert "HEALTHCHECK" in (REPO / "Dockerfile").read_text()
    assert loadgen["healthcheck"] == {"disable": True}


def test_prometheus_scrapes_the_admin_port_with_the_alert_rules(compose):
    prometheus = compose["services"]["prometheus"]
    settings = yaml.safe_load(host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    [job] = settings["scrape_configs"]
    assert job["job_name"] == "tail-sampler"  # the alert rules' up{job="tail-sampler"}
    admin_port = split_endpoint(load_config(sampler_config_path(compose)).admin.endpoint)[1]
    # Every replica the name resolves to, so the same file serves the scale-out stack.
    [discovery] = job["dns_sd_configs"]
    assert (discovery["names"], discovery["type"], discovery["port"]) == (["sampler"], "A", admin_port)
    [rule_file] = settings["rule_files"]
    assert host_path(prometheus, rule_file) == REPO / "deploy" / "prometheus" / "alerts.yaml"
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
    assert rules["groups"] and all(group["rules"] for group in rules["groups"])


def test_grafana_provisions_the_datasources_and_the_dashboard(compose):
    grafana = compose["services"]["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    datasources = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    by_type = {source["type"]: source for source in datasources["datasources"]}
    assert set(by_type) == {"prometheus", "jaeger"}
    assert by_type["prometheus"]["isDefault"] is True
    for kind, port in (("prometheus", 9090), ("jaeger", 16686)):
        url = urlsplit(by_type[kind]["url"])
        assert (url.hostname, url.port) == (kind, port) and url.hostname in compose["services"]
        assert port in published(compose["services"][kind])

    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yaml").read_text())
    [provider] = providers["providers"]
    dashboard_dir = provider["options"]["path"]
    dashboards = [target for target in bind_mounts(grafana) if str(target.parent) == dashboard_dir]
    assert dashboards, f"nothing is mounted in the provider's path {dashboard_dir}"
    dashboard = json.loads(host_path(grafana, str(dashboards[0])).read_text())
    assert dashboard["panels"]
    # The dashboard picks its Prometheus through a datasource variable; one must be provisioned.
    variables = [v for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "datasource"]
    assert all(variable["query"] in by_type for variable in variables)


def test_host_ports_are_unique(compose):
    host_ports = [port for service in compose["services"].values() for _, port in published(service).values()]
    assert len(host_ports) == len(set(host_ports))


def test_scale_out_runs_replicas_behind_the_load_balancing_collector(compose, scale_out):
    assert set(scale_out["services"]) == SERVICES | {"otel-lb"}
    sampler = scale_out["services"]["sampler"]
    assert sampler["deploy"]["replicas"] > 1 and "ports" not in sampler
    # The same sampler as the single-replica stack, but for its published ports.
    single = {key: value for key, value in compose["services"]["sampler"].items() if key != "ports"}
    assert {key: value for key, value in sampler.items() if key != "deploy"} == single

    balancer = scale_out["services"]["otel-lb"]
    assert balancer["image"] == container(one("Deployment", "otel-lb"))["image"]
    config_path = host_path(balancer, balancer["command"][0].removeprefix("--config="))
    assert config_path == REPO / "deploy" / "collector" / "loadbalancer-dns.yaml"
    collector = yaml.safe_load(config_path.read_text())
    resolver = collector["exporters"]["load_balancing"]["resolver"]["dns"]
    assert resolver["hostname"] == "${env:SAMPLER_HOSTNAME:-sampler}"
    assert balancer["environment"]["SAMPLER_HOSTNAME"] in scale_out["services"]
    receiver_ports = {
        split_endpoint(protocol["endpoint"])[1] for protocol in collector["receivers"]["otlp"]["protocols"].values()
    }
    assert set(published(balancer)) == receiver_ports

    # The traffic goes through the Collector, not to one replica.
    args = build_parser().parse_args(scale_out["services"]["loadgen"]["command"])
    host, port = split_endpoint(args.endpoint)
    assert host == "otel-lb" and port in receiver_ports
