"""The translation of a Collector config under way: the daemon's config it builds, the errors and
notes it finds (at key paths of the Collector file), and where each part of the result came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What to do with a component the daemon does not have, by kind.
ELSEWHERE = {
    "receiver": "receive with a Collector that exports OTLP to the tail-sampler",
    "processor": "run it in a Collector before the tail-sampler (exporting OTLP to it) or after it, or leave it out",
    "exporter": "export OTLP to a Collector that has it",
    "pipeline": "run this pipeline in a Collector",
    "connector": "run the pipelines it joins in a Collector",
}


def component_type(component_id: str) -> str:
    """`otlp` for both `otlp` and `otlp/backend`, as the Collector names component instances."""
    return component_id.split("/", 1)[0]


@dataclass(frozen=True)
class Finding:
    """Something about the Collector file, at a key path of that file."""

    path: tuple[Any, ...]
    message: str


@dataclass
class Translation:
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    # (prefix of a path in the daemon's config, prefix of the path it came from in the Collector file)
    origins: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=list)

    def source_path(self, path: tuple[Any, ...]) -> tuple[Any, ...]:
        """Where a key of the daemon's config came from in the Collector file."""
        best: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None
        for target, origin in self.origins:
            if path[: len(target)] == target and (best is None or len(target) > len(best[0])):
                best = (target, origin)
        return path if best is None else best[1] + path[len(best[0]) :]

    def daemon_lines(self, lines: Mapping[tuple[Any, ...], int]) -> dict[tuple[Any, ...], int]:
        """The line numbers of the Collector file, keyed by the daemon's key paths."""
        mapped: dict[tuple[Any, ...], int] = {}
        for target, origin in sorted(self.origins, key=lambda pair: len(pair[0])):
            for path, line in lines.items():
                if path[: len(origin)] == origin:
                    mapped[target + path[len(origin) :]] = line
        return mapped

    def error(self, path: tuple[Any, ...], message: str) -> None:
        self.errors.append(Finding(path, message))

    def note(self, path: tuple[Any, ...], message: str) -> None:
        self.notes.append(Finding(path, message))

    def carry(self, target: tuple[Any, ...], origin: tuple[Any, ...], value: Any) -> None:
        """Put a value of the Collector file at a path of the daemon's config."""
        node = self.data
        for key in target[:-1]:
            node = node.setdefault(key, {})
        node[target[-1]] = value
        self.origins.append((target, origin))


def mapping(out: Translation, parent: Mapping[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    value = parent.get(path[-1])
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.error(path, "must be a mapping")
        return {}
    return value


def component_ids(out: Translation, parent: Mapping[str, Any], path: tuple[Any, ...]) -> list[tuple[int, str]]:
    value = parent.get(path[-1])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        out.error(path, "must be a list of component IDs")
        return []
    return list(enumerate(value))


def component(
    out: Translation, sections: dict[str, dict[str, Any]], kind: str, component_id: str, where: tuple[Any, ...]
) -> dict[str, Any] | None:
    """A component's settings from its section; an empty body means its defaults."""
    section = sections[f"{kind}s"]
    if component_id not in section:
        if kind != "processor" and component_id in sections["connectors"]:
            out.error(where, f"{component_id!r} is a connector; the tail-sampler has none: {ELSEWHERE['connector']}")
        else:
            out.error(where, f"{kind} {component_id!r} is not defined under {kind}s")
        return None
    body = section[component_id]
    if body is None:
        return {}
    if not isinstance(body, dict):
        out.error((f"{kind}s", component_id), "must be a mapping")
        return None
    return dict(body)
