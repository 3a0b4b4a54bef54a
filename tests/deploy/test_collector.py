"""deploy/collector, checked offline as far as is honest without building otelcol-contrib:
the Collector's config layout, the load_balancing exporter's keys against the component's
own config struct and docs (exporter/loadbalancingexporter, config.go and README, v0.156;
the same keys in v0.161, which tests/integration/test_scale_out.py builds and runs), and the
names, ports and permissions it relies on in deploy/kubernetes and deploy/compose."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sampler.config import load_config
from sampler.config.types import parse_duration
from sampler.telemetry.endpoints import split_endpoint
from tests.deploy.manifests import COLLECTOR_DIR, REPO, container, container_env, kustomization, one, sampler_config

K8S_CONFIG = COLLECTOR_DIR / "loadbalancer.yaml"
DNS_CONFIG = COLLECTOR_DIR / "loadbalancer-dns.yaml"

# The Collector's top-level sections and the load_balancing exporter's keys, from the
# mapstructure tags of exporter/loadbalancingexporter/config.go.
SECTIONS = {"extensions", "receivers", "processors", "exporters", "connectors", "service"}
EXPORTER_KEYS = {
    "routing_key",
    "routing_attributes",
    "protocol",
    "resolver",
    "sending_queue",
    "retry_on_failure",
    "timeout",
    "spa_per_endpoint",
}
TRACE_ROUTING_KEYS = {"traceID", "service", "attributes"}
RESOLVER_KEYS = {
    "static": {"hostnames"},
    "dns": {"hostname", "port", "interval", "timeout"},
    "k8s": {"service", "ports", "timeout", "return_hostnames"},
    "aws_cloud_map": {"namespace", "service_name", "health_status", "interval", "timeout", "port", "owner_account"},
}
# The nested OTLP exporter's settings that matter here (configgrpc + exporterhelper).
OTLP_KEYS = {
    "tls",
    "timeout",
    "compression",
    "headers",
    "keepalive",
    "balancer_name",
    "sending_queue",
    "retry_on_failure",
}
_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def exporter(config: dict[str, Any]) -> dict[str, Any]:
    return config["exporters"]["load_balancing"]


@pytest.mark.parametrize("path", [K8S_CONFIG, DNS_CONFIG], ids=["k8s", "dns"])
def test_collector_config_layout_and_pipeline(path):
    config = load(path)
    assert set(config) <= SECTIONS
    assert set(config["service"]) <= {"extensions", "pipelines", "telemetry"}
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    used = set(config["service"].get("extensions", []))
    for pipeline in pipelines.values():
        for section in ("receivers", "processors", "exporters"):
            for name in pipeline.get(section, []):
                assert name in config[section], f"pipeline uses {section[:-1]} {name!r}, which is not defined"
                used.add(name)
    defined = {name for section in ("extensions", "receivers", "processors", "exporters") for name in config[section]}
    assert defined == used, f"defined but unused: {defined - used}"
    assert pipelines["traces"]["exporters"] == ["load_balancing"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


@pytest.mark.parametrize("path", [K8S_CONFIG, DNS_CONFIG], ids=["k8s", "dns"])
def test_load_balancing_exporter_routes_by_trace_id_over_otlp(path):
    settings = exporter(load(path))
    assert set(settings) <= EXPORTER_KEYS
    assert settings["routing_key"] == "traceID" and settings["routing_key"] in TRACE_ROUTING_KEYS
    assert set(settings["protocol"]) == {"otlp"}
    otlp = settings["protocol"]["otlp"]
    # The exporter sets each backend's endpoint itself; one given here is overridden.
    assert "endpoint" not in otlp and set(otlp) <= OTLP_KEYS
    parse_duration(otlp["timeout"])
    [(kind, resolver)] = settings["resolver"].items()
    assert set(resolver) <= RESOLVER_KEYS[kind]
    for key in ("interval", "timeout"):
        if key in resolver:
            parse_duration(resolver[key])


def test_k8s_resolver_watches_the_headless_sampler_service():
    resolver = exporter(load(K8S_CONFIG))["resolver"]["k8s"]
    name, namespace = resolver["service"].split(".")
    headless = one("Service", name)
    assert headless["spec"]["clusterIP"] == "None"
    assert namespace == kustomization()["namespace"]
    grpc_port = split_endpoint(sampler_config().receivers.otlp.protocols.grpc.endpoint)[1]
    assert resolver["ports"] == [grpc_port]
    assert grpc_port in {port["port"] for port in headless["spec"]["ports"]}


def test_collector_service_account_may_watch_endpoints():
    deployment = one("Deployment", "otel-lb")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    one("ServiceAccount", account)
    binding = one("RoleBinding", "otel-lb-endpoints-reader")
    assert {"kind": "ServiceAccount", "name": account, "namespace": kustomization()["namespace"]} in binding["subjects"]
    role = one("Role", binding["roleRef"]["name"])
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for resource in (("", "endpoints"), ("discovery.k8s.io", "endpointslices")):
        assert {"get", "list", "watch"} <= granted[resource]


def test_collector_configmap_is_the_shipped_config_verbatim():
    configmap = one("ConfigMap", "otel-lb-config")
    assert configmap["data"]["config.yaml"] == K8S_CONFIG.read_text()
    deployment = one("Deployment", "otel-lb")
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "config")
    assert container(deployment)["args"] == [f"--config={mount['mountPath']}/config.yaml"]


def test_collector_ports_and_env_match_its_config():
    config = load(K8S_CONFIG)
    deployment = one("Deployment", "otel-lb")
    env = container_env(deployment)
    for name, default in _ENV_REFERENCE.findall(K8S_CONFIG.read_text()):
        assert name in env or default, f"${{env:{name}}} is neither set in the Deployment nor defaulted"
    ports = {port["containerPort"] for port in container(deployment)["ports"]}
    endpoints = [config["extensions"]["health_check"]["endpoint"]]
    endpoints += [protocol["endpoint"] for protocol in config["receivers"]["otlp"]["protocols"].values()]
    [reader] = config["service"]["telemetry"]["metrics"]["readers"]
    telemetry_port = reader["pull"]["exporter"]["prometheus"]["port"]
    assert {int(endpoint.rsplit(":", 1)[1]) for endpoint in endpoints} | {telemetry_port} == ports
    probe_port = container(deployment)["readinessProbe"]["httpGet"]["port"]
    assert {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}[probe_port] == 13133


def test_dns_resolver_defaults_to_the_compose_sampler_service():
    resolver = exporter(load(DNS_CONFIG))["resolver"]["dns"]
    [(variable, default)] = _ENV_REFERENCE.findall(resolver["hostname"])
    assert variable == "SAMPLER_HOSTNAME"
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yaml").read_text())
    assert default.removeprefix(":-") in compose["services"]
    # The DNS resolver's port is a string in the exporter's config struct.
    assert isinstance(resolver["port"], str)
    compose_sampler = load_config(REPO / "deploy" / "compose" / "config" / "sampler.yaml")
    assert int(resolver["port"]) == split_endpoint(compose_sampler.receivers.otlp.protocols.grpc.endpoint)[1]
