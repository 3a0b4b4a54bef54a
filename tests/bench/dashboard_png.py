"""The picture of the Grafana dashboard in the docs (docs/assets/dashboard.png), from real data.

Run:  python tests/bench/dashboard_png.py                     (about three minutes)
      python tests/bench/dashboard_png.py --out /tmp/dashboard.png --phase-seconds 20

Needs the `dashboard` extra (matplotlib: pip install -c constraints.txt -e '.[test,dashboard]')
and Prometheus (Debian's `prometheus` package, as tests/integration/test_monitoring.py uses).

Grafana itself is not at hand here, so this draws the dashboard's main panels with matplotlib,
laid out as in deploy/grafana/dashboard.json, from the panels' own PromQL queries evaluated by a
real Prometheus that scraped a real daemon every second while `tail-sampler loadgen` sent it
checkout traces: a steady phase, a surge (the window's memory nears memory_limit_mib, the oldest
traces are decided early), a backend outage (the sink stops: the persistent queue fills) and the
recovery (the queue drains). Nothing in the picture is drawn from anything but those queries.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.test_monitoring import DASHBOARD, PrometheusServer  # noqa: E402
from tests.support import GrpcSink, wait_until  # noqa: E402

STEP_SECONDS = 2
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__range": "{range}s", "$instance": ".*"}
STATS = ["Ready", "Spans in", "Spans out", "Traces kept", "Kept spans dropped"]
# The main panels, two per line as on the dashboard (rows: traffic, decisions, window, exporters).
PANELS = [
    "Spans in and out",
    "Traces decided",
    "Keep rate per policy",
    "Decision latency",
    "Window size",
    "Window memory against its limit",
    "Memory",
    "Early decisions and oversized traces",
    "Persistent queue fill",
    "Exporter requests",
]
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#b877d9", "#f2495c", "#8ab8ff", "#96d98d"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, ports: dict[str, int]) -> Path:
    path = directory / "sampler.yaml"
    path.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports["grpc"]}"}}
tail_sampling:
  decision_wait: 10s
  num_traces: 20000
  memory_limit_mib: 2
  policies:
    - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}
    - {{name: slow, type: latency, latency: {{threshold_ms: 500}}}}
    - {{name: baseline, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
exporters:
  otlp:
    endpoint: "127.0.0.1:{ports["sink"]}"
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 1s, max_interval: 3s, max_elapsed_time: 0s}}
    sending_queue:
      storage: {{directory: "{directory / "queue"}", max_size_mib: 4, fsync: never}}
admin: {{endpoint: "127.0.0.1:{ports["admin"]}"}}
logging: {{level: warning}}
"""
    )
    return path


def loadgen(port: int, rate: float, seconds: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sampler", "loadgen", "--endpoint", f"127.0.0.1:{port}"]
    command += ["--rate", str(rate), "--duration", str(seconds), "--error-ratio", "0.05", "--slow-ratio", "0.05"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)


def run_scenario(
    prometheus_binary: str, directory: Path, phase_seconds: float
) -> tuple[PrometheusServer, float, float]:
    """Traffic through a daemon scraped by Prometheus; returns the server and the time range."""
    sink = GrpcSink()
    ports = {"grpc": free_port(), "admin": free_port(), "sink": sink.port}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sampler", "run", "--config", str(write_config(directory, ports))], cwd=REPO
    )
    prometheus = PrometheusServer(prometheus_binary, directory, [f"127.0.0.1:{ports['admin']}"])
    try:
        wait_until(lambda: prometheus.scalar("up") == 1, timeout=60, interval=0.5, what="the daemon scraped")
        started = time.time()
        for rate, outage in ((40, False), (120, False), (40, True), (40, False)):
            print(f"{time.time() - started:5.0f}s: {rate} traces/s{', backend down' if outage else ''}", flush=True)
            if outage:
                sink.close()
            load = loadgen(ports["grpc"], rate, phase_seconds)
            load.wait(phase_seconds + 60)
            if outage:
                sink = GrpcSink(port=ports["sink"])
        time.sleep(15)  # the last decisions, and the queue drained
        return prometheus, started, time.time()
    except BaseException:
        prometheus.stop()
        raise
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        sink.close()


def dashboard_panels() -> dict[str, dict[str, Any]]:
    panels: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for panel in items:
            panels[panel["title"]] = panel
            walk(panel.get("panels", []))

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])
    return panels


