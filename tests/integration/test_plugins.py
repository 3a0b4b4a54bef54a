"""A policy type added by an installed package through the `tail_sampler.policies` entry point group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.test_cli import REPO, DaemonProcess, write_config
from tests.support import GrpcSink, config_dict, fast_retry, grpc_export, make_request, make_span

PLUGIN_DIR = REPO / "tests" / "plugins" / "example_plugin"


def plugin_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH", "")]))
    return env


def check(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampler", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )


def plugin_config(tmp_path: Path, settings: dict) -> Path:
    data = config_dict(
        {"file": {"path": str(tmp_path / "out.jsonl")}},
        [{"name": "writes", "type": "http_method", "http_method": settings}],
    )
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_plugin_policy_is_validated_like_a_built_in(tmp_path):
    good = plugin_config(tmp_path, {"methods": ["post", "PUT"]})
    result = check(good, plugin_env())
    assert result.returncode == 0, result.stderr
    assert "writes: http_method(methods=['post', 'PUT'])" in result.stdout

    bad = plugin_config(tmp_path, {"method": ["POST"]})
    result = check(bad, plugin_env())
    assert result.returncode == 2
    assert (
        "tail_sampling.policies[0].http_method.method: unknown key 'method' (did you mean 'methods'?)" in result.stderr
    )


def test_without_the_plugin_the_type_is_unknown(tmp_path):
    result = check(plugin_config(tmp_path, {"methods": ["POST"]}), dict(os.environ))
    assert result.returncode == 2
    assert "unknown policy type 'http_method'" in result.stderr


def test_plugin_policy_decides_in_the_running_daemon(tmp_path):
    sink = GrpcSink()
    try:
        data = config_dict(
            {"otlp": fast_retry(sink.endpoint)},
            [{"name": "writes", "type": "http_method", "http_method": {"methods": ["POST"]}}],
        )
        path, ports = write_config(tmp_path, data)
        daemon = DaemonProcess(path, ports["admin"], env=plugin_env())
        try:
            post = make_span(os.urandom(16), attributes={"http.request.method": "POST"})
            get = make_span(os.urandom(16), attributes={"http.request.method": "GET"})
            grpc_export(f"127.0.0.1:{ports['grpc']}", make_request([post, get]))
            sink.wait_for_spans(1)
            code, output = daemon.terminate()
        finally:
            daemon.kill()
        assert code == 0, output
        assert sink.trace_ids() == {post.trace_id}
    finally:
        sink.close()
