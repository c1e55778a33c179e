"""The segment explorer in a real headless Chromium, served by ``kedro explorer`` as users start it.

One explorer server and one browser for the module, on a copy of the two-snapshot demo. The app
counts as ready when ``kedro explorer`` says so (after Streamlit's script health check, a real run
of the first page) and the page shows the segments. The browser opens every page, clicks through
to a segment, downloads its members as CSV (checked against the warehouse), looks a customer up,
and sees the snapshot of a `kedro run` made while the app is open. The Overview screenshot is the
README's picture (``python tools/render_readme_images.py --explorer`` copies it to docs/images/).
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import DevTools, requires_chromium, wait_for_file
from tests.conftest import stop_server_of
from tests.explorer.conftest import SIMULATED_DAYS, copy_project, point_warehouse_at, rows

pytest.importorskip("streamlit", reason="the explorer extra: pip install -e '.[explorer]'")
pytest.importorskip("websockets.sync.client")
pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow, requires_chromium]

#: Where the Overview screenshot is also copied (the README picture), when set.
README_IMAGES_DIR = os.environ.get("README_IMAGES_DIR")
START_TIMEOUT = 180
STOP_TIMEOUT = 30


def _free_port() -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 49000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-49000")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SEGMENT_EXPLORER_"))}
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    return env


def _kedro(project: Path, *args: str, timeout: float = 600) -> str:
    """A `kedro ...` command in the project, as a user types it; its output (fails with it)."""
    result = subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout + result.stderr


class Explorer:
    """`kedro explorer --no-browser --port N` in its own process group."""

    def __init__(self, project: Path, log: Path) -> None:
        self.project, self.log, self.port = project, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stop_seconds: float | None = None
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kedro", "explorer", "--no-browser", "--port", str(self.port)],
                cwd=project,
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while f"Segment explorer ready: {self.url}" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"kedro explorer did not become ready:\n{self.output()[-5000:]}")
            time.sleep(0.25)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.stop_seconds is not None:
            return
        started = time.monotonic()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=STOP_TIMEOUT)
            self.stop_seconds = time.monotonic() - started
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.stop_seconds = float("inf")
        except ProcessLookupError:
            self.stop_seconds = time.monotonic() - started


@pytest.fixture(scope="module")
def project(two_snapshots: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the two-snapshot demo: the test runs `kedro run` on it while the app is open."""
    from customer_segmentation import warehouse

    copy = copy_project(two_snapshots, tmp_path_factory.mktemp("explorer-browser") / "project")
    yield copy
    warehouse.close()
    stop_server_of(copy)