def with_variables(expression: str, range_seconds: float) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value.format(range=int(range_seconds)))
    return expression


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda match: labels.get(match[1], ""), template) or "value"


def query_range(prometheus: PrometheusServer, expression: str, start: float, end: float) -> list[dict[str, Any]]:
    data = prometheus.api("query_range", query=expression, start=str(start), end=str(end), step=str(STEP_SECONDS))
    return list(data["result"])


def scale(unit: str) -> tuple[float, str]:
    return {
        "bytes": (1 / 2**20, "MiB"),
        "percentunit": (100, "%"),
        "ops": (1, "/s"),
        "s": (1, "s"),
    }.get(unit, (1, ""))


def render(prometheus: PrometheusServer, start: float, end: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard_panels()
    plt.style.use("dark_background")
    rows = 1 + (len(PANELS) + 1) // 2
    figure = plt.figure(figsize=(16, 3.1 * rows), facecolor="#111217")
    grid = figure.add_gridspec(
        rows, 10, height_ratios=[0.45] + [1] * (rows - 1), hspace=0.55, wspace=0.5, top=0.95, bottom=0.03
    )
    figure.suptitle(
        "tail-sampler dashboard (deploy/grafana/dashboard.json): steady load, surge, backend outage, recovery",
        color="#d8d9da",
        fontsize=13,
        y=0.995,
    )
    for index, title in enumerate(STATS):
        axes = figure.add_subplot(grid[0, index * 2 : index * 2 + 2])
        panel = panels[title]
        expression = with_variables(panel["targets"][0]["expr"], end - start)
        result = prometheus.api("query", query=expression, time=str(end - 20))["result"]
        value = float(result[0]["value"][1]) if result else 0.0
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        factor, suffix = scale(unit)
        text = f"{value * factor:.3g}{suffix}" if title != "Ready" else ("ready" if value == 1 else "not ready")
        axes.set_facecolor("#181b1f")
        axes.text(0.5, 0.42, text, ha="center", va="center", fontsize=20, color="#73bf69", transform=axes.transAxes)
        axes.set_title(title, color="#d8d9da", fontsize=10, loc="left")
        axes.set_xticks([])
        axes.set_yticks([])
    for index, title in enumerate(PANELS):
        row, column = 1 + index // 2, index % 2
        axes = figure.add_subplot(grid[row, column * 5 : column * 5 + 5])
        panel = panels[title]
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        factor, suffix = scale(defaults.get("unit", ""))
        color = 0
        for target in panel["targets"]:
            for series in query_range(prometheus, with_variables(target["expr"], end - start), start, end):
                if not any(float(v) for _, v in series["values"]):
                    continue  # as Grafana's "hide series with only zeros", to keep the legends short
                times = [float(t) - start for t, _ in series["values"]]
                values = [float(v) * factor for _, v in series["values"]]
                label = legend(target.get("legendFormat", ""), series["metric"])
                axes.plot(times, values, color=COLORS[color % len(COLORS)], linewidth=1.4, label=label)
                color += 1
        threshold = [step["value"] for step in defaults.get("thresholds", {}).get("steps", []) if step["value"]]
        for value in threshold:
            axes.axhline(value * factor, color="#f2495c", linestyle="--", linewidth=1)
        axes.set_facecolor("#181b1f")
        axes.set_title(title, color="#d8d9da", fontsize=10, loc="left")
        axes.set_ylabel(suffix, color="#8e8e8e", fontsize=8)
        axes.tick_params(colors="#8e8e8e", labelsize=8)
        axes.grid(color="#2c3235", linewidth=0.6)
        axes.set_xlim(0, end - start)
        axes.set_ylim(bottom=0)
        if color:
            axes.legend(fontsize=7, loc="upper left", framealpha=0.4, ncol=2)
        else:
            axes.text(0.5, 0.5, "none", ha="center", va="center", color="#8e8e8e", transform=axes.transAxes)
        if row == rows - 1:
            axes.set_xlabel("seconds", color="#8e8e8e", fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, facecolor=figure.get_facecolor(), bbox_inches="tight")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "assets" / "dashboard.png")
    parser.add_argument("--phase-seconds", type=float, default=40.0, help="length of each of the four phases")
    parser.add_argument("--prometheus", default="prometheus", help="the Prometheus server binary")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-png-") as directory:
        prometheus, start, end = run_scenario(args.prometheus, Path(directory), args.phase_seconds)
        try:
            render(prometheus, start, end, args.out)
        finally:
            prometheus.stop()


if __name__ == "__main__":
    main()
