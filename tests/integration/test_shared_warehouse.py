"""Several clients on one embedded warehouse at once (issue 10, point 4).

- `kedro viz run` (without --include-hooks) keeps serving previews while a full `kedro run` and a
  notebook run against the same warehouse; both finish and the preview shows the new rows.
- Two `kedro run` started at the same moment on a fresh project: the second waits for the first
  (run lock), both succeed, and the data is neither doubled nor mixed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from customer_segmentation.warehouse import embedded
from tests.conftest import SMALL_DEMO, make_project_copy, warehouse_rows

# the kernel first loads the repository's project, which starts the repository's server: that
# module's fixture stops it after this module too
from tests.test_notebooks import _execute, _outputs, _repository_server_stopped_afterwards  # noqa: F401
from tests.test_viz import VizServer, _free_port

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def _kedro_run(project: Path, log: Path, *args: str) -> subprocess.Popen:
    params = ",".join(f"{k}={v}" for k, v in SMALL_DEMO.items())
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", f"--params={params}", *args],
            cwd=project,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _preview_run_ids(viz: VizServer, node_id: str) -> set[str]:
    meta = viz.get(f"/api/nodes/{node_id}")
    assert meta.get("preview_type") == "TablePreview", (meta, viz.log_text())
    preview = meta["preview"]
    column = preview["columns"].index("RUN_ID")
    return {row[column] for row in preview["data"]}


@pytest.mark.slow
def test_viz_previews_while_a_run_and_a_notebook_use_the_warehouse(
    trained_project: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    embedded.stop_server(trained_project / "data" / "warehouse")  # a quiet copy of its files
    shutil.copytree(trained_project, project)
    folder = project / "data" / "warehouse"
    viz = VizServer(project, _free_port(), tmp_path / "kedro-viz.log")
    viz.start()  # no --include-hooks
    try:
        node = viz.node_ids()["processed_data"]
        before = _preview_run_ids(viz, node)
        assert len(before) == 1
        server_pid = embedded.read_record(folder)["pid"]

        run = _kedro_run(project, tmp_path / "run.log")
        notebook = _execute("02_rfm_features_explained.ipynb", project)  # meanwhile, in a kernel
        # previews keep answering while the run writes
        assert _preview_run_ids(viz, node)
        assert run.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-4000:]

        text = _outputs(notebook)
        assert "customers with at least one order" in text and "warehouse session open: False" in text
        after = _preview_run_ids(viz, node)  # the same kedro-viz process, not restarted
        assert len(after) == 1 and after != before, (before, after)
        assert viz.process.poll() is None
        assert embedded.read_record(folder)["pid"] == server_pid  # one server served all three
        assert "is in use by another process" not in (tmp_path / "run.log").read_text()
    finally:
        viz.stop()
    assert {
        r[0] for r in warehouse_rows(project, "SELECT DISTINCT RUN_ID FROM PUBLIC.PROCESSED_DATA")
    } == after


@pytest.mark.slow
def test_two_runs_at_once_both_succeed_without_doubling_data(trained_project: Path, tmp_path: Path) -> None:
    from tests.integration.test_reruns import newest_model, plant_perturbed_model

    project = make_project_copy(tmp_path / "project")
    # both runs train with a previous model (first a perturbed copy of the reference's, then the
    # other run's): the segments below must not depend on it
    plant_perturbed_model(trained_project, project)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    started = time.monotonic()
    runs = []
    for log in logs:
        runs.append(_kedro_run(project, log))
        # Kedro names the versioned report files of a run after its start time, to the millisecond:
        # two processes started in the same millisecond would both try to write the same version
        # folder (Kedro refuses the second, before the watermark moves). Not what this test is about.
        time.sleep(0.5)
    codes = [r.wait(timeout=900) for r in runs]
    elapsed = time.monotonic() - started
    texts = [log.read_text(errors="replace") for log in logs]
    assert codes == [0, 0], "\n\n".join(t[-3000:] for t in texts)
    # one of them waited for the other (run lock), with a message that says so
    assert sum("Waiting for the other pipeline run" in t for t in texts) == 1, elapsed

    # the demo was seeded once (same events as the reference project, which ran once) ...
    count = "SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM PUBLIC.RAW_DATA"
    assert warehouse_rows(project, count) == warehouse_rows(trained_project, count)
    # ... each event is in exactly one of the two ingestion outputs, once ...
    accepted = warehouse_rows(
        project, "SELECT COUNT(*), COUNT(DISTINCT RECORD_ID) FROM PUBLIC.TRANSFORMED_DATA"
    )[0]
    rejected = warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS")[0][0]
    assert accepted[0] == accepted[1]
    assert accepted[0] + rejected == warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA")[0][0]
    # ... and the results are those of one run: one row per customer, one run id, the reference segments
    processed = (
        "SELECT COUNT(*), COUNT(DISTINCT CUSTOMER_ID), COUNT(DISTINCT RUN_ID) FROM PUBLIC.PROCESSED_DATA"
    )
    rows, customers, run_ids = warehouse_rows(project, processed)[0]
    assert rows == customers and run_ids == 1
    segments = "SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT FROM PUBLIC.PROCESSED_DATA ORDER BY CUSTOMER_ID"
    assert warehouse_rows(project, segments) == warehouse_rows(trained_project, segments)
    assert newest_model(project) == newest_model(trained_project)  # the same model, to the last bit