@pytest.fixture(scope="module")
def explorer(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    server = Explorer(project, tmp_path_factory.mktemp("explorer-log") / "kedro-explorer.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(explorer: Explorer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    tab = DevTools(tmp_path_factory.mktemp("chromium") / "profile", height=1200)
    tab.call("Page.enable")
    try:
        yield tab
    finally:
        tab.close()


def _page_ok(browser: DevTools) -> str:
    text = browser.text()
    assert "The page could not be built" not in text and "Traceback" not in text, text[-2000:]
    return text


def test_overview_shows_every_segment(
    project: Path, explorer: Explorer, browser: DevTools, tmp_path: Path
) -> None:
    assert f"Starting the segment explorer for {project}" in explorer.output()
    point_warehouse_at(project)
    profiles = rows("SELECT SEGMENT_LABEL, CUSTOMERS, SUGGESTED_ACTION FROM SEGMENT_PROFILES")
    browser.navigate(explorer.url)
    labels = [r[0] for r in profiles]
    text = browser.wait_for_text("Suggested action", *labels, timeout=90)
    _page_ok(browser)
    for _, customers, action in profiles:
        assert f"{int(customers):,} customers" in text and action in text
    total = sum(int(r[1]) for r in profiles)
    assert f"{total:,} customers in {len(profiles)} segments" in text
    browser.wait_for("document.readyState === 'complete'")
    time.sleep(1.0)  # let the cards' layout settle
    shot = tmp_path / "explorer-overview.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 40_000
    if README_IMAGES_DIR:
        Path(README_IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(README_IMAGES_DIR) / "explorer-overview.png")


def test_click_through_to_a_segment_and_download_its_members(
    project: Path, explorer: Explorer, browser: DevTools, tmp_path: Path
) -> None:
    point_warehouse_at(project)
    label, segment_id, customers = rows(
        "SELECT SEGMENT_LABEL, SEGMENT_ID, CUSTOMERS FROM SEGMENT_PROFILES ORDER BY REVENUE_SHARE DESC LIMIT 1"
    )[0]
    browser.navigate(explorer.url)
    browser.wait_for_text(label, "Suggested action", timeout=90)
    browser.click_button(f"Open {label}")
    text = browser.wait_for_text(
        "What sets it apart",
        "Size and revenue over snapshots",
        f"{int(customers):,} of {int(customers):,} members match",
    )
    _page_ok(browser)
    assert f"{label}: " in text  # the segment's description
    location = browser.js("location.pathname + location.search")
    assert location.endswith(f"/segment?segment={segment_id}"), location  # a link to share
    downloads = tmp_path / "downloads"
    browser.allow_downloads(downloads)
    browser.click_button(f"Download CSV ({int(customers):,} rows)")
    downloaded = wait_for_file(downloads, f"segment_{segment_id}_*.csv")
    with downloaded.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    expected = {
        r[0]: r[1:]
        for r in rows(
            "SELECT CUSTOMER_ID, RFM_SEGMENT, MONETARY, FREQUENCY, SEGMENT_LABEL FROM PROCESSED_DATA WHERE SEGMENT_ID = ?",
            [segment_id],
        )
    }
    assert len(table) == len(expected) == int(customers)
    assert {r["CUSTOMER_ID"] for r in table} == set(expected)
    for row in table:
        rfm, monetary, frequency, segment_label = expected[row["CUSTOMER_ID"]]
        assert row["RFM_SEGMENT"] == rfm and row["SEGMENT_LABEL"] == segment_label == label
        assert float(row["MONETARY"]) == pytest.approx(float(monetary), abs=0.005)
        assert int(float(row["FREQUENCY"])) == int(frequency) and int(row["SEGMENT_ID"]) == int(segment_id)
    # sorted as the table is: by CLV once customer value exists (it does after `kedro run`), else net spend
    assert "CLV" in table[0] and "P_ALIVE" in table[0]
    values = [float(r["CLV"]) for r in table]
    assert values == sorted(values, reverse=True)


def test_every_page_and_a_customer(project: Path, explorer: Explorer, browser: DevTools) -> None:
    point_warehouse_at(project)
    latest, changed = rows(
        "SELECT SNAPSHOT_DATE, COUNT(*) FROM SEGMENT_CHANGES GROUP BY 1 ORDER BY 1 DESC LIMIT 1"
    )[0]
    customer, label = rows(
        "SELECT CUSTOMER_ID, SEGMENT_LABEL FROM PROCESSED_DATA ORDER BY MONETARY DESC LIMIT 1"
    )[0]
    browser.navigate(explorer.url)
    browser.wait_for_text("Suggested action", timeout=90)
    pages = {
        "Movements": (
            "Activation feed (SEGMENT_CHANGES)",
            f"{changed:,} changes published at {latest}",
            "Stayed in their segment",
        ),
        "Model health": ("Model versions", "How k was chosen", "Faithfulness per segment", "Drift over runs"),
        "Customer": ("Type a customer id",),
        "Segment": ("What sets it apart", "Where its members came from and went", "Members"),
    }
    for link, needles in pages.items():
        browser.click_button(link)
        browser.wait_for_text(*needles)
        _page_ok(browser)
        if link != "Customer":  # every other page draws plotly charts
            browser.wait_for("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
    browser.click_button("Customer")
    browser.wait_for_text("Type a customer id")
    browser.type_into("Customer id", customer)
    text = browser.wait_for_text(f"Customer {customer}", "Segment history", "Latest orders")
    assert label in text
    browser.type_into("Customer id", "'; DROP TABLE PROCESSED_DATA; --")
    text = browser.wait_for_text("No customer '; DROP TABLE PROCESSED_DATA; --")
    assert rows("SELECT COUNT(*) FROM PROCESSED_DATA")[0][0] > 0


def test_a_run_while_the_app_is_open_shows_its_new_snapshot(
    project: Path, explorer: Explorer, browser: DevTools
) -> None:
    point_warehouse_at(project)
    before = rows("SELECT MAX(SNAPSHOT_DATE), COUNT(DISTINCT SNAPSHOT_DATE) FROM SEGMENT_HISTORY")[0]
    browser.navigate(explorer.url)
    browser.wait_for_text(f"Snapshot {before[0]}", timeout=90)
    _kedro(project, "run", "--pipelines", "simulate_days", f"--params=simulate_days.days={SIMULATED_DAYS}")
    _kedro(project, "run", "--pipelines", "daily")
    after = rows("SELECT MAX(SNAPSHOT_DATE), COUNT(DISTINCT SNAPSHOT_DATE) FROM SEGMENT_HISTORY")[0]
    assert after[0] > before[0] and after[1] == before[1] + 1
    browser.navigate(explorer.url)  # a new page view, no restart: the caches follow the data version
    text = browser.wait_for_text(
        f"Snapshot {after[0]}", f"Latest snapshot: {after[0]} ({after[1]} in the history)", timeout=60
    )
    assert f"Snapshot {before[0]}" not in text
    _page_ok(browser)


def test_the_explorer_stops_promptly_and_frees_its_port(explorer: Explorer) -> None:
    from customer_segmentation.explorer_launcher import port_in_use

    explorer.stop()
    assert explorer.stop_seconds is not None and explorer.stop_seconds < STOP_TIMEOUT, explorer.output()[
        -3000:
    ]
    assert "Traceback" not in explorer.output()
    assert not port_in_use("127.0.0.1", explorer.port)
