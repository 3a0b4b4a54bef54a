"""The reference pages against the code they describe: the configuration reference against the
config models (every key, its default), the policy reference against the policy types, the
commands page against the CLI's own --help."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import yaml

from tests.docs.markdown import REPO, code_spans, page, tables
from tests.docs.schema_keys import NO_DEFAULT, Key, config_keys, policy_settings, seconds

CONFIG_PAGE = "reference/configuration.md"
POLICY_PAGE = "reference/policies.md"
CLI_PAGE = "reference/cli.md"
KEY_TABLE_HEADER = ["key", "default", "meaning", "Collector"]


def documented_keys() -> dict[str, tuple[str, int]]:
    """Each key path the configuration reference documents, with its default cell and line.

    A key table's keys are full paths, or relative to the prefixes named in the line above the
    table when that line starts with "Under" ("Under `exporters.otlp` and `exporters.zipkin`:")."""
    documented: dict[str, tuple[str, int]] = {}
    for table in tables(page(CONFIG_PAGE)):
        if table.header != KEY_TABLE_HEADER:
            continue
        prefixes = code_spans(table.before) if table.before.startswith("Under ") else [""]
        assert prefixes, f"{CONFIG_PAGE}:{table.line}: 'Under' names no key prefix"
        for offset, (key_cell, default_cell, *_rest) in enumerate(table.rows, 1):
            keys = code_spans(key_cell)
            assert len(keys) == 1 and key_cell == f"`{keys[0]}`", f"{CONFIG_PAGE}: one key per row: {key_cell}"
            for prefix in prefixes:
                path = f"{prefix}.{keys[0]}" if prefix else keys[0]
                assert path not in documented, f"{CONFIG_PAGE}: {path} is documented twice"
                documented[path] = (default_cell, table.line + 1 + offset)
    return documented


def test_every_config_key_is_documented_and_every_documented_key_exists():
    accepted = set(config_keys())
    documented = set(documented_keys())
    assert len(accepted) > 100, "the config schema walk found too few keys to be the whole config"
    assert sorted(accepted - documented) == [], f"keys the daemon accepts that {CONFIG_PAGE} does not document"
    assert sorted(documented - accepted) == [], f"keys {CONFIG_PAGE} documents that the daemon does not accept"


def _same_default(key: Key, written: str) -> bool:
    if key.duration:
        model = key.default if isinstance(key.default, (int, float)) else seconds(str(key.default))
        return abs(seconds(written) - model) < 1e-9
    value: Any = yaml.safe_load(written)
    if isinstance(value, bool) or isinstance(key.default, bool):
        return value is key.default
    return bool(value == key.default)


def test_the_documented_defaults_are_the_models_defaults():
    keys = config_keys()
    wrong = []
    for path, (cell, line) in documented_keys().items():
        key = keys.get(path)
        if key is None:
            continue  # reported by the test above
        literal = re.match(r"`([^`]*)`", cell)
        if literal:
            # Models without a default (a default factory) document theirs from the code: nothing to compare.
            if key.default is NO_DEFAULT and not key.required:
                continue
            if key.default is NO_DEFAULT or not _same_default(key, literal[1]):
                wrong.append(f"line {line}: {path}: written {literal[1]!r}, the model's default is {key.default!r}")
        elif cell.startswith("(required)"):
            if not key.required or key.default is not NO_DEFAULT:
                wrong.append(f"line {line}: {path}: written (required), but the model has default {key.default!r}")
        elif cell.startswith("none"):
            if key.default is not None:
                wrong.append(f"line {line}: {path}: written none, the model's default is {key.default!r}")
        else:
            wrong.append(f"line {line}: {path}: the default cell must start with `value`, (required) or none")
    assert wrong == [], f"{CONFIG_PAGE} defaults differ from the config models:\n" + "\n".join(wrong)


def _policy_rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for table in tables(page(POLICY_PAGE)):
        if table.header[:2] != ["type", "keys"]:
            continue
        for type_cell, keys_cell, *_rest in table.rows:
            rows[type_cell.strip("`")] = keys_cell
    return rows


def test_the_policy_reference_lists_every_policy_type_with_all_its_keys():
    settings = policy_settings()
    rows = _policy_rows()
    assert len(settings) >= 19, "the config schema lists too few policy types to be the built-in ones"
    assert sorted(set(settings) - set(rows)) == [], f"policy types missing from {POLICY_PAGE}"
    assert sorted(set(rows) - set(settings)) == [], f"{POLICY_PAGE} lists policy types that do not exist"
    missing = {}
    for kind, keys in settings.items():
        words = set(re.findall(r"[a-z_]+", " ".join(code_spans(rows[kind]))))
        if keys - words:
            missing[kind] = sorted(keys - words)
    assert missing == {}, f"policy keys missing from their row in {POLICY_PAGE}"


def _help(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sampler", *command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_commands_page_documents_every_command_and_option():
    text = page(CLI_PAGE)
    commands = re.search(r"\{([a-z,]+)\}", _help())
    assert commands, "no subcommands in tail-sampler --help"
    missing = []
    for command in commands[1].split(","):
        if f"tail-sampler {command}" not in text:
            missing.append(f"tail-sampler {command}")
        for option in sorted(set(re.findall(r"(--[a-z][a-z-]+)", _help(command))) - {"--help"}):
            if not re.search(rf"{option}\b", text):
                missing.append(f"tail-sampler {command} {option}")
    assert missing == [], f"not in {CLI_PAGE}"
