"""Page loads of the segment explorer (issue 22): each page on a project whose pipelines have run.

    python tests/benchmarks/explorer_pages.py --project PATH [--repeats 3]
    python tests/benchmarks/run_benchmark.py --sizes 10000000 --explorer   # at ~1M customers (after daily)
    python tests/benchmarks/run_benchmark.py --sizes 0 --explorer-demo     # on the 2,000-customer demo

Two measurements, on the shared embedded warehouse as `kedro explorer` uses it (the load average
goes with the figures: on a busy 2-core machine the browser's share grows most):

1. **Server**: every page run through streamlit.testing's AppTest (the script, its queries and the
   frames it builds), once with empty caches (**cold**: the first view after a run changed the
   data) and once more (**warm**), ``--repeats`` rounds, medians. The session is opened first.
2. **Browser**: `kedro explorer` and headless Chromium (tests/browser.py): the app's first load,
   then each page opened from the sidebar twice, until the page's last element (the sidebar's
   "<title> built in") and its charts are drawn: the **first** view of a page (its queries run, its
   widgets' code loads) and the view **again**. Skipped when no Chromium is installed.

Limits (issue 22): 2 s per page on the demo, 3 s at 1M customers; judged on the slowest page's cold
server run and first browser view.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "src" / "customer_segmentation" / "explorer" / "streamlit_app.py"
PAGES = ("overview", "segment", "movements", "customer", "model_health")
#: Charts each page draws on data with two snapshots (the browser waits for them to be drawn).
CHARTS = {"overview": 1, "segment": 2, "movements": 1, "customer": 0, "model_health": 3}
LIMIT_DEMO, LIMIT_1M = 2.0, 3.0


def _settings(project: Path) -> Any:
    import yaml

    from customer_segmentation.warehouse.config import WarehouseSettings

    params = yaml.safe_load((project / "conf" / "base" / "parameters.yml").read_text())["warehouse"]
    return WarehouseSettings.from_config({}, params, project)


def _facts(project: Path) -> dict[str, Any]:
    from customer_segmentation import warehouse

    session = warehouse.get_session()
    customers, top = session.sql(
        "SELECT COUNT(*), MAX_BY(CUSTOMER_ID, MONETARY) FROM PROCESSED_DATA"
    ).collect()[0]
    snapshots = session.sql("SELECT COUNT(DISTINCT SNAPSHOT_DATE) FROM SEGMENT_FLOWS").collect()[0][0]
    return {"customers": int(customers), "customer_id": str(top), "snapshots": int(snapshots)}


def measure_server(project: Path, repeats: int = 3) -> dict[str, Any]:
    """Cold and warm AppTest runs of every page (seconds, medians over ``repeats`` rounds)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from customer_segmentation import warehouse

    warehouse.configure(_settings(project))
    facts = _facts(project)
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.session_state["explorer.customer_id"] = facts["customer_id"]
    started = time.perf_counter()
    at.run()
    opened = time.perf_counter() - started
    runs: dict[str, dict[str, list[float]]] = {p: {"cold": [], "warm": []} for p in PAGES}
    problems: list[str] = []
    for _ in range(repeats):
        st.cache_data.clear()
        for kind in ("cold", "warm"):
            for page in PAGES:
                started = time.perf_counter()
                at.switch_page(f"app_pages/{page}.py").run()
                runs[page][kind].append(time.perf_counter() - started)
                problems += [f"{page}: {e.value}" for e in [*at.exception, *at.error]]
    warehouse.close()
    return {
        **facts,
        "session_open_seconds": opened,
        "pages": {p: {k: statistics.median(v) for k, v in r.items()} for p, r in runs.items()},
        "problems": sorted(set(problems)),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Page -> (sidebar link, page title): the title starts the page's "<title> built in" line.
LINKS = {
    "overview": ("Overview", "Segments"),
    "segment": ("Segment", "Segment"),
    "movements": ("Movements", "Movements"),
    "customer": ("Customer", "Customer"),
    "model_health": ("Model health", "Model health"),
}


def _task_seconds(browser: Any) -> float:
    """Seconds the page's renderer main thread has been busy with tasks (script, layout, paint) so far.

    Wall time of its tasks (Chrome's TaskDuration): on a loaded machine it grows with the load too.
    """
    metrics = browser.call("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))


def measure_browser(project: Path, customer_id: str) -> dict[str, Any]:
    """`kedro explorer` in headless Chromium: the app's first load, then every page as a user opens it.

    The first load is a full navigation (Streamlit's frontend, the websocket, the Overview). Every
    other view is a click in the sidebar, timed until the page's "<title> built in" line and its
    charts are drawn: **first** the first view of each page (its queries run, its widgets' code is
    loaded), **again** the second. The customer page is timed with a lookup (typed id).
    """
    sys.path.insert(0, str(REPO))
    from tests.browser import DevTools, find_chromium

    if find_chromium() is None:
        return {"skipped": "no Chromium (apt-get install chromium, or set CHROMIUM)"}
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SEGMENTATION_EMBEDDED"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    log = Path(tempfile.mkstemp(prefix="kedro-explorer-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kedro", "explorer", "--no-browser", "--port", str(port)],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        while f"Segment explorer ready: {url}" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.perf_counter() - started > 600:
                return {"error": log.read_text(errors="replace")[-3000:]}
            time.sleep(0.1)
        ready = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as profile:
            browser = DevTools(Path(profile), height=1400)
            try:
                done = (
                    "document.body.innerText.includes({marker}) && "
                    "document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}"
                )
                browser.call("Performance.enable")
                views: dict[str, dict[str, float]] = {p: {} for p in PAGES}
                cpu = _task_seconds(browser)
                started = time.perf_counter()
                browser.navigate(url + "/")  # the app's first load: its first page is the Overview
                browser.wait_for(
                    done.format(marker=json.dumps("Segments built in"), charts=CHARTS["overview"]),
                    timeout=600,
                )
                first_load = time.perf_counter() - started
                after = _task_seconds(browser)  # the navigation may have started a new renderer process
                views["overview"] = {"first": first_load, "first_cpu": after - cpu if after >= cpu else after}
                others = [p for p in PAGES if p != "overview"]
                for kind, order in (("first", others), ("again", [*others, "overview"])):
                    for page in order:
                        link, title = LINKS[page]
                        cpu = _task_seconds(browser)
                        started = time.perf_counter()
                        browser.click_button(link)
                        marker = json.dumps(f"{title} built in")
                        if page == "customer":
                            if kind == "first":  # an empty lookup form first: type the id
                                browser.wait_for(done.format(marker=marker, charts=0), timeout=600)
                                browser.type_into("Customer id", customer_id)
                            browser.wait_for_text("Latest orders", timeout=600)
                        browser.wait_for(done.format(marker=marker, charts=CHARTS[page]), timeout=600)
                        views[page][kind] = time.perf_counter() - started
                        views[page][f"{kind}_cpu"] = _task_seconds(browser) - cpu
                        assert "The page could not be built" not in browser.text(), (
                            page,
                            browser.text()[-2000:],
                        )
            finally:
                browser.close()
        return {"ready_seconds": ready, "first_load_seconds": first_load, "pages": views}
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)
        log.unlink(missing_ok=True)


def measure(project: Path, repeats: int = 3, browser: bool = True) -> dict[str, Any]:
    result = measure_server(project, repeats)
    if browser:
        result["browser"] = measure_browser(project, result["customer_id"])
    from customer_segmentation.warehouse import embedded

    embedded.stop_server(project / "data" / "warehouse")
    return result


def slowest(result: dict[str, Any]) -> dict[str, float | None]:
    """The slowest page's cold server run and first browser view (what the limits judge)."""
    browser = result.get("browser", {}).get("pages")
    return {
        "server_cold": max(p["cold"] for p in result["pages"].values()),
        "browser_first": max(p["first"] for p in browser.values()) if browser else None,
    }


def render(result: dict[str, Any], limit: float) -> str:
    browser = result.get("browser", {})
    lines = [
        f"Segment explorer on {result['customers']:,} customers, {result['snapshots']} snapshots "
        f"(session opened in {result['session_open_seconds']:.2f} s"
        + (
            f"; `kedro explorer` ready in {browser['ready_seconds']:.1f} s"
            if "ready_seconds" in browser
            else ""
        )
        + "):",
        "",
        "| page | server cold s | server warm s | browser first view s (renderer busy s) | browser again s (busy s) |",
        "|---|---|---|---|---|",
    ]
    nan = float("nan")
    for page in PAGES:
        server = result["pages"][page]
        view = browser.get("pages", {}).get(page, {})
        lines.append(
            f"| {page} | {server['cold']:.2f} | {server['warm']:.2f} | "
            f"{view.get('first', nan):.2f} ({view.get('first_cpu', nan):.2f}) | "
            f"{view.get('again', nan):.2f} ({view.get('again_cpu', nan):.2f}) |"
        )
    load = os.getloadavg()
    lines.append(
        f"\nLoad average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} ({os.cpu_count()} cores)."
    )
    worst = slowest(result)
    for name, value in worst.items():
        status = "not measured" if value is None else ("PASS" if value <= limit else "MISS")
        shown = "-" if value is None else f"{value:.2f} s"
        lines.append(f"\nslowest page, {name.replace('_', ' ')}: {shown} (limit {limit:.1f} s) {status}")
    if "skipped" in browser or "error" in browser:
        lines.append(f"\nbrowser: {browser.get('skipped') or browser.get('error')}")
    if result["problems"]:
        lines.append("\nPROBLEMS: " + "; ".join(result["problems"]))
    return "\n".join(lines)


def demo_project(workdir: Path) -> Path:
    """The 2,000-customer demo after `kedro run`, a week of simulated days and `daily` (two snapshots)."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import make_project_copy

    project = make_project_copy(workdir / "project_explorer_demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SEGMENTATION_EMBEDDED"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    for args in (
        ["run"],
        ["run", "--pipelines", "simulate_days", "--params=simulate_days.days=7"],
        ["run", "--pipelines", "daily"],  # on the demo clock
    ):
        subprocess.run(
            [sys.executable, "-m", "kedro", *args], cwd=project, env=env, check=True, capture_output=True
        )
    return project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project", type=Path, help="a project whose pipelines have run (default: a fresh demo)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--limit", type=float, default=None, help="seconds per page (default: 2 on the demo)")
    args = parser.parse_args(argv)
    os.environ.pop("SEGMENTATION_EMBEDDED_IN_PROCESS", None)  # the shared server, as `kedro explorer` uses it
    os.environ["KEDRO_DISABLE_TELEMETRY"] = "true"
    with tempfile.TemporaryDirectory() as tmp:
        project = args.project.resolve() if args.project else demo_project(Path(tmp))
        result = measure(project, args.repeats, not args.no_browser)
        limit = args.limit or (LIMIT_DEMO if result["customers"] < 100_000 else LIMIT_1M)
        print(render(result, limit))
        print(json.dumps(result, default=str))
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
