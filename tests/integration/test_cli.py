"""The `tail-sampler` command as a user runs it: a real subprocess, real sockets, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from tests.support import GrpcSink, config_dict, fast_retry, grpc_export, make_request, make_trace, wait_until

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampler", *args], capture_output=True, text=True, timeout=120, cwd=REPO, **kwargs
    )


def write_config(tmp_path: Path, data: dict) -> tuple[Path, dict[str, int]]:
    ports = {"grpc": free_port(), "http": free_port(), "admin": free_port()}
    data["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{ports['grpc']}"
    data["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{ports['http']}"
    data["admin"]["endpoint"] = f"127.0.0.1:{ports['admin']}"
    path = tmp_path / "sampler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, ports


class DaemonProcess:
    def __init__(self, config: Path, admin_port: int, env: dict[str, str] | None = None) -> None:
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sampler", "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_until(self._ready, timeout=30, what="the daemon's /readyz")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited early:\n{self.process.stdout.read()}")
        try:
            return requests.get(self.admin + "/readyz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def terminate(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=60)
        return self.process.returncode, output

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)


def test_check_accepts_the_shipped_config_and_prints_policies():
    result = cli("check", "--config", "config/sampler.yaml")
    assert result.returncode == 0, result.stderr
    assert "errors: status_code" in result.stdout
    assert "baseline: probabilistic" in result.stdout
    assert "memory_limit_mib=512 max_spans_per_trace=10000" in result.stdout
    assert "file -> " in result.stdout


def test_check_without_config_uses_the_shipped_one():
    result = cli("check")
    assert result.returncode == 0, result.stderr
    assert "config/sampler.yaml: valid" in result.stdout


def test_check_rejects_an_invalid_config_with_file_line_and_choices(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "tail_sampling:\n"
        "  policies:\n"
        "    - {name: a, type: latncy}\n"
        "    - name: b\n"
        "      type: status_code\n"
        "      status_code: {status_codes: [FAIL]}\n"
        "exporters:\n"
        "  file: {path: x.jsonl}\n"
    )
    result = cli("check", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}:3: tail_sampling.policies[0].type: unknown policy type 'latncy'" in result.stderr
    assert "valid types: always_sample, latency" in result.stderr
    assert f"{path}:6: tail_sampling.policies[1].status_code.status_codes[0]" in result.stderr
    assert "'OK', 'ERROR' or 'UNSET'" in result.stderr


def test_check_accepts_the_collector_documentation_block():
    result = cli("check", "--config", "config/examples/collector-tail-sampling.yaml")
    assert result.returncode == 0, result.stderr
    assert "- composite-policy-1: composite(max_total_spans_per_second=1000;" in result.stdout
    assert "- drop-policy-1: drop(test-drop-policy-1: string_attribute" in result.stdout
    assert result.stdout.count("\n  - ") >= 17


def test_check_names_both_lines_of_a_duplicate_policy_name(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(
        "tail_sampling:\n"
        "  policies:\n"
        "    - {name: keep, type: always_sample}\n"
        "    - {name: other, type: always_sample}\n"
        "    - {name: keep, type: always_sample}\n"
        "exporters:\n"
        "  file: {path: x.jsonl}\n"
    )
    result = cli("check", "--config", str(path))
    assert result.returncode == 2
    assert (
        f"{path}:5: tail_sampling.policies[2].name: duplicate policy name 'keep', already used by policies[0] on line 3"
        in result.stderr
    )


def test_check_exits_2_on_a_config_that_is_not_utf8_naming_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((REPO / "config" / "sampler.yaml").read_bytes() + b"\n# caf\xe9\n")
    result = cli("check", "--config", str(path))
    assert result.returncode == 2, result.stderr
    line = path.read_bytes().count(b"\n")
    assert f"{path}:{line}: the config file is not UTF-8 text (byte 0xe9)" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_a_missing_file():
    result = cli("check", "--config", "/nonexistent/sampler.yaml")
    assert result.returncode == 2
    assert "/nonexistent/sampler.yaml: cannot read config" in result.stderr


def test_run_reports_a_port_in_use_as_a_clean_start_up_error(tmp_path):
    sink = GrpcSink()
    try:
        for listener, key, port_name in (
            ("OTLP/HTTP", "receivers.otlp.protocols.http.endpoint", "http"),
            ("OTLP/gRPC", "receivers.otlp.protocols.grpc.endpoint", "grpc"),
            ("the admin endpoint", "admin.endpoint, TAIL_SAMPLER_ADMIN_ENDPOINT or --admin-endpoint", "admin"),
        ):
            data = config_dict({"otlp": fast_retry(sink.endpoint)})
            path, ports = write_config(tmp_path, data)
            port = ports[port_name]
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", port))
                busy.listen()
                result = cli("run", "--config", str(path))
            assert result.returncode == 2, result.stderr
            assert (
                f"error: cannot listen for {listener} on 127.0.0.1:{port}: Address already in use; another process "
                f"listens on port {port}: stop it, or give this listener another port ({key})\n"
            ) in result.stderr
            # The error is the news: no shutdown of a daemon that never started, no traceback.
            assert "shutting down" not in result.stderr and "shut down" not in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
    finally:
        sink.close()


def test_run_demo_ends_on_ctrl_c_without_a_stray_line(tmp_path):
    data = config_dict({"file": {"path": str(tmp_path / "kept.jsonl")}}, decision_wait="200ms")
    path, ports = write_config(tmp_path, data)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sampler", "run", "--config", str(path), "--demo", "--demo-rate", "50"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def received() -> float:
            assert daemon.poll() is None, daemon.communicate()
            try:
                text = requests.get(f"http://127.0.0.1:{ports['admin']}/metrics", timeout=1).text
            except requests.ConnectionError:
                return 0.0
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("tail_sampler_received_spans_total{")
            )

        wait_until(received, timeout=60, interval=0.2, what="spans from the demo load generator")
    finally:
        daemon.send_signal(signal.SIGINT)  # what Ctrl-C sends the foreground process
        stdout, stderr = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, stderr
    assert stdout == "", f"stray output on stdout: {stdout!r}"
    assert "--demo: sending checkout traces" in stderr and "shut down in" in stderr


def test_sigterm_decides_buffered_traces_flushes_and_exits_zero(tmp_path):
    sink = GrpcSink()
    try:
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, decision_wait="60s")
        path, ports = write_config(tmp_path, data)
        daemon = DaemonProcess(path, ports["admin"])
        try:
            sent = set()
            for _ in range(25):
                trace_id, spans = make_trace(spans=4)
                sent.add(trace_id)
                grpc_export(f"127.0.0.1:{ports['grpc']}", make_request(spans))
            assert sink.span_count() == 0  # all still waiting in the window
            code, output = daemon.terminate(signal.SIGTERM)
        finally:
            daemon.kill()
        assert code == 0, output
        assert sink.trace_ids() == sent
        assert sink.span_count() == 100
        assert "decided 25 buffered trace(s)" in output
    finally:
        sink.close()


def test_loadgen_against_the_daemon_writes_kept_traces_to_the_file(tmp_path):
    out = tmp_path / "kept.jsonl"
    data = config_dict(
        {"file": {"path": str(out)}},
        policies=[
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}},
        ],
        decision_wait="2s",
        decision_wait_after_root_received="500ms",
    )
    path, ports = write_config(tmp_path, data)
    daemon = DaemonProcess(path, ports["admin"])
    try:
        result = cli(
            "loadgen",
            "--endpoint",
            f"127.0.0.1:{ports['grpc']}",
            "--rate",
            "100",
            "--traces",
            "200",
            "--error-ratio",
            "0.1",
            "--slow-ratio",
            "0.1",
            "--seed",
            "7",
        )
        assert result.returncode == 0, result.stderr
        sent = json.loads(result.stdout.strip().splitlines()[-1])
        assert sent["traces"] == 200
        assert sent["delivered_spans"] == 9 * 200  # the receiver accepted every span

        def decided() -> float:
            text = requests.get(daemon.admin + "/metrics", timeout=5).text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("tail_sampler_traces_decided_total{")
            )

        wait_until(lambda: decided() >= 200, timeout=30, what="200 decisions")
        code, output = daemon.terminate(signal.SIGINT)
    finally:
        daemon.kill()
    assert code == 0, output
    from sampler.codecs.otlp_json import request_from_json
    from tests.support import spans_of

    spans = spans_of(request_from_json(line) for line in out.read_text().splitlines())
    kept_traces = {s.trace_id for s in spans}
    errors = {s.trace_id for s in spans if s.span.status.code == 2}
    # Every kept trace is whole (nine spans from five services) and was kept for a reason.
    assert len(kept_traces) >= sent["errors"]
    assert errors and errors <= kept_traces
    assert {s.service for s in spans} == {"frontend", "cart", "checkout", "payment", "inventory"}
    for trace_id in kept_traces:
        assert sum(1 for s in spans if s.trace_id == trace_id) == 9
    assert len(kept_traces) <= sent["errors"] + sent["slow"]


def test_loadgen_exits_non_zero_when_nothing_was_delivered():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        result = cli("loadgen", "--endpoint", f"127.0.0.1:{port}", "--traces", "3", "--rate", "50")
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["traces"], summary["delivered_spans"]) == (3, 0)
    assert f"error: none of the 3 traces' spans reached 127.0.0.1:{port} (grpc): is a receiver listening there?" in (
        result.stderr
    )


def test_python_dash_m_and_console_script_agree():
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("tail-sampler ")
    script = Path(sys.executable).with_name("tail-sampler")
    if script.exists():
        assert subprocess.run([str(script), "--version"], capture_output=True, text=True).stdout == result.stdout


def test_admin_endpoint_flag_beats_the_environment_which_beats_the_file(tmp_path):
    data = config_dict({"file": {"path": str(tmp_path / "out.jsonl")}})
    path, ports = write_config(tmp_path, data)
    from_env, from_flag = free_port(), free_port()
    environ = {**os.environ, "TAIL_SAMPLER_ADMIN_ENDPOINT": f"127.0.0.1:{from_env}"}

    plain = {key: value for key, value in os.environ.items() if key != "TAIL_SAMPLER_ADMIN_ENDPOINT"}
    result = cli("check", "--config", str(path), env=plain)
    assert f"admin: /metrics, /healthz, /readyz on 127.0.0.1:{ports['admin']}\n" in result.stdout, result.stdout
    result = cli("check", "--config", str(path), env=environ)
    assert f"on 127.0.0.1:{from_env} (from TAIL_SAMPLER_ADMIN_ENDPOINT" in result.stdout, result.stdout
    result = cli("check", "--config", str(path), "--admin-endpoint", f"127.0.0.1:{from_flag}", env=environ)
    assert f"on 127.0.0.1:{from_flag} (from " in result.stdout, result.stdout

    # The running daemon listens where `check` said, whatever the file says.
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sampler", "run", "--config", str(path), "--admin-endpoint", f"127.0.0.1:{from_flag}"],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def healthy() -> bool:
            assert daemon.poll() is None, daemon.stdout.read()
            try:
                return requests.get(f"http://127.0.0.1:{from_flag}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(healthy, timeout=30, what="/healthz on the --admin-endpoint port")
        for port in (from_env, ports["admin"]):
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, output
    assert f"admin endpoint 127.0.0.1:{from_flag} (from TAIL_SAMPLER_ADMIN_ENDPOINT or --admin-endpoint)" in output


def test_an_admin_endpoint_that_is_not_host_port_is_a_config_error(tmp_path):
    result = cli("check", env={**os.environ, "TAIL_SAMPLER_ADMIN_ENDPOINT": "localhost"})
    assert result.returncode == 2
    assert "TAIL_SAMPLER_ADMIN_ENDPOINT: endpoint 'localhost' must be host:port" in result.stderr
    result = cli("run", "--admin-endpoint", "8888")
    assert result.returncode == 2
    assert "TAIL_SAMPLER_ADMIN_ENDPOINT: endpoint '8888' must be host:port" in result.stderr


# Runs the command as it runs where the `demo` extra (the OpenTelemetry SDK and its exporters) is not
# installed: the import system finds neither package.
_WITHOUT_DEMO_EXTRA = (
    "import sys; sys.modules['opentelemetry.sdk'] = sys.modules['opentelemetry.exporter'] = None; "
    "from sampler.cli import main; sys.argv[0] = 'tail-sampler'; sys.exit(main())"
)


def cli_without_demo_extra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_DEMO_EXTRA, *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_without_the_demo_extra_loadgen_demo_and_self_tracing_name_it(tmp_path):
    result = cli_without_demo_extra("loadgen", "--traces", "1")
    assert result.returncode == 2
    assert "error: loadgen needs the OpenTelemetry SDK and its OTLP/grpc exporter" in result.stderr
    assert "pip install 'tail-sampler[demo]'" in result.stderr

    result = cli_without_demo_extra("run", "--demo")
    assert result.returncode == 2 and "error: --demo needs the OpenTelemetry SDK" in result.stderr

    data = config_dict({"file": {"path": str(tmp_path / "out.jsonl")}})
    data["telemetry"] = {"traces": {"endpoint": "127.0.0.1:4317", "protocol": "http"}}
    path = tmp_path / "traced.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    line = path.read_text().splitlines().index("  traces:") + 1
    result = cli_without_demo_extra("check", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}:{line}: telemetry.traces: self-tracing needs the OpenTelemetry SDK and its OTLP/http" in (
        result.stderr
    )
    assert "install the `demo` extra" in result.stderr


def test_without_the_demo_extra_the_daemon_runs(tmp_path):
    data = config_dict({"file": {"path": str(tmp_path / "out.jsonl")}})
    path, ports = write_config(tmp_path, data)
    daemon = subprocess.Popen(
        [sys.executable, "-c", _WITHOUT_DEMO_EXTRA, "run", "--config", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def ready() -> bool:
            assert daemon.poll() is None, daemon.stdout.read()
            try:
                return requests.get(f"http://127.0.0.1:{ports['admin']}/readyz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, timeout=30, what="/readyz of a daemon without the SDK")
        _, spans = make_trace(error=True)
        grpc_export(f"127.0.0.1:{ports['grpc']}", make_request(spans))
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, output
    assert (tmp_path / "out.jsonl").read_text().strip(), output


def test_check_says_where_the_durable_window_and_the_journal_live(tmp_path):
    path = tmp_path / "durable.yaml"
    path.write_text(
        "tail_sampling:\n"
        "  policies: [{name: all, type: always_sample}]\n"
        f"  storage: {{directory: {tmp_path / 'state'}, fsync: always, when_full: decide_early}}\n"
        "exporters: {file: {path: out.jsonl}}\n"
    )
    result = cli("check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert (
        f"durable window: requests acknowledged once in {tmp_path / 'state'}/window (fsync: always, "
        "max_size_mib=1024, when_full: decide_early)"
    ) in result.stdout
    assert f"decisions: journaled in {tmp_path / 'state' / 'decisions'}, compacted into" in result.stdout
