"""deploy/helm/tail-sampler, checked with Helm itself (built from its Go module, v4.3.2): `helm
lint --strict`, and `helm template` for the default values and value sets that switch each option
on. Every rendered object is validated strictly (kubernetes-validate for core kinds, the
prometheus-operator's Go types for its CRDs); the rendered config goes through the daemon's own
validation, and the objects must agree with it (ports, probes, memory from the sizing rule,
writable paths) and with the choices of deploy/kubernetes."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sampler.config import parse_config
from sampler.config.exporters import BatchConfig, QueueConfig
from sampler.config.tail_sampling import DecisionCacheConfig
from sampler.decide.reload import RELOADABLE_SAMPLING_KEYS
from sampler.telemetry.endpoints import split_endpoint
from tests.deploy import manifests
from tests.deploy.container import read_image
from tests.deploy.manifests import REPO, memory_needed_mib
from tests.deploy.test_kubernetes import SCHEMA_VERSIONS, mebibytes
from tests.peers import peer_dir, run_provisioning, unavailable

HELM_MODULE = "helm.sh/helm/v4"
HELM_VERSION = "v4.3.2"
CHART = REPO / "deploy" / "helm" / "tail-sampler"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
RELEASE = "ts"

# Value sets that switch the chart's options on, each as a user would write a values file.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    # Durable forwarding: a persistent queue and the decision cache on a volume per replica, at a
    # mount path of the user's choosing.
    "persistent": {
        "persistence": {"enabled": True, "mountPath": "/data", "size": "5Gi", "storageClassName": "fast-ssd"},
        "config": {
            "tail_sampling": {"decision_cache": {"persist_path": "/data/decisions.bin"}},
            "exporters": {
                "otlp/backend": {
                    "sending_queue": {"queue_size": 128, "storage": {"directory": "/data/queue", "max_size_mib": 1024}}
                }
            },
        },
    },
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    },
    # One replica, other ports, Zipkin in, OTLP/HTTP off, a file exporter and a larger window.
    "single": {
        "replicaCount": 1,
        "adminPort": 9090,
        "fullnameOverride": "sampler",
        "config": {
            "receivers": {
                "otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:14317"}, "http": None}},
                "zipkin": {"endpoint": "0.0.0.0:9411"},
            },
            "tail_sampling": {"memory_limit_mib": 1024, "num_traces": 100000},
            "exporters": {"file/debug": {"path": "/tmp/kept.jsonl"}},
        },
    },
}


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm, built from its Go module at HELM_VERSION into .peers/ (kept between runs)."""
    go = shutil.which("go")
    if go is None:
        unavailable("helm", "`go` is not on PATH")
    directory = peer_dir(f"helm-{HELM_VERSION}")
    binary = directory / "helm"
    if not (binary.exists() and f"{HELM_MODULE}\t{HELM_VERSION}" in _module_info(go, binary)):
        install = [
            "env",
            f"GOBIN={directory}",
            "CGO_ENABLED=0",
            "GOTOOLCHAIN=local",
            go,
            "install",
            f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}",
        ]
        run_provisioning("helm", install, timeout=1800)
    return binary


def _module_info(go: str, binary: Path) -> str:
    done = subprocess.run([go, "version", "-m", str(binary)], capture_output=True, text=True, timeout=60)
    return done.stdout


def _values_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.values.yaml"
    path.write_text(yaml.safe_dump(VALUE_SETS[name]))
    return path


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def render(helm: Path, tmp_path: Path, name: str, *extra: str) -> list[dict[str, Any]]:
    result = helm_run(helm, "template", RELEASE, str(CHART), "-f", str(_values_file(tmp_path, name)), *extra)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] == kind]
    return found


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")]
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [only] = workload(objects)["spec"]["template"]["spec"]["containers"]
    return only


def admin_endpoint(objects: list[dict[str, Any]]) -> str:
    args = container(objects)["args"]
    return args[args.index("--admin-endpoint") + 1]


