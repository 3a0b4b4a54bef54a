"""Optional compiled hot path: with TAIL_SAMPLER_MYPYC=1 in the environment of `pip install`
(or of a wheel build), the per-span modules below are compiled with mypyc, as black and mypy
ship themselves; without it the same modules run as plain Python. Everything else about the
package is in pyproject.toml; build_backend/ adds mypy[mypyc] to the build requirements when
the variable is set.
"""

from __future__ import annotations

import os

from setuptools import setup

# What every span and every trace goes through: the wire-level splitter and its walker, the trace
# model and the span-metrics fields the walker fills; the window, the engine, its decision records
# and caches, and the framing of kept spans. Each group was measured to pay for itself
# (tests/bench/stages_bench.py; docs/performance.md).
HOT_PATH = [
    "sampler/receive/wire_check.py",
    "sampler/receive/wire_split.py",
    "sampler/spans/trace.py",
    "sampler/spans/fields.py",
    "sampler/spans/framing.py",
    "sampler/window/window.py",
    "sampler/decide/engine.py",
    "sampler/decide/records.py",
    "sampler/decide/cache.py",
]
# The build checks only the compiled modules; what they import is read for its types but not
# judged, and third-party packages need not be installed in the (isolated) build environment.
MYPY_FLAGS = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent", "--python-version=3.11"]


def hot_path_extensions() -> list:
    if os.environ.get("TAIL_SAMPLER_MYPYC") != "1":
        return []
    from mypyc.build import mypycify

    return mypycify([*MYPY_FLAGS, *HOT_PATH], opt_level="3", debug_level="1")


setup(ext_modules=hot_path_extensions())
