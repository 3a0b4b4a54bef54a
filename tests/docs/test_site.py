"""The documentation site builds without a warning, offline, and the README stays a landing page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.docs.markdown import README, REPO

# The README's two commands, verbatim: .ci/run calls the second one.
RUN_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[demo]' "
    "&& .venv/bin/tail-sampler run --demo"
)
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test]' && .venv/bin/python -m pytest"
)
README_MAX_LINES = 300
_EXTERNAL_ASSET = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"")


def test_the_site_builds_strictly_and_offline(tmp_path: Path):
    env = {
        **os.environ,
        # Anything the build tried to fetch would fail: no web fonts, no remote assets at build time.
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "NO_PROXY": "",
        # Material's end-of-life notice is printed on every build; it is not a warning about the docs.
        "NO_MKDOCS_2_WARNING": "1",
    }
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # --strict turns every warning (a broken link or anchor, a page missing from the nav) into a failure.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    built = sorted(site.rglob("*.html"))
    assert len(built) > 20, f"only {len(built)} pages built"
    remote = {str(page.relative_to(site)): _EXTERNAL_ASSET.findall(page.read_text()) for page in built}
    assert {page: found for page, found in remote.items() if found} == {}, "pages load assets from the web"
    assert (site / "assets" / "data-flow.svg").exists()


def test_the_readme_is_a_landing_page_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES}"
    assert RUN_COMMAND in lines, "the README lost the run command"
    assert TEST_COMMAND in lines, "the README lost the test command"


def test_the_readme_links_point_at_files_that_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<img [^>]*src=\"([^\"]+)\"", text)
    local = [target for target in targets if not re.match(r"[a-z]+:", target) and not target.startswith("#")]
    assert len(local) >= 10, "the README should link into the docs"
    missing = [target for target in local if not (REPO / target.split("#", 1)[0]).exists()]
    assert missing == [], "README links to files that do not exist"
    bad_anchors = [
        target
        for target in local
        if "#" in target and target.split("#", 1)[1] not in _heading_anchors(REPO / target.split("#", 1)[0])
    ]
    assert bad_anchors == [], "README links to headings that do not exist"


def _heading_anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings, as MkDocs (and GitHub, for these) spell them."""
    anchors = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"#{1,6} (.+)", line)
        if heading:
            words = re.sub(r"[^\w\s-]", "", heading[1].replace("`", "").lower())
            anchors.add(re.sub(r"\s+", "-", words.strip()))
    return anchors
