"""The Dagster UI, used as a person would: a real headless Chromium (Debian's) driven by Playwright
against `dagster dev` on loopback. Opens the asset graph, launches a crawl partition, waits for the
run, reads an asset's metadata and plot, and saves screenshots (SEEDCODER_SCREENSHOTS=dir keeps them).

Marked `ui`: it needs Debian's chromium (`.ci/run` installs it) and takes about a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedcoder_assets_tests.defs.test_automation import _one_repo_crawl

pytestmark = pytest.mark.ui
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LOCATION = "seedcoder_assets.definitions"


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ui")
    _one_repo_crawl(small_crawl, home / "landing" / "c1")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "dagster.yaml", dagster_home)
    env = {**os.environ, "SEEDCODER_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "HF_HUB_OFFLINE": "1"}
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "seedcoder"), "register-crawl", "c1"], env=env, check=True, capture_output=True)
    # Its shards ingested (what the new-crawl sensor starts); the user launches the crawl's job below.
    subprocess.run([str(bin_dir / "seedcoder"), "backfill", "--job", "github_shards_job"], env=env, check=True,
                   capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(home / "dagster_dev.log", "w")  # noqa: SIM115 (closed below)
    # dagster dev ignores SIGTERM/SIGINT when its parent ignores SIGINT: restore the default first.
    server = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", LOCATION], env=env, cwd=home,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            log.close()
            raise RuntimeError(f"dagster dev did not start:\n{(home / 'dagster_dev.log').read_text()[-3000:]}")
        time.sleep(1)
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("SEEDCODER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_a_user_materializes_a_crawl_and_reads_its_assets(webserver: str, shots: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.set_default_timeout(60_000)

        # The first-visit newsletter dialog can open at any moment of the first page load (a fresh
        # machine, a fresh profile): whenever it covers the page, skip it, then go on with the action.
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())

        # The asset graph, every group expanded.
        page.goto(f"{webserver}/asset-groups", wait_until="networkidle")
        try:  # the dialog usually opens within a few seconds of the first load: let it, and skip it now
            page.get_by_role("button", name="Skip").click(timeout=8_000)
        except PlaywrightTimeout:
            pass
        for group in ("ingest", "filters", "dedup", "quality", "catalog"):
            expect(page.get_by_text(group, exact=True).first).to_be_visible()
        page.get_by_text("Hide navigation").click()  # room for the graph in the screenshot
        expand = page.locator("text=Expand all groups >> visible=true").first  # in the graph settings menu
        for _ in range(3):  # a dialog opening meanwhile closes the menu: open it again
            page.locator("button").filter(has=page.get_by_role("img", name="settings", exact=True)).last.click()
            try:
                expand.click(timeout=10_000)
                break
            except PlaywrightTimeout:
                continue
        else:
            raise AssertionError("the graph settings menu never showed 'Expand all groups'")
        page.keyboard.press("Escape")
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "asset_graph.png"))
        # With every corpus in it the whole graph is drawn zoomed out, its labels too small to render: each
        # group's own graph shows its assets by name (long names are elided).
        for group, asset in (("ingest", "raw_repo_files"), ("filters", "code_files"), ("quality", "oracle_labels"),
                             ("quality", "quality_files"), ("high_quality", "hq_round_1"), ("web", "web_corpus")):
            page.goto(f"{webserver}/locations/{LOCATION}/asset-groups/{group}", wait_until="networkidle")
            expect(page.get_by_text(asset, exact=True).first).to_be_visible()

        # Launch the crawl's dedup for crawl partition c1 from its job page (its shards are in).
        page.goto(f"{webserver}/locations/{LOCATION}/jobs/github_files_job", wait_until="networkidle")
        page.get_by_role("button", name=re.compile("Materialize all")).first.click()
        # The launch dialog only: the partition list is a popover that stays in the DOM (closed) with the
        # same role, so a bare get_by_role("dialog") matches two elements once the list has been opened.
        dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
        expect(dialog.get_by_text("Partition selection")).to_be_visible()
        dialog.get_by_text("Select a partition or create one").click()
        page.locator("text=c1 >> visible=true").last.click()
        dialog.get_by_text("Launch runs to materialize").click()  # closes the partition list
        expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
        page.screenshot(path=str(shots / "launch_partition.png"))
        dialog.get_by_role("button", name=re.compile("Launch 1 run")).click()
        expect(dialog).to_be_hidden()

        # The run: open it from the runs list and wait for success.
        page.goto(f"{webserver}/runs", wait_until="networkidle")
        page.locator("a[href*='/runs/']").filter(has_text=re.compile("^[0-9a-f]{8}$")).first.click()
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
        expect(page.get_by_text("github_files_job").first).to_be_visible()
        expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=240_000)
        page.screenshot(path=str(shots / "run_success.png"))

        # An asset's page: its metadata, its language chart (a PNG in Markdown metadata).
        page.goto(f"{webserver}/assets/filters/code_files", wait_until="networkidle")
        for key in ("rows_in", "rows_out", "drop_reasons", "lineage_balanced", "languages"):
            expect(page.get_by_text(key, exact=True).first).to_be_visible()
        page.screenshot(path=str(shots / "asset_metadata.png"), full_page=True)
        row = page.locator("tr", has=page.get_by_text("languages", exact=True))
        row.get_by_text("[Show Markdown]").click()
        chart = page.locator("[role=dialog] img[src^='data:image/png']")
        expect(chart).to_be_visible()
        assert chart.evaluate("img => img.naturalWidth") > 300
        page.wait_for_timeout(700)  # the dialog fades in
        page.screenshot(path=str(shots / "asset_plot.png"))
        browser.close()
