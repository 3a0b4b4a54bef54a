"""Reading the documentation's Markdown: pages, fenced code blocks, tables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)$")


def page(relative: str) -> str:
    return (DOCS / relative).read_text(encoding="utf-8")


def pages() -> list[Path]:
    """Every Markdown page of the site, README excluded."""
    return sorted(DOCS.rglob("*.md"))


@dataclass(frozen=True)
class CodeBlock:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def code_blocks(path: Path) -> Iterator[CodeBlock]:
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            body.append(lines[end][indent:])
            end += 1
        assert end < len(lines), f"{path.relative_to(REPO)}:{index + 1}: code block never closed"
        yield CodeBlock(path, index + 1, opening["info"].strip().split(" ")[0], "\n".join(body) + "\n")
        index = end + 1


@dataclass(frozen=True)
class Table:
    line: int  # of the header row, 1-based
    header: list[str]
    rows: list[list[str]]
    before: str  # the paragraph just above the table, its lines joined


def split_row(line: str) -> list[str]:
    # Cells are separated by pipes outside code spans (a `|` inside backticks belongs to the cell).
    cells, current, in_code = [], "", False
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += char
    cells.append(current.strip())
    return [cell.replace("\\|", "|") for cell in cells]


def tables(text: str) -> Iterator[Table]:
    lines = text.splitlines()
    index = 0
    while index + 1 < len(lines):
        if lines[index].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[index + 1].strip()):
            above = index
            while above > 0 and not lines[above - 1].strip():
                above -= 1
            start = above
            while start > 0 and lines[start - 1].strip():
                start -= 1
            before = " ".join(line.strip() for line in lines[start:above])
            rows = []
            end = index + 2
            while end < len(lines) and lines[end].startswith("|"):
                rows.append(split_row(lines[end]))
                end += 1
            yield Table(index + 1, split_row(lines[index]), rows, before)
            index = end
        else:
            index += 1


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)
