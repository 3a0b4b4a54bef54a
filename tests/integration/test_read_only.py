"""The daemon as the container image runs it: an unprivileged user (uid 10001, as in the Dockerfile) on
a read-only root filesystem, writing only where its config says. The read-only root is a private
mount namespace (util-linux `unshare` and `setpriv`, as root), the same restriction as
`docker run --read-only`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
import yaml

from tests.certs import CertificateAuthority
from tests.integration.test_cli import free_port
from tests.peers import unavailable
from tests.support import grpc_export, make_request, make_trace, wait_until

REPO = Path(__file__).resolve().parents[2]
IMAGE_USER = "10001"  # the Dockerfile's USER
TOKEN = "ro-test-token-31e7"

# Mount the one writable directory on itself, then make the root read-only: what is left writable is
# that directory (and the kernel's own /proc, /sys, /dev). Exit 97 if the root is still writable.
_SANDBOX = """
set -e
mount --bind "$WRITABLE" "$WRITABLE"
mount -o remount,bind,ro /
if touch "$REPO_DIR/.read-only-probe" 2>/dev/null || touch /tmp/.read-only-probe 2>/dev/null; then exit 97; fi
exec setpriv --reuid "$IMAGE_USER" --regid "$IMAGE_USER" --clear-groups -- "$@"
"""


def test_the_daemon_runs_unprivileged_on_a_read_only_root_filesystem():
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        unavailable("a read-only mount namespace", "needs root and util-linux's unshare and setpriv")
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "mount", "-o", "remount,bind,ro", "/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        unavailable("a read-only mount namespace", f"unshare/mount refused: {probe.stderr.strip()}")
    importable = subprocess.run(
        ["setpriv", "--reuid", IMAGE_USER, "--regid", IMAGE_USER, "--clear-groups", "--"]
        + [sys.executable, "-c", "import sampler.daemon"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if importable.returncode != 0:
        # Not the daemon's fault: this Python environment lives where uid 10001 cannot read it.
        unavailable(
            f"a Python environment readable by uid {IMAGE_USER}",
            f"{sys.prefix} (or its base {sys.base_prefix}) is not usable by that user; run the suite from a "
            f"virtual environment outside a private home directory, as the README's test command does:\n"
            + importable.stderr.strip()[-500:],
        )
    writable = Path(tempfile.mkdtemp(prefix="tail-sampler-ro-"))
    try:
        writable.chmod(0o777)
        ca = CertificateAuthority(writable / "pki", "ro-ca")
        server = ca.issue("ro-server", server=True)
        (writable / "token").write_text(TOKEN + "\n")
        for path in writable.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's user
        ports = {"grpc": free_port(), "http": free_port(), "admin": free_port()}
        output = writable / "kept.jsonl"
        config = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{ports['grpc']}"},
                        "http": {
                            "endpoint": f"127.0.0.1:{ports['http']}",
                            "tls": {"cert_file": str(server.cert_file), "key_file": str(server.key_file)},
                            "auth": {"bearer_token_file": str(writable / "token")},
                        },
                    }
                }
            },
            "tail_sampling": {"decision_wait": "200ms", "policies": [{"name": "all", "type": "always_sample"}]},
            "batch": {"timeout": "50ms"},
            # The image's way: the output path comes from TAIL_SAMPLER_OUTPUT.
            "exporters": {"file": {"path": "${env:TAIL_SAMPLER_OUTPUT}"}},
            "admin": {"endpoint": f"127.0.0.1:{ports['admin']}"},
        }
        config_file = writable / "sampler.yaml"
        config_file.write_text(yaml.safe_dump(config))
        config_file.chmod(0o644)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/nonexistent",
            "PYTHONUNBUFFERED": "1",
            "TAIL_SAMPLER_OUTPUT": str(output),
            "WRITABLE": str(writable),
            "REPO_DIR": str(REPO),
            "IMAGE_USER": IMAGE_USER,
        }
        command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _SANDBOX, "sandbox"]
        command += [sys.executable, "-m", "sampler", "run", "--config", str(config_file)]
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    if process.returncode == 97:
                        unavailable("a read-only mount namespace", "the root filesystem stayed writable")
                    raise AssertionError(f"daemon exited {process.returncode}:\n{process.stdout.read()}")
                try:
                    return requests.get(f"http://127.0.0.1:{ports['admin']}/readyz", timeout=1).status_code == 200
                except requests.ConnectionError:
                    return False

            wait_until(ready, timeout=30, what="the daemon's /readyz")
            grpc_trace, spans = make_trace(spans=3)
            grpc_export(f"127.0.0.1:{ports['grpc']}", make_request(spans))
            http_trace, spans = make_trace(spans=2)
            reply = requests.post(
                f"https://127.0.0.1:{ports['http']}/v1/traces",
                data=make_request(spans).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"},
                verify=str(ca.cert_file),
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
            wait_until(
                lambda: (
                    output.exists() and all(trace.hex() in output.read_text() for trace in (grpc_trace, http_trace))
                ),
                timeout=15,
                what="both traces in the output file",
            )
            process.send_signal(signal.SIGTERM)
            log, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
        assert process.returncode == 0, log
        assert output.stat().st_uid == int(IMAGE_USER)
        assert "Read-only file system" not in log and "Permission denied" not in log, log
    finally:
        shutil.rmtree(writable, ignore_errors=True)
