"""A whole OpenTelemetry Collector config, run by the tail-sampler as it is.

config/examples/otel-collector.yaml has receivers, processors [tail_sampling, batch], an
exporter, extensions [health_check] and service.pipelines. The Collector built from
tests/collector validates it (so it is a genuine Collector config, not one shaped to pass);
`tail-sampler check` accepts it and prints its translation, which is itself a valid config of
the tail-sampler's own format; and `tail-sampler run` runs it: traces from the OpenTelemetry
SDK in, the error traces out at a real OTLP server. The test changes only what cannot run
here: the listening endpoints move to free ports on 127.0.0.1 and decision_wait is shortened.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import requests
import yaml
from opentelemetry.trace import Status, StatusCode

from tests.integration.test_cli import REPO, DaemonProcess, cli, free_port
from tests.integration.test_scale_out import collector_binary  # noqa: F401 # the fixture
from tests.support import GrpcSink, Metrics, sdk_tracer, wait_until

EXAMPLE = REPO / "config" / "examples" / "otel-collector.yaml"
BACKEND = {"BACKEND_ENDPOINT": "127.0.0.1:4317"}


def environ(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, **BACKEND, **extra}


def runnable_copy(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The example with its listening endpoints on free loopback ports and a short decision_wait."""
    ports = {"grpc": free_port(), "http": free_port(), "admin": free_port(), "health": free_port()}
    text = EXAMPLE.read_text()
    for old, new in (
        ("0.0.0.0:4317", f"127.0.0.1:{ports['grpc']}"),
        ("0.0.0.0:4318", f"127.0.0.1:{ports['http']}"),
        ("0.0.0.0:13133", f"127.0.0.1:{ports['health']}"),
        ("host: 0.0.0.0\n                port: 8888", f"host: 127.0.0.1\n                port: {ports['admin']}"),
        ("decision_wait: 10s", "decision_wait: 1s"),
    ):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "otel-collector.yaml"
    path.write_text(text)
    return path, ports


def test_the_collector_itself_accepts_the_example(collector_binary: Path, tmp_path: Path):  # noqa: F811
    for config in (EXAMPLE, runnable_copy(tmp_path)[0]):
        result = subprocess.run(
            [str(collector_binary), "validate", f"--config={config}"],
            capture_output=True,
            text=True,
            timeout=120,
            env=environ(),
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_check_accepts_the_example_and_prints_a_translation_that_is_a_config_of_its_own(tmp_path: Path):
    result = cli("check", "--config", str(EXAMPLE), env=environ())
    assert result.returncode == 0, result.stderr
    assert "an OpenTelemetry Collector config, translated" in result.stdout
    # The one thing the tail-sampler does differently is said, at its line, with what to do instead.
    health_line = EXAMPLE.read_text().splitlines().index("  health_check:") + 1
    assert (
        f"{EXAMPLE}:{health_line}: extensions.health_check: not served on a port of its own (0.0.0.0:13133): "
        "probes go to /healthz and /readyz on the admin endpoint (0.0.0.0:8888)"
    ) in result.stdout
    assert "  - errors: status_code(status_codes=['ERROR'])" in result.stdout
    assert "  - otlp/grpc on 0.0.0.0:4317" in result.stdout and "  - otlp/http on 0.0.0.0:4318" in result.stdout
    assert "  - otlp -> 127.0.0.1:4317" in result.stdout
    assert "admin: /metrics, /healthz, /readyz on 0.0.0.0:8888" in result.stdout

    translated = cli("check", "--config", str(EXAMPLE), "--translate", env=environ())
    assert translated.returncode == 0, translated.stderr
    data = yaml.safe_load(translated.stdout)
    assert list(data) == ["receivers", "tail_sampling", "batch", "exporters", "admin", "logging"]
    # Environment references stay as written: the translation can replace the file.
    assert data["exporters"]["otlp"]["endpoint"] == "${env:BACKEND_ENDPOINT}"
    assert translated.stdout.startswith("# tail-sampler config translated from the OpenTelemetry Collector config")
    own = tmp_path / "sampler.yaml"
    own.write_text(translated.stdout)
    again = cli("check", "--config", str(own), env=environ())
    assert again.returncode == 0, again.stderr
    assert "translated" not in again.stdout
    # The same daemon either way: every line after the first two (file name, translation notes) agrees.
    summary = [line for line in result.stdout.splitlines() if not line.startswith(("an Open", "not carried", "  - /"))]
    assert summary[1:] == again.stdout.splitlines()[1:]


def test_the_example_runs_end_to_end_keeping_the_error_traces(tmp_path: Path):
    sink = GrpcSink()
    config, ports = runnable_copy(tmp_path)
    daemon = DaemonProcess(config, ports["admin"], env=environ(BACKEND_ENDPOINT=sink.endpoint))
    try:
        assert requests.get(daemon.admin + "/healthz", timeout=5).text == "ok\n"
        sent, errors = set(), set()
        for protocol, endpoint in (
            ("grpc", f"127.0.0.1:{ports['grpc']}"),
            ("http", f"http://127.0.0.1:{ports['http']}"),
        ):
            provider, tracer = sdk_tracer(endpoint, protocol, service="shop")
            for index in range(20):
                with (
                    tracer.start_as_current_span("GET /cart") as root,
                    tracer.start_as_current_span("SELECT cart") as child,
                ):
                    if index % 4 == 0:
                        child.set_status(Status(StatusCode.ERROR, "timeout"))
                trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
                sent.add(trace_id)
                if index % 4 == 0:
                    errors.add(trace_id)
            provider.shutdown()

        def decided() -> bool:
            metrics = Metrics.scrape(daemon.admin)
            total = sum(metrics.value("tail_sampler_traces_decided_total", decision=d) for d in ("kept", "dropped"))
            return total == len(sent) and metrics.value("tail_sampler_exporter_sent_spans_total") == 2 * len(errors)

        wait_until(decided, timeout=30, interval=0.2, what=f"{len(sent)} traces decided and the kept ones sent")
        assert sink.trace_ids() == errors
        assert sink.span_count() == 2 * len(errors)
        code, output = daemon.terminate(signal.SIGTERM)
    finally:
        daemon.kill()
        sink.close()
    assert code == 0, output
    assert "is an OpenTelemetry Collector config, translated" in output
    assert "extensions.health_check: not served on a port of its own" in output


def test_the_migration_guide_shows_the_example_and_what_check_prints_for_it():
    from tests.docs.markdown import DOCS, code_blocks

    guide = list(code_blocks(DOCS / "migrating-from-the-collector.md"))
    example = "".join(line for line in EXAMPLE.read_text().splitlines(keepends=True) if not line.startswith("#"))
    assert example.lstrip("\n") in [block.text for block in guide], "the guide's example is not the file"

    shown = {block.text.splitlines()[0]: block.text for block in guide if block.text.startswith("$ ")}
    relative = EXAMPLE.relative_to(REPO)
    check = cli("check", "--config", str(relative), env=environ(BACKEND_ENDPOINT="tempo:4317"))
    assert check.returncode == 0, check.stderr
    assert shown[f"$ BACKEND_ENDPOINT=tempo:4317 tail-sampler check --config {relative}"].split("\n", 1)[1] == (
        check.stdout
    )
    translated = cli("check", "--config", str(relative), "--translate", env=environ(BACKEND_ENDPOINT="tempo:4317"))
    assert translated.stdout in [block.text for block in guide], "the guide's translation is not what check prints"
