"""Soak, bounded: tests/bench/soak.py at half the measured capacity for 30 s; memory stays flat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Resident memory may wander this much after warm-up (allocator and GC noise), not grow steadily.
RSS_GROWTH_TOLERANCE = 0.10


@pytest.mark.slow
def test_memory_stays_flat_at_half_capacity_and_nothing_is_lost():
    command = [
        sys.executable,
        "tests/bench/soak.py",
        "--duration",
        "0.5",
        "--decision-wait",
        "2",
        "--cache-size",
        "2000",
        "--interval",
        "2",
        "--probe",
        "4",
        "--json",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rss_mib = [round(sample["rss"] / 2**20, 1) for sample in summary["samples"]]
    assert summary["alive"] and summary["exit_code"] == 0, result.stderr
    assert summary["received"] > 0
    assert summary["no_loss"], {key: value for key, value in summary.items() if key != "samples"}
    assert summary["early_decisions"] == 0
    assert summary["steady_samples"] >= 6, rss_mib
    assert summary["rss_growth"] <= RSS_GROWTH_TOLERANCE, rss_mib