def rendered_config(objects: list[dict[str, Any]]):
    """The ConfigMap's sampler.yaml through the daemon's validation, with the pod's environment:
    the image's, the container's, and the admin endpoint the chart passes as a flag."""
    environ = {**read_image(REPO / "Dockerfile").env}
    environ.update({variable["name"]: variable["value"] for variable in container(objects).get("env", [])})
    environ["TAIL_SAMPLER_ADMIN_ENDPOINT"] = admin_endpoint(objects)
    text = one(objects, "ConfigMap")["data"]["sampler.yaml"]
    return parse_config(text, "the chart's ConfigMap", environ)


def test_helm_is_the_version_the_tests_name(helm):
    assert f"{HELM_MODULE}\t{HELM_VERSION}" in _module_info(shutil.which("go"), helm)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes(helm, tmp_path, name):
    result = helm_run(helm, "lint", "--strict", str(CHART), "-f", str(_values_file(tmp_path, name)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_validates_strictly(helm, tmp_path, name, servicemonitor_checker):
    objects = render(helm, tmp_path, name)
    errors = []
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{version} {obj['kind']}/{obj['metadata']['name']}: {list(exc.path)}: {exc.message}")
    assert not errors, "\n".join(errors)
    custom = [obj for obj in objects if obj["kind"] in CUSTOM_KINDS]
    if custom:
        path = tmp_path / "custom.yaml"
        path.write_text(yaml.safe_dump_all(custom))
        result = subprocess.run([servicemonitor_checker, path], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" valid") == len(custom), result.stdout
    kinds = sorted(obj["kind"] for obj in objects)
    expected = {"ConfigMap", "Service", "PodDisruptionBudget"}
    expected.add("StatefulSet" if name == "persistent" else "Deployment")
    if name == "monitoring":
        expected |= CUSTOM_KINDS
    assert set(kinds) == expected, kinds


@pytest.mark.parametrize("name", VALUE_SETS)
def test_ports_probes_and_services_follow_the_config(helm, tmp_path, name):
    objects = render(helm, tmp_path, name)
    config = rendered_config(objects)
    protocols = config.receivers.otlp.protocols
    receivers = {
        "otlp-grpc": protocols.grpc and protocols.grpc.endpoint,
        "otlp-http": protocols.http and protocols.http.endpoint,
        "zipkin": config.receivers.zipkin and config.receivers.zipkin.endpoint,
    }
    expected = {name: split_endpoint(endpoint)[1] for name, endpoint in receivers.items() if endpoint}
    host, admin_port = split_endpoint(config.admin.endpoint)
    assert host == "0.0.0.0" and config.admin.endpoint == admin_endpoint(objects)  # what the kubelet reaches
    expected["admin"] = admin_port
    sampler = container(objects)
    assert {port["name"]: port["containerPort"] for port in sampler["ports"]} == expected
    assert sampler["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert sampler["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}

    pod_labels = workload(objects)["spec"]["template"]["metadata"]["labels"]
    services = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Service"}
    fullname = "sampler" if name == "single" else f"{RELEASE}-tail-sampler"
    assert set(services) == {fullname, f"{fullname}-headless"}
    for service in services.values():
        assert manifests.selects(service["spec"]["selector"], pod_labels)
        for port in service["spec"]["ports"]:
            assert expected[port["targetPort"]] == port["port"], port
    assert {port["name"] for port in services[fullname]["spec"]["ports"]} == set(expected)
    headless = services[f"{fullname}-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    assert [port["name"] for port in headless["spec"]["ports"]] == ["otlp-grpc"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_memory_is_the_sizing_rule_for_the_rendered_config(helm, tmp_path, name):
    objects = render(helm, tmp_path, name)
    resources = container(objects)["resources"]
    limit = mebibytes(resources["limits"]["memory"])
    assert mebibytes(resources["requests"]["memory"]) == limit  # no eviction of a pod holding traces
    assert limit == math.ceil(memory_needed_mib(rendered_config(objects)))


def test_the_sizing_constants_and_defaults_are_the_daemons(helm, tmp_path):
    sizing = yaml.safe_load((CHART / "values.yaml").read_text())["memorySizing"]
    assert sizing["baselineMiB"] == manifests.BASELINE_MIB
    assert sizing["sampledDecisionBytes"] == manifests.SAMPLED_DECISION_BYTES
    assert sizing["notSampledDecisionBytes"] == manifests.NOT_SAMPLED_DECISION_BYTES
    assert sizing["requestsInFlightMiB"] == manifests.REQUESTS_IN_FLIGHT_MIB
    caches, queue = DecisionCacheConfig(), QueueConfig()
    assert sizing["defaults"] == {
        "sampledCacheSize": caches.sampled_cache_size,
        "notSampledCacheSize": caches.non_sampled_cache_size,
        "sendBatchMaxBytes": BatchConfig().send_batch_max_bytes,
        "numConsumers": queue.num_consumers,
        "queueSize": queue.queue_size,
    }
    # A config that leaves them out is sized with the daemon's defaults.
    bare = {"tail_sampling": {"memory_limit_mib": 200, "decision_cache": None}, "batch": None}
    bare["exporters"] = {"otlp/backend": {"sending_queue": None}}
    result = helm_run(
        helm, "template", RELEASE, str(CHART), "-f", str(_write(tmp_path / "bare.yaml", {"config": bare}))
    )
    assert result.returncode == 0, result.stderr
    objects = [document for document in yaml.safe_load_all(result.stdout) if document]
    limit = mebibytes(container(objects)["resources"]["limits"]["memory"])
    assert limit == math.ceil(memory_needed_mib(rendered_config(objects)))


def _write(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_the_defaults_make_the_choices_of_deploy_kubernetes(helm, tmp_path):
    objects = render(helm, tmp_path, "default")
    kustomize = manifests.one("Deployment", "tail-sampler")
    chart_pod, kustomize_pod = workload(objects)["spec"]["template"]["spec"], kustomize["spec"]["template"]["spec"]
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert chart_pod[key] == kustomize_pod[key], key
    chart_container, kustomize_container = container(objects), manifests.container(kustomize)
    for key in ("securityContext", "lifecycle", "livenessProbe", "readinessProbe", "env"):
        assert chart_container[key] == kustomize_container[key], key
    assert workload(objects)["spec"]["replicas"] == kustomize["spec"]["replicas"]
    assert workload(objects)["spec"]["strategy"] == kustomize["spec"]["strategy"]
    # The same daemon config, but for the admin endpoint, which the chart passes as a flag.
    ours = yaml.safe_load(one(objects, "ConfigMap")["data"]["sampler.yaml"])
    theirs = yaml.safe_load(manifests.one("ConfigMap", "tail-sampler-config")["data"]["sampler.yaml"])
    assert theirs.pop("admin") == {"endpoint": admin_endpoint(objects)}
    assert ours == theirs


def test_persistence_gives_each_replica_a_volume_at_the_mount_path(helm, tmp_path):
    objects = render(helm, tmp_path, "persistent")
    statefulset = one(objects, "StatefulSet")
    assert statefulset["spec"]["serviceName"].endswith("-headless")
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    mounts = {mount["name"]: mount["mountPath"] for mount in container(objects)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    # The pod may write to what it mounts: fsGroup matches the image's user.
    assert statefulset["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001
    config = rendered_config(objects)
    [exporter] = config.exporters.values()
    assert Path(exporter.sending_queue.storage.directory).is_relative_to("/data")
    assert Path(config.tail_sampling.decision_cache.persist_path).is_relative_to("/data")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"config": {"exporters": {"otlp/backend": {"sending_queue": {"storage": {"directory": "/var/q"}}}}}},
            'config.exporters.otlp/backend.sending_queue.storage.directory is "/var/q": the root filesystem is '
            "read-only; set persistence.enabled and put it under persistence.mountPath (/var/lib/tail-sampler)",
        ),
        (
            {
                "persistence": {"enabled": True},
                "config": {"tail_sampling": {"storage": {"directory": "/data/window"}}},
            },
            'config.tail_sampling.storage.directory is "/data/window": the root filesystem is read-only; '
            "put it under persistence.mountPath (/var/lib/tail-sampler)",
        ),
        (
            {"config": {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:4317"}}}}}},
            'config.receivers.otlp.protocols.grpc.endpoint is "127.0.0.1:4317": in a pod it must listen on all '
            'interfaces, e.g. "0.0.0.0:4317"',
        ),
        (
            {"config": {"tail_sampling": {"memory_limit_mib": None}}},
            "config.tail_sampling.memory_limit_mib must be set",
        ),
    ],
    ids=["queue-on-root", "outside-mount", "loopback-receiver", "unbounded-window"],
)
def test_values_the_pod_cannot_run_with_fail_with_what_to_do(helm, tmp_path, values, message):
    result = helm_run(helm, "template", RELEASE, str(CHART), "-f", str(_write(tmp_path / "bad.yaml", values)))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def _checksum(helm: Path, tmp_path: Path, config: dict[str, Any]) -> tuple[str, str]:
    result = helm_run(helm, "template", RELEASE, str(CHART), "-f", str(_write(tmp_path / "c.yaml", {"config": config})))
    assert result.returncode == 0, result.stderr
    objects = [document for document in yaml.safe_load_all(result.stdout) if document]
    annotations = workload(objects)["spec"]["template"]["metadata"]["annotations"]
    return annotations["checksum/config"], one(objects, "ConfigMap")["data"]["sampler.yaml"]


# A change to each key the daemon reloads in place, and to some it does not.
RELOADABLE_CHANGES = {
    "policies": [{"name": "all", "type": "always_sample"}],
    "sample_on_first_match": True,
    "drop_pending_traces_on_shutdown": True,
    "record_policy": False,
}
RESTART_CHANGES = {"decision_wait": "30s", "num_traces": 5000, "memory_limit_mib": 300}


def test_the_chart_knows_what_the_daemon_reloads():
    assert set(RELOADABLE_CHANGES) == RELOADABLE_SAMPLING_KEYS
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    omitted = re.search(r'\(omit \(\$config\.tail_sampling \| default dict\) ((?:"\w+" ?)+)\)', helpers).group(1)
    assert set(omitted.replace('"', "").split()) == RELOADABLE_SAMPLING_KEYS


@pytest.mark.parametrize("key", sorted(RELOADABLE_CHANGES))
def test_a_change_the_daemon_reloads_updates_the_configmap_without_rolling_the_pods(helm, tmp_path, key):
    before = _checksum(helm, tmp_path, {})
    after = _checksum(helm, tmp_path, {"tail_sampling": {key: RELOADABLE_CHANGES[key]}})
    assert after[1] != before[1] and after[0] == before[0]
    # Without the file watch nothing reloads: the same change rolls the pods.
    watchless = _checksum(helm, tmp_path, {"reload": {"watch_file": False}})
    changed = _checksum(
        helm, tmp_path, {"reload": {"watch_file": False}, "tail_sampling": {key: RELOADABLE_CHANGES[key]}}
    )
    assert changed[0] != watchless[0]


@pytest.mark.parametrize("key", sorted(RESTART_CHANGES))
def test_any_other_change_rolls_the_pods(helm, tmp_path, key):
    before = _checksum(helm, tmp_path, {})
    after = _checksum(helm, tmp_path, {"tail_sampling": {key: RESTART_CHANGES[key]}})
    assert after[0] != before[0]


def test_the_prometheus_rule_is_deploy_prometheus_alerts(helm, tmp_path):
    link = CHART / "files" / "alerts.yaml"
    assert link.is_symlink() and link.resolve() == ALERTS.resolve()
    objects = render(helm, tmp_path, "monitoring")
    assert one(objects, "PrometheusRule")["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # The job label comes from the Service's name label, `tail-sampler`, as the alert rules expect.
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    services = [
        obj
        for obj in objects
        if obj["kind"] == "Service"
        and manifests.selects(monitor["spec"]["selector"]["matchLabels"], obj["metadata"]["labels"])
    ]
    assert [service["metadata"]["name"] for service in services] == [f"{RELEASE}-tail-sampler"]
    assert services[0]["metadata"]["labels"]["app.kubernetes.io/name"] == "tail-sampler"
    assert 'up{job="tail-sampler"}' in ALERTS.read_text()
