"""A short, bounded run of the atheris target in tests/fuzz/ (longer runs: its README)."""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
from pathlib import Path

from tests.fuzz.seeds import write_seeds
from tests.peers import unavailable

TARGET = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_receive.py"
RUNS = 2_000


def test_the_fuzz_target_finds_no_crash_in_a_short_run(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        unavailable("atheris", f"not installed (its wheels are for x86-64 Linux; this is {platform.machine()})")
    # In a temporary directory: libFuzzer writes any crash-* input into its working directory,
    # and new inputs into the corpus, which starts from valid requests and the shipped config.
    corpus = tmp_path / "corpus"
    write_seeds(corpus)
    result = subprocess.run(
        [
            sys.executable,
            str(TARGET),
            str(corpus),
            f"-runs={RUNS}",
            "-seed=1",
            "-timeout=10",
            "-max_total_time=120",
            "-rss_limit_mb=2048",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {RUNS} runs" in result.stderr
    assert not list(tmp_path.glob("crash-*"))
