"""Progress bars for `tail-sampler simulate` on large files: reading the file, then deciding its
traces with each config. On a terminal only (stderr), and never with --json."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import NoReturn, TextIO, TypeVar

from tqdm import tqdm

from sampler.tools.simulate.read import BLOCK_BYTES, POOL_BLOCKS

Item = TypeVar("Item")
# From this size a file is decoded by a pool of workers (read.py) and takes seconds: worth a bar.
LARGE_FILE_BYTES = POOL_BLOCKS * BLOCK_BYTES


def wanted(path: str | Path, stream: TextIO, json_output: bool) -> bool:
    if json_output or not stream.isatty():
        return False
    try:
        return os.stat(path).st_size >= LARGE_FILE_BYTES
    except OSError:
        return False  # reading says why


def reading(path: str | Path, stream: TextIO, enabled: bool) -> tqdm[NoReturn]:
    """A bar over the bytes of the file (its update() is what read_traces reports to)."""
    size = os.stat(path).st_size if enabled else 0
    return tqdm(total=size, desc="reading", unit="B", unit_scale=True, file=stream, disable=not enabled, leave=False)


def deciding(traces: Collection[Item], config: str, stream: TextIO, enabled: bool) -> tqdm[Item]:
    """The traces, counted as they are decided."""
    return tqdm(traces, desc=f"deciding ({config})", unit=" traces", file=stream, disable=not enabled, leave=False)
