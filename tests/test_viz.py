"""kedro-viz on a project copy where the full pipeline has run: API, previews, browser, static build.

The viz server is started as users do (`kedro viz run`, in its own process group) on the copy's
embedded warehouse, deliberately without `--include-hooks`: kedro-viz then replaces the project's
hook manager, so our `after_context_created` hook never runs, and the Snowpark previews work only
because the dataset configures the warehouse from the project's conf on its own. The previews go
through the copy's shared embedded server, which keeps running when kedro-viz stops (checked by
the last tests; the session fixture in conftest stops it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from customer_segmentation.warehouse import embedded
from tests.browser import DevTools, chromium_flags, requires_chromium

pytestmark = pytest.mark.integration

#: Where the browser test also copies its pictures (the README's docs/images/kedro-viz*.png), when
#: set: `python tools/render_readme_images.py --kedro-viz` sets it. Unset, the tests write only to tmp_path.
README_IMAGES_DIR = os.environ.get("README_IMAGES_DIR")
PIPELINES = {
    "ingestion",
    "rfm_features",
    "training",
    "customer_value",
    "reporting",
    "prediction",
    "store_results",
    "monitoring",
}
LAYERS = ["raw", "intermediate", "feature", "model_input", "models", "model_output", "reporting"]
CHARTS = {
    "elbow_chart",
    "silhouette_chart",
    "segment_profiles_chart",
    "rfm_scatter_chart",
    "segment_sizes_chart",
    "rfm_segment_treemap",
    "value_tracking_chart",
    "value_by_frequency_chart",
}
SNOWPARK_PREVIEWS = {
    "raw_data",
    "transformed_data",
    "customer_features",
    "scored_customers",
    "processed_data",
    "customer_value",
}
START_TIMEOUT = 180
STOP_TIMEOUT = 30


def _free_port() -> int:
    """A free port below 49152: `kedro viz run` refuses ports in the ephemeral range."""
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    return env


def _kedro(*args: str) -> list[str]:
    return [sys.executable, "-m", "kedro", *args]


@dataclass
class VizServer:
    project: Path
    port: int
    log: Path
    process: subprocess.Popen | None = None
    stop_seconds: float | None = None
    _nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                _kedro("viz", "run", "--no-browser", "--host", "127.0.0.1", "--port", str(self.port)),
                cwd=self.project,
                env=_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"kedro viz exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/api/main", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"kedro viz did not answer /api/main within {START_TIMEOUT} s:\n{self.log_text()}")

    def stop(self) -> None:
        """SIGTERM to the whole process group (the CLI and its spawned server), then SIGKILL."""
        if self.process is None or self.stop_seconds is not None:
            return
        started = time.monotonic()
        pgid = self.process.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = started + STOP_TIMEOUT
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.stop_seconds = float("inf")
        else:
            self.process.wait(timeout=10)
            self.stop_seconds = time.monotonic() - started

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=120)
        response.raise_for_status()
        return response.json()

    def node_ids(self) -> dict[str, str]:
        """Dataset / task name -> kedro-viz id (from /api/main)."""
        return {n["name"]: n["id"] for n in self.get("/api/main")["nodes"]}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies still count for killpg; ask ps whether any live member remains
    out = subprocess.run(
        ["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True
    ).stdout.split()
    return any(not s.startswith("Z") for s in out)


@pytest.fixture(scope="module")
def viz(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VizServer]:
    server = VizServer(trained_project, _free_port(), tmp_path_factory.mktemp("viz") / "kedro-viz.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def main(viz: VizServer) -> dict[str, Any]:
    return viz.get("/api/main")


def _registered_node_names() -> dict[str, set[str]]:
    from importlib import import_module

    return {
        name: {
            n.name for n in import_module(f"customer_segmentation.pipelines.{name}").create_pipeline().nodes
        }
        for name in PIPELINES | {"model_refresh"}
    }


def test_lists_the_pipelines_and_their_nodes(viz: VizServer, main: dict[str, Any]) -> None:
    # (on-demand pipelines such as load_events may be listed too)
    assert {p["id"] for p in main["pipelines"]} >= PIPELINES | {"daily", "__default__"}
    assert main["selected_pipeline"] == "__default__"
    registered = _registered_node_names()
    tasks = {n["name"] for n in main["nodes"] if n["type"] == "task"}
    assert tasks == set().union(*(registered[p] for p in PIPELINES))  # the default pipeline is the seven
    for name, node_names in registered.items():
        pipeline = viz.get(f"/api/pipelines/{name}")
        assert {n["name"] for n in pipeline["nodes"] if n["type"] == "task"} == node_names, name
    daily = viz.get("/api/pipelines/daily")
    daily_tasks = {n["name"] for n in daily["nodes"] if n["type"] == "task"}
    assert daily_tasks == set().union(
        *(registered[p] for p in PIPELINES - {"training", "reporting"} | {"model_refresh"})
    )


def test_nodes_have_readable_names_and_datasets_have_layers(main: dict[str, Any]) -> None:
    # every node is named explicitly (no generated "func([inputs]) -> [outputs]" names)
    for node in main["nodes"]:
        assert node["name"].replace("params:", "").replace("_", "").isalnum(), node["name"]
    # the layers are sorted (no cycle: kedro-viz returns [] and hides the bands otherwise)
    assert main["layers"] == LAYERS
    catalog_datasets = [
        n
        for n in main["nodes"]
        if n["type"] == "data" and not n["dataset_type"].startswith("io.memory_dataset")
    ]
    assert len(catalog_datasets) >= 20
    assert {n["name"]: n.get("layer") for n in catalog_datasets if not n.get("layer")} == {}
    layers = {n["name"]: n["layer"] for n in catalog_datasets}
    assert (layers["raw_data"], layers["transformed_data"], layers["customer_features"]) == (
        "raw",
        "intermediate",
        "feature",
    )
    assert (layers["segmentation_model"], layers["processed_data"], layers["elbow_chart"]) == (
        "models",
        "model_output",
        "reporting",
    )


def _path(main: dict[str, Any], source: str, target: str) -> list[dict[str, Any]]:
    """Shortest path source -> target in the flowchart (by name), as the list of nodes."""
    by_id = {n["id"]: n for n in main["nodes"]}
    ids = {n["name"]: n["id"] for n in main["nodes"]}
    children: dict[str, list[str]] = {}
    for edge in main["edges"]:
        children.setdefault(edge["source"], []).append(edge["target"])
    previous: dict[str, str | None] = {ids[source]: None}
    queue = deque([ids[source]])
    while queue:
        current = queue.popleft()
        if current == ids[target]:
            path = []
            node_id: str | None = current
            while node_id is not None:
                path.append(by_id[node_id])
                node_id = previous[node_id]
            return path[::-1]
        for child in children.get(current, []):
            if child not in previous:
                previous[child] = current
                queue.append(child)
    return []


def test_lineage_raw_to_transformed_to_processed(main: dict[str, Any]) -> None:
    first = _path(main, "raw_data", "transformed_data")
    second = _path(main, "transformed_data", "processed_data")
    assert first and second, "no lineage path raw_data -> transformed_data -> processed_data"
    path = first + second[1:]
    names = [n["name"] for n in path]
    assert names[0] == "raw_data" and names[-1] == "processed_data"
    # datasets and nodes alternate: every dataset is linked to the next through a node
    assert [n["type"] for n in path] == ["data" if i % 2 == 0 else "task" for i in range(len(path))]
    for step in (
        "compute_customer_features",
        "customer_features",
        "score_customers_in_warehouse",
        "scored_customers",
        "write_processed_data",
    ):
        assert step in names, (step, names)
    assert not _path(main, "processed_data", "raw_data")


def test_chart_datasets_have_plotly_previews(viz: VizServer) -> None:
    ids = viz.node_ids()
    for chart in sorted(CHARTS):
        meta = viz.get(f"/api/nodes/{ids[chart]}")
        assert meta["type"] == "plotly.json_dataset.JSONDataset"
        assert meta.get("preview_type") == "PlotlyPreview", (chart, meta.keys())
        assert meta["preview"]["data"] and "layout" in meta["preview"], chart


def test_snowpark_tables_have_table_previews(viz: VizServer) -> None:
    ids = viz.node_ids()
    for table in sorted(SNOWPARK_PREVIEWS):
        meta = viz.get(f"/api/nodes/{ids[table]}")
        # (RAW_DATA is a RawEventsDataset, a SnowparkTableDataset that also takes files)
        assert meta["type"] in {
            "datasets.snowpark.SnowparkTableDataset",
            "datasets.raw_events.RawEventsDataset",
        }
        assert meta.get("preview_type") == "TablePreview", (table, meta, viz.log_text())
        preview = meta.get("preview")
        assert preview, f"no preview for {table}: {viz.log_text()}"
        assert 1 <= len(preview["data"]) <= 5  # preview_args: {nrows: 5}
        assert len(preview["columns"]) == len(preview["data"][0])
    processed = viz.get(f"/api/nodes/{ids['processed_data']}")["preview"]
    assert {"CUSTOMER_ID", "SEGMENT_LABEL", "RFM_SEGMENT"} <= set(processed["columns"])
    assert "could not be previewed" not in viz.log_text()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.browser
@requires_chromium
def test_browser_renders_the_flowchart(viz: VizServer, tmp_path: Path) -> None:
    """Plain `chromium --headless --screenshot` of the app: the page renders (not blank)."""
    shot = tmp_path / "kedro-viz.png"
    cmd = [
        *chromium_flags(tmp_path / "profile"),
        f"--screenshot={shot}",
        "--virtual-time-budget=15000",
        f"{viz.url}/",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, start_new_session=True)
    assert shot.exists(), result.stderr[-3000:]
    data = shot.read_bytes()
    assert _png_size(data) == (1600, 1000)
    # a blank page compresses to a few kB; the rendered flowchart and side panel are far larger
    assert len(data) > 40_000, len(data)


@pytest.mark.browser
@requires_chromium
def test_browser_shows_table_and_chart_previews(viz: VizServer, tmp_path: Path) -> None:
    """Drive the app: the flowchart, a Snowpark table preview and a plotly preview render.

    Its screenshots are the README pictures (docs/images/kedro-viz*.png, copied there only when
    README_IMAGES_DIR is set): new-feature hints off and the offline "update available" banner
    dismissed (kedro-viz cannot reach PyPI here).
    """
    pytest.importorskip("websockets.sync.client")
    ids = viz.node_ids()
    browser = DevTools(tmp_path / "profile")
    try:
        # kedro-viz keeps its UI settings in localStorage["KedroViz"]: set ours before the app reads them
        settings = (
            "localStorage.setItem('KedroViz', JSON.stringify(Object.assign("
            "JSON.parse(localStorage.getItem('KedroViz') || '{}'), {showFeatureHints: false, "
            "visible: {code: false, graph: true, miniMap: false, sidebar: true, slicing: true, traceback: false}})))"
        )
        applied = "JSON.parse(localStorage.getItem('KedroViz') || '{}').showFeatureHints === false"
        browser.call("Page.enable")
        browser.call("Page.addScriptToEvaluateOnNewDocument", source=settings)
        pages = {
            "kedro-viz.png": (f"{viz.url}/?pid=__default__", "true"),
            "kedro-viz-table-preview.png": (
                f"{viz.url}/?pid=__default__&sid={ids['processed_data']}&sn=processed_data",
                "[...document.querySelectorAll('table th, table td')].some(c => c.innerText.trim() === 'CUSTOMER_ID')",
            ),
            "kedro-viz-chart-preview.png": (
                f"{viz.url}/?pid=__default__&sid={ids['segment_sizes_chart']}&sn=segment_sizes_chart",
                "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0",
            ),
        }
        for image, (url, ready) in pages.items():
            for _ in range(3):  # (re)load until the app runs with our settings
                browser.call("Page.navigate", url=url)
                count = browser.wait_for("document.querySelectorAll('.pipeline-node').length")
                if browser.js(applied) and not browser.js("!!document.querySelector('.feature-hints')"):
                    break
                browser.js(settings)
            assert count >= 40  # tasks and datasets of the default pipeline
            browser.wait_for(ready)
            # the offline "update available" banner appears once /api/version answered: dismiss it
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if browser.js(
                    "[...document.querySelectorAll('button')].filter(b => b.innerText.trim() === 'Dismiss')"
                    ".map(b => (b.click(), 1)).length"
                ):
                    break
                time.sleep(0.25)
            browser.js("document.querySelectorAll('.feature-hints__close').forEach(b => b.click())")
            time.sleep(1.5)  # let the layout transitions settle
            shot = tmp_path / image
            browser.screenshot(shot)
            assert _png_size(shot.read_bytes()) == (1600, 1000) and shot.stat().st_size > 40_000
            if README_IMAGES_DIR:
                Path(README_IMAGES_DIR).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, Path(README_IMAGES_DIR) / image)
        text = browser.js("document.body.innerText")
        assert "segment_sizes_chart" in text and "plotly.JSONDataset" in text
    finally:
        browser.close()


def test_server_stops_promptly_and_leaves_the_shared_warehouse_serving(viz: VizServer) -> None:
    folder = viz.project / "data" / "warehouse"
    status = embedded.server_status(folder)  # the previews reached the copy's shared server
    assert status is not None and status["requests"] > 0
    viz.stop()
    assert viz.stop_seconds is not None and viz.stop_seconds < STOP_TIMEOUT, viz.log_text()
    after = embedded.server_status(folder)  # other clients keep their warehouse
    assert after is not None and after["pid"] == status["pid"]


def test_viz_build_writes_a_static_site(trained_project: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(trained_project, project, ignore=shutil.ignore_patterns("build", ".viz"))
    result = subprocess.run(
        _kedro("viz", "build", "--include-previews"),
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    build = project / "build"
    assert (build / "index.html").is_file()
    main = json.loads((build / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} >= PIPELINES | {"daily", "__default__"}
    assert main["layers"] == LAYERS
    for name in PIPELINES | {"daily", "__default__"}:
        assert json.loads((build / "api" / "pipelines" / name).read_text())["nodes"]
    ids = {n["name"]: n["id"] for n in main["nodes"]}
    assert (
        json.loads((build / "api" / "nodes" / ids["processed_data"]).read_text())["preview_type"]
        == "TablePreview"
    )
    assert (
        json.loads((build / "api" / "nodes" / ids["elbow_chart"]).read_text())["preview_type"]
        == "PlotlyPreview"
    )
    # the copied server.json named the original's server (another folder): a server of its own served the build
    record = embedded.read_record(project / "data" / "warehouse")
    assert record is not None and record["path"] == str((project / "data" / "warehouse").resolve())
    assert embedded.stop_server(project / "data" / "warehouse")
