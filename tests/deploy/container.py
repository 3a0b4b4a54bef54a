"""The image's `docker run` lines as the processes they start, where no container engine runs.

A line is read as docker reads it, with the Dockerfile's runtime stage (ENV, WORKDIR, ENTRYPOINT,
CMD, HEALTHCHECK): the same argv and environment, with container paths mapped to directories the
test made (each -v source, a fresh /tmp, the image's /app with its config/). The process runs in a
network namespace of its own, as a container does, where a published port is reached at an
address that is not loopback (192.0.2.2 on the namespace's own lo), as docker's port mapping
reaches the container's interface: a server bound to 127.0.0.1 there is not reachable, one bound
to all interfaces is. Nothing in that namespace is reachable from outside it.

Run as `python -m tests.deploy.container SPEC.json` inside the namespace, this module starts the
process, probes the published ports and the HEALTHCHECK, stops it and prints what it saw as JSON.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTSIDE = "192.0.2.2"  # TEST-NET-1: the container's address as the published ports reach it
READY_DEADLINE = 60.0


@dataclass
class Image:
    """The runtime stage of a Dockerfile: what `docker run` starts from."""

    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]
    copies: list[tuple[str, str]]


def read_image(dockerfile: Path) -> Image:
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(index for index, line in enumerate(lines) if line.startswith("FROM "))
    image = Image(env={}, workdir="/", entrypoint=[], cmd=[], healthcheck=[], copies=[])
    for line in lines[last_from + 1 :]:
        instruction, _, rest = line.partition(" ")
        if instruction == "ENV":
            image.env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
        elif instruction == "WORKDIR":
            image.workdir = rest
        elif instruction == "ENTRYPOINT":
            image.entrypoint = json.loads(rest)
        elif instruction == "CMD":
            image.cmd = json.loads(rest)
        elif instruction == "HEALTHCHECK":
            image.healthcheck = json.loads(rest.split(" CMD ", 1)[1])
        elif instruction == "COPY" and not rest.startswith("--from"):
            source, target = rest.split()
            image.copies.append((source, target))
    return image


@dataclass
class RunLine:
    """One `docker run` command line."""

    env: dict[str, str] = field(default_factory=dict)
    volumes: list[tuple[str, str]] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    published: dict[int, int] = field(default_factory=dict)  # container port -> host port
    image: str = ""
    args: list[str] = field(default_factory=list)


_VALUE_FLAGS = {"-e", "--env", "-v", "--volume", "--tmpfs", "-p", "--publish", "--name", "--user", "-u"}


def parse_run_line(line: str) -> RunLine:
    words = shlex.split(line)
    assert words[:2] == ["docker", "run"], line
    run = RunLine()
    index = 2
    while words[index].startswith("-"):
        flag = words[index]
        if flag not in _VALUE_FLAGS:
            index += 1
            continue
        value = words[index + 1]
        index += 2
        if flag in ("-e", "--env"):
            name, _, setting = value.partition("=")
            run.env[name] = setting
        elif flag in ("-v", "--volume"):
            source, target = value.split(":")[:2]
            run.volumes.append((source, target))
        elif flag == "--tmpfs":
            run.tmpfs.append(value.split(":")[0])
        elif flag in ("-p", "--publish"):
            host, container = value.rsplit(":", 1)
            run.published[int(container)] = int(host.rsplit(":", 1)[-1])
    run.image = words[index]
    run.args = words[index + 1 :]
    return run


def documented_run_lines(page: Path) -> list[str]:
    """Every `docker run` line of the docs' Docker page, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", page.read_text(), re.DOTALL)
    commands = [line for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines()]
    return [command.strip() for command in commands if command.strip().startswith("docker run ")]


def process_spec(image: Image, run: RunLine, repo: Path, root: Path, pwd: Path) -> dict[str, Any]:
    """The process `run` starts from `image`, with container paths mapped under `root`; `pwd` is
    the directory the line's $PWD names."""
    paths: dict[str, Path] = {}
    app = root / "app"
    for source, target in image.copies:
        container = (Path(image.workdir) / target).resolve().as_posix()
        if (repo / source).is_dir():
            paths[container] = app / Path(container).relative_to(image.workdir)
            shutil.copytree(repo / source, paths[container])
    for mount in ["/tmp", *run.tmpfs]:  # the container's own /tmp, or a tmpfs: empty either way
        paths[mount] = root / ("fs" + mount)
        paths[mount].mkdir(parents=True, exist_ok=True)
    for source, target in run.volumes:
        paths[target] = Path(source.replace("$PWD", str(pwd)))
    paths.setdefault(image.workdir, app)
    app.mkdir(exist_ok=True)

    def translate(value: str) -> str:
        for container in sorted(paths, key=len, reverse=True):
            if value == container or value.startswith(container.rstrip("/") + "/"):
                return str(paths[container]) + value[len(container) :]
        return value

    env = {**image.env, **run.env}
    env = {name: translate(value) for name, value in env.items()}
    env.update(PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", HOME=str(root / "home"))
    argv = [translate(word) for word in image.entrypoint + (run.args or image.cmd)]
    health_port = int(re.search(r"127\.0\.0\.1:(\d+)/healthz", " ".join(image.healthcheck)).group(1))
    return {
        "argv": argv,
        "env": env,
        "cwd": str(paths[image.workdir]),
        "published": sorted(run.published),
        "admin_port": health_port,
        "healthcheck": image.healthcheck,
    }


def run_in_own_network(spec: dict[str, Any], repo: Path, spec_path: Path) -> dict[str, Any]:
    """Runs this module's probe on `spec` in a new network namespace; what it saw."""
    spec_path.write_text(json.dumps(spec))
    setup = f'ip link set lo up && ip addr add {OUTSIDE}/32 dev lo && exec "$@"'
    command = ["unshare", "--net", "--", "sh", "-c", setup, "sh", sys.executable, "-m", "tests.deploy.container"]
    done = subprocess.run(
        [*command, str(spec_path)], cwd=repo, capture_output=True, text=True, timeout=READY_DEADLINE + 120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _healthz(host: str, port: int, path: str = "/healthz") -> int | str:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Start the process, wait until it is ready on loopback (or exits), then look at it from
    outside: the published ports, /healthz, the image's HEALTHCHECK; then stop it. Ready, not
    just alive: with workers the supervisor answers /healthz before every worker has bound the
    receivers' ports, as a Kubernetes readiness probe would see."""
    process = subprocess.Popen(
        spec["argv"], env=spec["env"], cwd=spec["cwd"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline and process.poll() is None:
            # Ready on loopback, or on the outside address (an admin endpoint bound to that alone).
            port = spec["admin_port"]
            if 200 in (_healthz("127.0.0.1", port, "/readyz"), _healthz(OUTSIDE, port, "/readyz")):
                break
            time.sleep(0.2)
        seen["running"] = process.poll() is None
        seen["healthz_outside"] = _healthz(OUTSIDE, spec["admin_port"])
        seen["healthz_loopback"] = _healthz("127.0.0.1", spec["admin_port"])
        seen["published_reachable"] = {str(port): _accepts(OUTSIDE, port) for port in spec["published"]}
        check = subprocess.run(spec["healthcheck"], env=spec["env"], capture_output=True, text=True, timeout=30)
        seen["healthcheck_exit"] = check.returncode
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    seen["exit"] = process.returncode
    seen["log"] = output[-4000:]
    return seen


if __name__ == "__main__":
    json.dump(probe(json.loads(Path(sys.argv[1]).read_text())), sys.stdout)
    sys.stdout.flush()
