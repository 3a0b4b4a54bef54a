"""tests/bench/cpu_bench.py works: a tiny load against the daemon only (the Collector needs a Go
build; the benchmark itself runs it). No figure is asserted: speed is the benchmark's to report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cpu_bench_measures_the_daemon_and_checks_kept_traces_whole():
    command = [sys.executable, "tests/bench/cpu_bench.py", "--no-collector", "--daemon-workers", "1,2"]
    command += ["--duration", "2", "--warmup", "0", "--max-requests", "40", "--repeats", "1", "--json"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("command: ") and "tests/bench/cpu_bench.py --no-collector" in lines[0]
    one, two = json.loads(lines[-1])
    # workers: 2 runs once the daemon has the key; until then it is reported, not failed.
    assert "unsupported" not in one, one
    for summary in (one, two):
        if "unsupported" in summary:
            assert "workers" in summary["unsupported"]
            continue
        assert summary["runs"] == 1 and summary["whole_runs"] == 1, result.stdout
        assert summary["cpu_seconds"] > 0 and summary["spans_per_cpu_second"] > 0 and summary["rate"] > 0
    assert "| kept traces whole |" in result.stdout
