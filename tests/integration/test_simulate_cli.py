"""`tail-sampler simulate` as a user runs it: a subprocess on files, including one the real daemon's
file exporter wrote."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from sampler.codecs.otlp_json import request_to_json
from tests.integration.test_cli import DaemonProcess, cli, write_config
from tests.support import config_dict, grpc_export, make_request, make_trace, wait_until

ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
SLOW = {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}}


def config_file(path: Path, *policies: dict[str, Any], **sampling: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {"tail_sampling": {"policies": list(policies), **sampling}, "exporters": {"file": {"path": "x"}}}
        )
    )
    return path


def traces_file(path: Path) -> Path:
    """3 error traces (one of them slow), 2 slow ones, 5 others; 3 spans each; one trace split over two lines."""
    lines = []
    for error, duration in [(True, 50), (True, 50), (True, 900), (False, 900), (False, 900)] + [(False, 40)] * 5:
        _, spans = make_trace(spans=3, error=error, duration_ms=duration)
        lines.append(request_to_json(make_request(spans)))
    _, split = make_trace(spans=3, error=True)
    lines[1:1] = [request_to_json(make_request(split[:1])), ""]
    lines.append(request_to_json(make_request(split[1:], service="late")))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_simulate_prints_per_policy_and_total_counts(tmp_path: Path) -> None:
    config = config_file(tmp_path / "a.yaml", ERRORS, SLOW)
    result = cli("simulate", "--config", str(config), "--input", str(traces_file(tmp_path / "t.jsonl")))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"input: {tmp_path / 't.jsonl'}: 12 requests, 11 traces, 33 spans" in out
    assert f"config: {config}" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("errors", "slow"))}
    assert rows["errors"] == ["status_code", "4", "12", "36.36%", "4", "36.36%"]
    assert rows["slow"] == ["latency", "2", "6", "18.18%", "3", "27.27%"]
    assert "kept 6 of 11 traces (54.55%), 18 of 33 spans (54.55%)" in out


def test_simulate_compare_json(tmp_path: Path) -> None:
    first = config_file(tmp_path / "a.yaml", ERRORS, SLOW)
    second = config_file(tmp_path / "b.yaml", SLOW, sample_on_first_match=True)
    result = cli(
        "simulate",
        *("--config", str(first), "--input", str(traces_file(tmp_path / "t.jsonl"))),
        *("--compare", str(second), "--json"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["input"]["traces"] == 11 and report["input"]["spans"] == 33
    a, b = report["results"]
    assert (a["config"], a["kept_traces"], a["kept_spans"]) == (str(first), 6, 18)
    assert (b["config"], b["kept_traces"], b["kept_spans"]) == (str(second), 3, 9)
    assert [(p["name"], p["kept_traces"], p["matched_traces"]) for p in a["policies"]] == [
        ("errors", 4, 4),
        ("slow", 2, 3),
    ]
    assert report["comparison"] == {"only_first": 3, "only_second": 0, "both": 3, "neither": 5}


def test_simulate_compare_side_by_side(tmp_path: Path) -> None:
    first = config_file(tmp_path / "a.yaml", ERRORS, SLOW)
    second = config_file(tmp_path / "b.yaml", SLOW, {"name": "all", "type": "always_sample"})
    result = cli(
        "simulate",
        *("--config", str(first), "--input", str(traces_file(tmp_path / "t.jsonl")), "--compare", str(second)),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"A: {first}\nB: {second}\n" in out
    header = next(line for line in out.splitlines() if line.startswith("policy"))
    assert header.split() == [
        "policy",
        "A",
        "kept",
        "A",
        "rate",
        "A",
        "matched",
        "B",
        "kept",
        "B",
        "rate",
        "B",
        "matched",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["errors"] == ["4", "36.36%", "4", "-", "-"]
    assert rows["slow"] == ["2", "18.18%", "3", "3", "27.27%", "3"]
    assert rows["all"] == ["-", "-", "8", "72.73%", "11"]
    assert rows["total"] == ["6", "54.55%", "11", "100.00%"]
    assert "traces kept by A only: 0, by B only: 5, by both: 6, by neither: 0" in out


def test_simulate_reads_a_pipe(tmp_path: Path) -> None:
    config = config_file(tmp_path / "a.yaml", ERRORS, SLOW)
    text = traces_file(tmp_path / "t.jsonl").read_text()
    result = cli("simulate", "--config", str(config), "--input", "/dev/stdin", "--json", input=text)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["input"]["traces"], report["input"]["spans"], report["results"][0]["kept_traces"]) == (11, 33, 6)


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = traces_file(tmp_path / "t.jsonl")
    lines = path.read_text().splitlines()
    lines.insert(4, '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}')
    path.write_text("\n".join(lines) + "\n")
    result = cli("simulate", "--config", str(config_file(tmp_path / "a.yaml", ERRORS)), "--input", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: {path}:5: malformed OTLP JSON request: traceId 'xyz' is not a hex string"


def test_config_errors_are_reported_as_check_reports_them(tmp_path: Path) -> None:
    good = config_file(tmp_path / "good.yaml", ERRORS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("tail_sampling:\n  policies:\n    - {name: a, type: latncy}\nexporters:\n  file: {path: x}\n")
    traces = str(traces_file(tmp_path / "t.jsonl"))
    for args in (["--config", str(bad)], ["--config", str(good), "--compare", str(bad)]):
        result = cli("simulate", *args, "--input", traces)
        assert result.returncode == 2
        assert result.stdout == ""
        assert f"{bad}:3: tail_sampling.policies[0].type: unknown policy type 'latncy'" in result.stderr
        assert result.stderr == cli("check", "--config", str(bad)).stderr


def test_a_missing_input_file_is_an_error(tmp_path: Path) -> None:
    config = config_file(tmp_path / "a.yaml", ERRORS)
    result = cli("simulate", "--config", str(config), "--input", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory"


def test_simulate_replays_what_the_daemons_file_exporter_wrote(tmp_path: Path) -> None:
    # The daemon keeps everything: 100 checkout traces from `tail-sampler loadgen` (nine spans
    # each, from five services' SDKs), and one trace whose last spans arrive after it was
    # decided; the daemon forwards those as late spans, on a later line of the file.
    recorded = tmp_path / "recorded.jsonl"
    data = config_dict(
        {"file": {"path": str(recorded)}}, policies=[{"name": "all", "type": "always_sample"}], decision_wait="200ms"
    )
    path, ports = write_config(tmp_path, data)
    endpoint = f"127.0.0.1:{ports['grpc']}"
    daemon = DaemonProcess(path, ports["admin"])
    try:
        result = cli(
            "loadgen",
            *("--endpoint", endpoint, "--rate", "100", "--traces", "100"),
            *("--error-ratio", "0.2", "--slow-ratio", "0.2", "--seed", "11"),
        )
        assert result.returncode == 0, result.stderr
        sent = json.loads(result.stdout.strip().splitlines()[-1])
        late_id, late_spans = make_trace(spans=4, error=True)
        grpc_export(endpoint, make_request(late_spans[:2]))
        wait_until(lambda: recorded.exists() and late_id.hex() in recorded.read_text(), what="the first half written")
        grpc_export(endpoint, make_request(late_spans[2:]))
        code, output = daemon.terminate(signal.SIGTERM)  # decides what is buffered and flushes the file
    finally:
        daemon.kill()
    assert code == 0, output
    assert sent["errors"] and sent["slow"]
    lines = recorded.read_text().splitlines()
    assert sum(late_id.hex() in line for line in lines) == 2  # the file splits that trace

    config = config_file(tmp_path / "a.yaml", ERRORS, SLOW)
    result = cli("simulate", "--config", str(config), "--input", str(recorded), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Every trace whole again, however the file split them.
    assert report["input"] == {
        "path": str(recorded),
        "requests": len(lines),
        "traces": 101,
        "spans": 100 * 9 + 4,
        "rejected_spans": 0,
    }
    errors, slow = report["results"][0]["policies"]
    assert errors["matched_traces"] == sent["errors"] + 1
    assert slow["matched_traces"] == sent["slow"]
    kept = report["results"][0]["kept_traces"]
    assert max(sent["errors"] + 1, sent["slow"]) <= kept <= sent["errors"] + 1 + sent["slow"]
    assert errors["kept_traces"] + slow["kept_traces"] == kept


# --- progress on a terminal ---------------------------------------------------------------


def large_traces_file(path: Path, min_bytes: int) -> int:
    """Distinct 5-span traces, one request per line, until the file holds min_bytes; returns the traces."""
    trace_id, spans = make_trace(spans=5, error=True)
    template = request_to_json(make_request(spans))
    lines = []
    size = 0
    while size < min_bytes:
        line = template.replace(trace_id.hex(), f"{len(lines) + 1:032x}")
        lines.append(line)
        size += len(line) + 1
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """The command with a pseudo-terminal as its stderr (as in an interactive shell): exit code,
    stdout, and what it wrote to the terminal."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import sys
    import termios

    from tests.integration.test_cli import REPO

    master, slave = pty.openpty()
    # 24 rows of 100 columns: a new pseudo-terminal has none, and a bar has no room on it.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "sampler", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=slave, text=True
    )
    os.close(slave)
    terminal = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the last writer closed the terminal
                break
            if not chunk:
                break
            terminal += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    stdout, _ = process.communicate(timeout=60)
    return process.returncode, stdout, terminal.decode(errors="replace")


