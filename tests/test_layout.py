"""docs/architecture.md lists every module of sampler/ in its room, and nothing that is not there.

A package is listed as its folder (`sampler/decide/`), standing for its __init__.py; any other
module by its file. The table is the page's rows whose second cell is a `sampler/...` path."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "architecture.md"
_ROW = re.compile(r"^\|\s*(?P<room>[^|]*?)\s*\|\s*`(?P<path>sampler/[^`]*)`\s*\|")


def _modules() -> set[str]:
    found = set()
    for path in (REPO / "sampler").rglob("*.py"):
        relative = path.relative_to(REPO)
        found.add(f"{relative.parent.as_posix()}/" if path.name == "__init__.py" else relative.as_posix())
    return found


def _rows() -> list[tuple[str, str]]:
    return [
        (match["room"], match["path"])
        for line in PAGE.read_text(encoding="utf-8").splitlines()
        if (match := _ROW.match(line))
    ]


def test_the_architecture_page_lists_every_module_and_only_those():
    listed = [path for _, path in _rows()]
    assert len(listed) == len(set(listed)), "a module is listed twice"
    modules = _modules()
    assert sorted(modules - set(listed)) == [], "modules missing from docs/architecture.md"
    assert sorted(set(listed) - modules) == [], "docs/architecture.md lists modules that do not exist"


def test_each_module_sits_in_the_room_of_its_folder():
    for room, path in _rows():
        parts = path.split("/")
        expected = parts[1] if len(parts) > 2 else ""  # sampler/<room>/..., or a top-level module
        assert room == expected, f"{path} is listed in room {room!r}, its folder says {expected!r}"
