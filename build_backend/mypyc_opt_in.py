"""The setuptools build backend, plus mypy[mypyc] among the build requirements when
TAIL_SAMPLER_MYPYC=1 asks for the hot-path modules to be compiled (see setup.py).

Without the variable nothing changes: same backend, same requirements, plain modules.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools.build_meta import *  # noqa: F403 - every PEP 517/660 hook, unchanged unless redefined below

# mypyc is part of mypy; its runtime (mypy_extensions) is a dependency of the project itself.
MYPYC_REQUIREMENTS = ["mypy[mypyc]>=2.4.1"]


def _compiling() -> list[str]:
    return MYPYC_REQUIREMENTS if os.environ.get("TAIL_SAMPLER_MYPYC") == "1" else []


# setuptools answers these hooks by running setup.py, which needs mypyc before it is installed
# when compiling; setup.py declares no setup_requires, so the answer is known without running it.
def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _compiling()


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _compiling()
