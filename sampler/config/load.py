"""Loading the configuration: YAML with `${env:NAME}` substitution, validated by the typed models
of the other modules here, policies and exporters by the models their registries give.

Every validation error is reported with the file, the line, the key path and,
where there is a fixed set, the valid choices.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from sampler.config.collector import Translation, is_collector_config, translate
from sampler.config.exporters import ExporterConfig, exporter_type
from sampler.config.model import AdminConfig, Config
from sampler.config.types import ConfigError
from sampler.telemetry.endpoints import split_endpoint

if TYPE_CHECKING:
    from sampler.forward.exporters.registry import ExporterType
    from sampler.policies.base import PolicyConfig
    from sampler.policies.registry import PolicyRegistry


class _Registries(NamedTuple):
    """What picks the models of policies (by their `type`) and exporters (by their key's prefix)."""

    policies: PolicyRegistry
    exporters: Mapping[str, ExporterType]


SHIPPED_CONFIG = Path("config") / "sampler.yaml"


def default_config_path() -> Path:
    """The shipped config: config/sampler.yaml in the working directory, else in the source checkout."""
    if SHIPPED_CONFIG.exists():
        return SHIPPED_CONFIG
    return Path(__file__).resolve().parents[2] / SHIPPED_CONFIG


_ENV_REFERENCE = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute_env(value: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set")

    return _ENV_REFERENCE.sub(replace, value)


def _prepare_nodes(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    environ: Mapping[str, str],
    source: str,
    seen: set[int],
) -> None:
    """Record the line of every key path and substitute environment references.

    A substituted value stays a string; the typed models convert it to what the
    key expects, so `headers: {x-key: ${env:KEY}}` stays a string even if KEY is
    digits (the Collector's behaviour since v0.107)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:  # an alias: the node was handled where it was anchored
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]: x`: YAML allows it, no config key is one
                line = key_node.start_mark.line + 1
                raise ConfigError(
                    f"{source}:{line}: {_format_path(path)}: a key must be a plain value, not a list or map"
                )
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _prepare_nodes(value_node, path + (key,), lines, environ, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _prepare_nodes(item, path + (index,), lines, environ, source, seen)
    elif isinstance(node, yaml.ScalarNode) and "$" in node.value:
        try:
            substituted = _substitute_env(node.value, environ)
        except ConfigError as exc:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: {_format_path(path)}: {exc}") from None
        if substituted != node.value:
            node.value = substituted
            node.tag = "tag:yaml.org,2002:str"


def _format_path(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(path: tuple[Any, ...], lines: Mapping[tuple[Any, ...], int]) -> int:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


def _field_model(annotation: Any) -> Any:
    """The model a field's value is validated by: list items, optional values, annotated types unwrapped."""
    while True:
        origin = get_origin(annotation)
        if origin in (Union, Annotated) or type(annotation).__name__ == "UnionType":
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        elif origin in (list, tuple):
            annotation = get_args(annotation)[0]
        else:
            return annotation


def _model_for(model: Any, node: Any, policies: PolicyRegistry) -> type[BaseModel] | None:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    # Policies (and sub-policies) are untyped until their `type` key picks the model.
    if isinstance(node, dict) and node.get("type") in policies.types:
        return policies.entry_model(node["type"])
    return None


def _allowed_keys_anywhere(data: Any, path: tuple[Any, ...], registries: _Registries) -> list[str]:
    """The keys valid at `path`, found by walking the models alongside the data."""
    model: Any = Config
    node = data
    if len(path) >= 2 and path[0] == "exporters":
        # An exporter's model is picked by the type in its key (otlp/name).
        kind = registries.exporters.get(exporter_type(str(path[1])))
        model = kind.config_model if kind is not None else None
        node = data.get("exporters", {}).get(path[1]) if isinstance(data.get("exporters"), dict) else None
        path = path[2:]
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        resolved = _model_for(model, node, registries.policies)
        field = resolved.model_fields.get(part) if resolved is not None else None
        if field is None:
            return []
        model = _field_model(field.annotation)
        node = node.get(part) if isinstance(node, dict) else None
    resolved = _model_for(model, node, registries.policies)
    return sorted(resolved.model_fields) if resolved is not None else []


def _describe_error(error: Mapping[str, Any], data: Any, registries: _Registries) -> tuple[tuple[Any, ...], str]:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    message = error["msg"]
    if error["type"] == "extra_forbidden" and loc:
        allowed = _allowed_keys_anywhere(data, loc[:-1], registries)
        key = str(loc[-1])
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        if allowed:
            message += f"; valid keys: {', '.join(allowed)}"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return loc, message


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and, for an OpenTelemetry Collector config, how it was translated."""

    config: Config
    # What of a Collector config does not carry over, as `file:line: key.path: what instead` lines.
    notes: tuple[str, ...] = ()
    # The daemon's own config a Collector config translates to, as YAML (environment references as written).
    translation: str | None = None


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    return read_config(path, environ).config


def parse_config(text: str, source: str = "<config>", environ: Mapping[str, str] | None = None) -> Config:
    return read_config_text(text, source, environ).config


def read_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> LoadedConfig:
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{source}:{line}: the config file is not UTF-8 text (byte {data[exc.start]:#04x}); save it as UTF-8"
        ) from None
    return read_config_text(text, source, os.environ if environ is None else environ)


def read_config_text(text: str, source: str = "<config>", environ: Mapping[str, str] | None = None) -> LoadedConfig:
    environ = os.environ if environ is None else environ
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: the reader checks the whole text first
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{source}:{line}: invalid YAML: character {exc.character:#x} is not allowed") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{source}: the config file is empty")
        lines: dict[tuple[Any, ...], int] = {}
        _prepare_nodes(node, (), lines, environ, source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{source}:{line}: invalid YAML: {exc.problem or exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: an alias refers to itself") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: the config must be a mapping of sections (receivers, tail_sampling, exporters...)"
        )
    translation = _translate(data) if is_collector_config(data) else None
    try:
        config = _validate(data, lines, source, translation)
    except RecursionError:
        raise ConfigError(f"{source}: invalid configuration: a YAML alias refers to itself") from None
    config = _admin_endpoint_from_environment(config, environ)
    traces = config.telemetry.traces
    if traces is not None and traces.endpoint is None and not any(name in environ for name in _OTLP_ENDPOINT_VARIABLES):
        raise ConfigError(
            f"{source}:{_line_of(('telemetry', 'traces'), lines)}: telemetry.traces.endpoint: not set, and neither "
            f"is {' nor '.join(_OTLP_ENDPOINT_VARIABLES)}: set one of them"
        )
    if translation is None:
        return LoadedConfig(config)
    in_line_order = sorted(translation.notes, key=lambda finding: _line_of(finding.path, lines))
    notes = tuple(_at_line(source, finding.path, lines, finding.message) for finding in in_line_order)
    return LoadedConfig(config, notes, _translated_yaml(text, source, notes))


def _translate(data: dict[str, Any]) -> Translation:
    from sampler.forward.exporters.registry import EXPORTERS  # see _validate

    return translate(data, tuple(EXPORTERS))


def _at_line(source: str, path: tuple[Any, ...], lines: Mapping[tuple[Any, ...], int], message: str) -> str:
    return f"{source}:{_line_of(path, lines)}: {_format_path(path)}: {message}"


_TRANSLATION_ORDER = ("receivers", "tail_sampling", "batch", "exporters", "admin", "logging")


def _translated_yaml(text: str, source: str, notes: tuple[str, ...]) -> str:
    """The translation of the file as written, `${env:...}` references unexpanded, so that it can
    replace the file (and no secret from the environment is printed)."""
    translated = _translate(yaml.safe_load(text)).data
    ordered = {key: translated[key] for key in _TRANSLATION_ORDER if key in translated}
    header = [f"# tail-sampler config translated from the OpenTelemetry Collector config {source}"]
    if notes:
        header.append("# Not carried over:")
        header.extend(f"#   {note}" for note in notes)
    body = yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "\n".join(header) + "\n" + body


# Where self-tracing sends without telemetry.traces.endpoint, as the OpenTelemetry SDK reads them.
_OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

# Set, this variable is the admin endpoint whatever the file's admin.endpoint says (and `run
# --admin-endpoint` sets it): the image sets it to all interfaces, so that its published port and
# its HEALTHCHECK work with a user's own config file too.
ADMIN_ENDPOINT_ENV = "TAIL_SAMPLER_ADMIN_ENDPOINT"


def _admin_endpoint_from_environment(config: Config, environ: Mapping[str, str]) -> Config:
    endpoint = environ.get(ADMIN_ENDPOINT_ENV)
    if not endpoint:
        return config
    try:
        split_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError(f"{ADMIN_ENDPOINT_ENV}: {exc}, e.g. 0.0.0.0:8888") from None
    return config.model_copy(update={"admin": AdminConfig(endpoint=endpoint)})


def _validate(
    data: dict[str, Any], lines: Mapping[tuple[Any, ...], int], source: str, translation: Translation | None = None
) -> Config:
    """The config of `data`, or a ConfigError listing every problem found, in line order. A Collector
    config is validated as the daemon's config it translates to, its errors told at the Collector
    file's lines and key paths."""
    described: list[tuple[int, str]] = []
    if translation is not None:
        for finding in translation.errors:
            described.append((_line_of(finding.path, lines), _at_line(source, finding.path, lines, finding.message)))
        data, lines = translation.data, translation.daemon_lines(lines)

    # Imported here, not at the top: the policy and exporter modules import this package's models,
    # and importing any module of a package first runs the package's __init__, which imports this one.
    from sampler.forward.exporters.registry import EXPORTERS
    from sampler.policies.registry import POLICIES

    registries = _Registries(POLICIES, EXPORTERS)

    errors: list[dict[str, Any]] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors.extend(dict(error) for error in exc.errors())
    # Policies and exporters are checked even when other sections have errors, so one run reports all.
    raw_sampling = data.get("tail_sampling")
    raw_policies = raw_sampling.get("policies") if isinstance(raw_sampling, dict) else None
    raw_exporters = data.get("exporters")
    policies, policy_errors = _validate_policies(
        raw_policies if isinstance(raw_policies, list) else [], lines, POLICIES
    )
    exporters, exporter_errors = _validate_exporters(
        raw_exporters if isinstance(raw_exporters, dict) else {}, EXPORTERS
    )
    errors.extend(policy_errors + exporter_errors)
    if isinstance(raw_sampling, dict) and raw_sampling.get("sampling_strategy") == "span-ingest":
        errors.extend(_span_ingest_errors(policies))
    for error in errors:
        loc, message = _describe_error(error, data, registries)
        if translation is not None:
            if translation.errors and len(loc) == 1 and error["type"] in ("missing", "too_short"):
                continue  # a section left empty by a translation error, which says why
            if error["type"] == "extra_forbidden":
                message = message.replace("unknown key", "the tail-sampler has no key", 1) + "; leave it out"
            loc_in_source = translation.source_path(loc)
        else:
            loc_in_source = loc
        line = _line_of(loc, lines)
        described.append((line, f"{source}:{line}: {_format_path(loc_in_source)}: {message}"))
    if described:
        described.sort(key=lambda item: item[0])
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(text for _, text in described))
    assert config is not None
    return config.model_copy(
        update={
            "tail_sampling": config.tail_sampling.model_copy(update={"policies": policies}),
            "exporters": exporters,
        }
    )


def _span_ingest_errors(policies: list[PolicyConfig]) -> list[dict[str, Any]]:
    errors = []
    for index, policy in enumerate(policies):
        reason = policy.stateful_reason()
        if reason:
            errors.append(
                {
                    "loc": ("tail_sampling", "policies", index, "type"),
                    "msg": f"policy {policy.name!r} cannot run with sampling_strategy: span-ingest: {reason}",
                    "type": "value_error",
                }
            )
    return errors


def _prefixed(exc: ValidationError, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{**error, "loc": prefix + tuple(error["loc"])} for error in exc.errors()]


def _validate_policies(
    raw: list[Any], lines: Mapping[tuple[Any, ...], int], registry: PolicyRegistry
) -> tuple[list[PolicyConfig], list[dict[str, Any]]]:
    policies: list[PolicyConfig] = []
    errors: list[dict[str, Any]] = []
    for index, body in enumerate(raw):
        try:
            policies.append(registry.validate(body))
        except ValidationError as exc:
            errors.extend(_prefixed(exc, ("tail_sampling", "policies", index)))
    first_index: dict[str, int] = {}
    for index, body in enumerate(raw):
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_index:
            first = first_index[name]
            first_line = lines.get(("tail_sampling", "policies", first, "name"))
            where = f"policies[{first}]" + (f" on line {first_line}" if first_line else "")
            errors.append(
                {
                    "loc": ("tail_sampling", "policies", index, "name"),
                    "msg": f"duplicate policy name {name!r}, already used by {where}",
                    "type": "value_error",
                }
            )
        else:
            first_index[name] = index
    return policies, errors


def _validate_exporters(
    raw: dict[str, Any], registry: Mapping[str, ExporterType]
) -> tuple[dict[str, ExporterConfig], list[dict[str, Any]]]:
    exporters: dict[str, ExporterConfig] = {}
    errors: list[dict[str, Any]] = []
    for name, body in raw.items():
        kind = exporter_type(str(name))
        exporter = registry.get(kind)
        if exporter is None:
            errors.append(
                {
                    "loc": ("exporters", name),
                    "msg": f"unknown exporter type {kind!r}; valid types: {', '.join(registry)}",
                    "type": "value_error",
                }
            )
            continue
        try:
            exporters[name] = exporter.config_model.model_validate({} if body is None else body)  # type: ignore[assignment]
        except ValidationError as exc:
            errors.extend(_prefixed(exc, ("exporters", name)))
    return exporters, errors
