"""The console at `/` of the admin endpoint, used as a person uses it: a real headless Chromium
(tests/browser.py) opens it against a daemon under load from the OpenTelemetry SDK, and the test
reads what the page rendered (every policy, live keep rates, the window, the exporter, recent
decisions), looks a trace up by typing its ID and clicking, and takes a screenshot.

With TAIL_SAMPLER_UPDATE_SCREENSHOTS=1 the screenshot also replaces docs/images/console.png,
the one the operations docs show."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import requests

from sampler.tools.loadgen import LoadSettings, run_load
from tests.browser import Browser
from tests.peers import REPO_ROOT, chromium_binary
from tests.support import DaemonThread, config_dict, fast_retry, wait_until

POLICIES = [
    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    {"name": "slow", "type": "latency", "latency": {"threshold_ms": 400}},
    {"name": "one-in-five", "type": "probabilistic", "probabilistic": {"sampling_percentage": 20}},
    {
        "name": "no-health-checks",
        "type": "drop",
        "drop": {
            "drop_sub_policy": [
                {
                    "name": "health",
                    "type": "string_attribute",
                    "string_attribute": {"key": "http.route", "values": ["/healthz"]},
                }
            ]
        },
    },
]
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "images" / "console.png"

# The page's tables, read from the DOM as text.
READ_POLICIES = """[...document.querySelectorAll('#policies tbody tr')].map(
    tr => ({name: tr.dataset.policy, cells: [...tr.cells].map(td => td.textContent)}))"""
READ_RECENT = (
    """[...document.querySelectorAll('#recent tbody tr')].map(tr => [...tr.cells].map(td => td.textContent))"""
)
READ_ANSWER = """(() => {
    const box = document.querySelector('#lookup-result .answer');
    if (!box) return null;
    return {
        decision: box.querySelector('.answer-decision').textContent,
        reason: box.querySelector('.answer-reason').textContent,
        policies: Object.fromEntries([...box.querySelectorAll('.answer-policies tbody tr')].map(
            tr => [tr.dataset.policy, tr.dataset.answer])),
        credited: [...box.querySelectorAll('tr.credited')].map(tr => tr.dataset.policy),
    };
})()"""


def percent(text: str) -> float:
    match = re.match(r"([\d.]+)%", text)
    assert match, f"not a rate: {text!r}"
    return float(match.group(1))


def test_the_console_renders_live_rates_and_looks_traces_up_in_chromium(start_daemon, grpc_sink, tmp_path):
    chromium = chromium_binary()
    daemon = start_daemon(
        config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, POLICIES, decision_wait="1s", num_traces=5000)
    )
    stop = threading.Event()
    load = threading.Thread(
        target=run_load,
        args=(
            LoadSettings(
                endpoint=daemon.grpc_endpoint, rate=25, duration=180, error_ratio=0.1, slow_ratio=0.1, seed=17
            ),
            stop,
        ),
        name="load",
    )
    load.start()
    try:
        # Under load: every keeping policy has kept traces, and traces are still arriving.
        wait_until(
            lambda: all(
                daemon.scrape().value("tail_sampler_traces_kept_by_policy_total", policy=name) > 0
                for name in ("errors", "slow", "one-in-five")
            ),
            timeout=90,
            interval=0.5,
            what="traces kept by errors, slow and one-in-five",
        )
        asyncio.run(use_the_console(chromium, daemon, tmp_path))
        assert load.is_alive(), "the load should still be running while the page is used"
    finally:
        stop.set()
        load.join(60)


async def use_the_console(chromium: str, daemon: DaemonThread, tmp_path: Path) -> None:
    async with Browser.start(chromium, tmp_path) as browser:
        await browser.navigate(daemon.admin_url + "/")
        await browser.wait_for("document.body.dataset.loaded === 'true'", what="the status to render")

        # Every policy is listed, in evaluation order (drop first), and the keeping ones show
        # non-zero keep rates over the last minute (the page refreshes until they do).
        async def rates_shown() -> list[dict[str, Any]] | None:
            rows: list[dict[str, Any]] = await browser.evaluate(READ_POLICIES)
            kept = {row["name"]: percent(row["cells"][2]) for row in rows}
            keeping = ("errors", "slow", "one-in-five")
            return rows if all(kept.get(name, 0) > 0 for name in keeping) else None

        rows = None
        for _ in range(50):  # the page refreshes every 2s; bounded at about 25s
            rows = await rates_shown()
            if rows:
                break
            await asyncio.sleep(0.5)
        assert rows, "the console never showed non-zero keep rates for every keeping policy"
        assert [row["name"] for row in rows] == ["no-health-checks", "errors", "slow", "one-in-five"]
        types = {row["name"]: row["cells"][1] for row in rows}
        assert types == {
            "no-health-checks": "drop",
            "errors": "status_code",
            "slow": "latency",
            "one-in-five": "probabilistic",
        }
        for row in rows:
            assert re.fullmatch(r"[\d.]+% \d+ of \d+", row["cells"][2]), row  # "12.5% 25 of 200"
        totals = await browser.evaluate("document.getElementById('totals').textContent")
        assert re.search(r"[\d.]+% of \d+ traces kept in the last \d+s", totals), totals

        window = await browser.evaluate("document.querySelector('#window tbody').textContent")
        assert "num_traces 5000" in window
        exporters = await browser.evaluate(
            "[...document.querySelectorAll('#exporters tbody tr')].map(tr => tr.cells[0].textContent)"
        )
        assert exporters == ["otlp"]

        # Look up a kept trace from the recent decisions, by typing its ID and clicking.
        recent = await browser.wait_for(
            f"(() => {{ const rows = {READ_RECENT}; return rows.some(r => r[1] === 'kept') ? rows : null; }})()",
            what="a kept trace among the recent decisions",
        )
        kept_row = next(row for row in recent if row[1] == "kept")
        trace_id = kept_row[0]
        answer = requests.get(f"{daemon.admin_url}/api/v1/decisions/{trace_id}", timeout=10).json()

        await browser.type_into("#trace-id", "not a trace id")
        await browser.click("#lookup-button")
        error = await browser.wait_for(
            "document.querySelector('#lookup-result[data-status=\"400\"] .error')?.textContent",
            what="the page to show the malformed ID's error",
        )
        assert "32 hexadecimal digits" in error

        await browser.type_into("#trace-id", trace_id)
        await browser.click("#lookup-button")
        shown = await browser.wait_for(READ_ANSWER, what="the lookup's answer on the page")
        assert shown["decision"] == f"{trace_id}: KEPT"
        assert shown["policies"] == answer["policies"]
        assert shown["credited"] == [answer["credited_policy"]] == [kept_row[3]]
        assert shown["reason"] == answer["reason"]
        assert await browser.evaluate("location.search") == f"?trace_id={trace_id}"

        screenshot = await browser.screenshot(tmp_path / "console.png")
        assert screenshot.startswith(b"\x89PNG\r\n\x1a\n") and len(screenshot) > 20_000
        assert browser.exceptions == [], browser.exceptions
    if os.environ.get("TAIL_SAMPLER_UPDATE_SCREENSHOTS", "") not in ("", "0"):
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "console.png", DOCS_SCREENSHOT)