def test_simulate_shows_progress_on_a_terminal_for_a_large_file_and_never_in_json(tmp_path: Path) -> None:
    from sampler.tools.simulate.progress import LARGE_FILE_BYTES

    config = config_file(tmp_path / "a.yaml", ERRORS)
    traces = large_traces_file(tmp_path / "large.jsonl", LARGE_FILE_BYTES + 1024)
    command = ("simulate", "--config", str(config), "--input", str(tmp_path / "large.jsonl"))

    code, stdout, terminal = run_on_a_terminal(*command)
    assert code == 0, terminal
    assert f"kept {traces} of {traces} traces" in stdout
    assert "reading: " in terminal and "%|" in terminal, terminal
    assert f"deciding ({config})" in terminal, terminal

    code, stdout, terminal = run_on_a_terminal(*command, "--json")
    assert code == 0, terminal
    assert json.loads(stdout)["input"]["traces"] == traces
    assert terminal.strip() == ""

    # Not a terminal (a pipe, a CI log): no bar either.
    result = cli(*command)
    assert result.returncode == 0 and result.stderr == ""


def test_simulate_shows_no_progress_for_a_small_file_even_on_a_terminal(tmp_path: Path) -> None:
    config = config_file(tmp_path / "a.yaml", ERRORS)
    code, stdout, terminal = run_on_a_terminal(
        "simulate", "--config", str(config), "--input", str(traces_file(tmp_path / "t.jsonl"))
    )
    assert code == 0, terminal
    assert "kept 4 of 11 traces" in stdout
    assert terminal.strip() == ""
