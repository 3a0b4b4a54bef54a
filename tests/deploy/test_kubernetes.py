"""deploy/kubernetes, checked offline: every core object against the Kubernetes JSON
schemas (kubernetes-validate, strict: unknown fields are errors) for the oldest and the
newest supported Kubernetes version; the ServiceMonitor decoded strictly into the
prometheus-operator's own Go types; the embedded sampler config through the daemon's own
validation; and the references between the objects (labels, ports, paths, sizes)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from sampler.daemon import _RECEIVER_GRACE_SECONDS
from sampler.telemetry.endpoints import split_endpoint
from tests.deploy.manifests import (
    KUBERNETES_DIR,
    REPO,
    container,
    container_env,
    kustomization,
    memory_needed_mib,
    objects,
    one,
    sampler_config,
    selects,
)

# The preStop `sleep` action is on by default from 1.30.
OLDEST_SUPPORTED = "1.30.0"
SCHEMA_VERSIONS = [OLDEST_SUPPORTED, kubernetes_validate.utils.latest_version()]
CUSTOM_KINDS = {"ServiceMonitor"}

SPANS_PER_TRACE = 20

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi)?$")


def mebibytes(quantity: str) -> float:
    number, unit = _QUANTITY.fullmatch(quantity).groups()
    return float(number) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2**20}[unit]


def test_kustomization_applies_every_manifest_in_the_directory():
    listed = set(kustomization()["resources"])
    on_disk = {path.name for path in KUBERNETES_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    [namespace] = [obj for obj in objects() if obj["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == kustomization()["namespace"]
    # The image override names the image the sampler Deployment uses.
    images = {image["name"] for image in kustomization()["images"]}
    assert container(one("Deployment", "tail-sampler"))["image"].rsplit(":", 1)[0] in images


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_core_objects_follow_the_kubernetes_schemas(version):
    checked = []
    errors = []
    for obj in objects():
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        checked.append(obj["kind"])
    assert not errors, "\n".join(errors)
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Role", "RoleBinding"} <= set(checked)


def test_the_schemas_catch_a_misspelt_field():
    deployment = one("Deployment", "tail-sampler")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, OLDEST_SUPPORTED, strict=True)


def test_servicemonitor_decodes_strictly_into_the_operators_types(servicemonitor_checker, tmp_path):
    manifest = KUBERNETES_DIR / "sampler-servicemonitor.yaml"
    result = subprocess.run([servicemonitor_checker, manifest], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ServiceMonitor tail-sampler: 1 endpoint(s) valid" in result.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text(manifest.read_text().replace("scrapeTimeout:", "scrape_timeout:"))
    result = subprocess.run([servicemonitor_checker, broken], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and 'unknown field "scrape_timeout"' in result.stdout


def test_configmap_config_passes_the_daemons_validation():
    config = sampler_config()
    assert {policy.name for policy in config.policies} == {"errors", "slow", "baseline"}
    assert config.reload.watch_file
    [exporter] = config.exporters.values()
    assert exporter.endpoint == container_env(one("Deployment", "tail-sampler"))["TRACING_BACKEND_ENDPOINT"]


def test_config_is_mounted_as_a_directory_so_configmap_updates_reach_the_daemon():
    deployment = one("Deployment", "tail-sampler")
    args = container(deployment)["args"]
    config_path = Path(args[args.index("--config") + 1])
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    [mount] = [m for m in container(deployment)["volumeMounts"] if "configMap" in volumes[m["name"]]]
    # A subPath mount is a bind of one file: the kubelet's symlink swap never shows through it.
    assert "subPath" not in mount
    assert config_path.parent == Path(mount["mountPath"])
    configmap = one("ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    assert config_path.name in configmap["data"]


def test_probes_and_ports_match_the_config():
    config = sampler_config()
    sampler = container(one("Deployment", "tail-sampler"))
    ports = {port["name"]: port["containerPort"] for port in sampler["ports"]}
    protocols = config.receivers.otlp.protocols
    assert ports == {
        "otlp-grpc": split_endpoint(protocols.grpc.endpoint)[1],
        "otlp-http": split_endpoint(protocols.http.endpoint)[1],
        "admin": split_endpoint(config.admin.endpoint)[1],
    }
    # Probes from the kubelet and scrapes reach the pod's IP, not its loopback.
    assert split_endpoint(config.admin.endpoint)[0] == "0.0.0.0"
    assert sampler["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert sampler["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}


def test_pods_run_unprivileged_with_a_read_only_root():
    user = int(re.search(r"^USER (\d+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE).group(1))
    for name in ("tail-sampler", "otel-lb"):
        pod = one("Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container(one("Deployment", name))["securityContext"]
        assert security == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    sampler = one("Deployment", "tail-sampler")["spec"]["template"]["spec"]
    assert sampler["securityContext"]["runAsUser"] == user
    # The image writes only under /tmp (see the Dockerfile), so /tmp is the one writable mount.
    volumes = {volume["name"]: volume for volume in sampler["volumes"]}
    writable = [m for m in container(one("Deployment", "tail-sampler"))["volumeMounts"] if not m.get("readOnly")]
    assert [(m["mountPath"], "emptyDir" in volumes[m["name"]]) for m in writable] == [("/tmp", True)]


def test_memory_limit_holds_the_configured_window():
    config = sampler_config()
    resources = container(one("Deployment", "tail-sampler"))["resources"]
    limit = mebibytes(resources["limits"]["memory"])
    assert mebibytes(resources["requests"]["memory"]) == limit  # no eviction of a pod holding traces
    assert config.tail_sampling.memory_limit_mib, "the window must be bounded in bytes, not only in traces"
    needed = memory_needed_mib(config)
    assert needed <= limit, f"the window needs about {needed:.0f} MiB; the limit is {limit:.0f} MiB"
    assert (
        f"num_traces traces of {SPANS_PER_TRACE} spans"
        in one("ConfigMap", "tail-sampler-config")["data"]["sampler.yaml"]
    )


def test_termination_grace_covers_the_daemons_shutdown():
    config = sampler_config()
    deployment = one("Deployment", "tail-sampler")
    pre_stop = container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert pre_stop + _RECEIVER_GRACE_SECONDS + config.shutdown.timeout < grace


def test_services_and_budgets_select_the_pods_and_their_ports():
    deployments = [obj for obj in objects() if obj["kind"] == "Deployment"]
    for obj in objects():
        if obj["kind"] not in ("Service", "PodDisruptionBudget"):
            continue
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        targets = [d for d in deployments if selects(selector, d["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, f"{obj['kind']}/{obj['metadata']['name']} selects {len(targets)} Deployments"
        if obj["kind"] == "Service":
            named = {port["name"] for port in container(targets[0])["ports"]}
            assert {port["targetPort"] for port in obj["spec"]["ports"]} <= named
    headless = one("Service", "tail-sampler-headless")
    assert headless["spec"]["clusterIP"] == "None"


def test_servicemonitor_scrapes_the_admin_port_of_one_service():
    monitor = one("ServiceMonitor", "tail-sampler")
    services = [
        obj
        for obj in objects()
        if obj["kind"] == "Service" and selects(monitor["spec"]["selector"]["matchLabels"], obj["metadata"]["labels"])
    ]
    # Both Services front the same pods; selecting both would scrape every pod twice.
    assert [service["metadata"]["name"] for service in services] == ["tail-sampler"]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in services[0]["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The operator names the job after the Service: the alert rules' job="tail-sampler".
    assert "jobLabel" not in monitor["spec"] and services[0]["metadata"]["name"] == "tail-sampler"


def test_namespace_enforces_the_restricted_pod_security_standard():
    namespace = one("Namespace", kustomization()["namespace"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
