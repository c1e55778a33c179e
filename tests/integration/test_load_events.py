"""`kedro run --pipeline load_events --params=events_file=<path>`: append once, refuse bad files whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_project_copy
from tests.integration.test_ingestion import event, reports, rows, run, scalar, write_events

pytestmark = pytest.mark.integration

KEDRO = str(Path(sys.executable).with_name("kedro"))


def kedro_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env.update(KEDRO_DISABLE_TELEMETRY="true", COLUMNS="200")
    return subprocess.run(
        [KEDRO, "run", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_cli_appends_a_file_once(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    path = write_events(tmp_path / "events.csv", [event(f"CLI-{i}") for i in range(5)])
    for _ in range(2):
        result = kedro_run(
            project, "--pipeline", "load_events", f"--params=events_file={path},demo_data.enabled=false"
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert rows(project, "SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM PUBLIC.RAW_DATA") == [(5, 5)]
    assert [r["status"] for r in reports(project, "load_events_report")] == ["loaded", "already_loaded"]

    result = kedro_run(project, "--pipeline", "load_events", "--params=demo_data.enabled=false")
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())  # undo the console's line wrapping
    assert "needs the parameter events_file" in output
    assert "kedro run --pipelines load_events --params=events_file=<path>" in output


def test_csv_jsonl_parquet_are_appended_with_stamps(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    run(project, "ingestion")  # the demo, removed by the first load below
    files = {
        "csv": write_events(tmp_path / "a.csv", [event(f"A-{i}") for i in range(3)]),
        "jsonl": write_events(tmp_path / "b.jsonl", [event(f"B-{i}", PRODUCT_ID="") for i in range(4)]),
        "parquet": write_events(tmp_path / "c.parquet", [event(f"C-{i}") for i in range(5)]),
    }
    for path in files.values():
        run(project, "load_events", events_file=str(path))
    loads = reports(project, "load_events_report")
    assert [(r["format"], r["rows_added"], r["status"]) for r in loads] == [
        ("csv", 3, "loaded"),
        ("jsonl", 4, "loaded"),
        ("parquet", 5, "loaded"),
    ]
    stamps = rows(
        project,
        "SELECT SOURCE_FILE, COUNT(*), COUNT(DISTINCT LOADED_AT), MIN(SOURCE_ROW), MAX(SOURCE_ROW), MIN(LOADED_AT) "
        "FROM PUBLIC.RAW_DATA WHERE SOURCE_FILE NOT LIKE 'demo://%' GROUP BY 1 ORDER BY MIN(LOADED_AT)",
    )
    assert [s[:5] for s in stamps] == [
        (str(files["csv"].resolve()), 3, 1, 1, 3),
        (str(files["jsonl"].resolve()), 4, 1, 1, 4),
        (str(files["parquet"].resolve()), 5, 1, 1, 5),
    ]
    assert stamps[0][5] < stamps[1][5] < stamps[2][5]  # one stamp per load, strictly increasing
    assert (
        scalar(
            project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA WHERE EVENT_ID LIKE 'B-%' AND PRODUCT_ID IS NULL"
        )
        == 4
    )
    assert rows(
        project, "SELECT DISTINCT AMOUNT, QUANTITY FROM PUBLIC.RAW_DATA WHERE EVENT_ID LIKE 'C-%'"
    ) == [("25.00", "1")]
    history = rows(
        project, "SELECT FILE_FORMAT, ROW_COUNT, STATUS FROM PUBLIC.LOAD_HISTORY ORDER BY LOADED_AT"
    )
    assert history == [("csv", 3, "loaded"), ("jsonl", 4, "loaded"), ("parquet", 5, "loaded")]

    run(project, "load_events", events_file=str(files["parquet"]))  # again: nothing
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA") == 12  # the files' rows, no demo row
    run(project, "ingestion")
    assert (
        scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA WHERE SOURCE_FILE NOT LIKE 'demo://%'")
        == 12
    )


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        (
            "no_amount.csv",
            "EVENT_ID,EVENT_TYPE,EVENT_TS,CUSTOMER_ID,ORDER_ID,PRODUCT_ID,CATEGORY,QUANTITY\nE1,PAGE_VIEW,2026-01-01,C1,,,,\n",
            ["missing required column(s) AMOUNT, CHANNEL", "nothing was loaded"],
        ),
        ("events.xls", "whatever", ["Unknown format", "CSV (.csv", "JSON Lines", "Parquet (.parquet"]),
        (
            "broken.parquet",
            "not a parquet file",
            ["Could not read events file 'broken.parquet' as Parquet", "JSON Lines"],
        ),
    ],
)
def test_bad_files_are_refused_whole(tmp_path: Path, name: str, content: str, fragments: list[str]) -> None:
    project = make_project_copy(tmp_path / "p")
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(Exception) as excinfo:
        run(project, "load_events", events_file=str(path), **{"demo_data.enabled": False})
    for fragment in fragments:
        assert fragment in str(excinfo.value)
    db = project / "data" / "warehouse" / "SEGMENTATION.db"
    assert not db.exists() or not rows(
        project, "SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'RAW_DATA'"
    )


def test_load_events_is_not_part_of_the_default_run(tmp_path: Path) -> None:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(make_project_copy(tmp_path / "p"))
    assert "load_events" in pipelines
    load_nodes = {n.name for n in pipelines["load_events"].nodes}
    # no demo seed: loading never seeds
    assert load_nodes == {"read_events_file", "append_events_to_raw_data", "report_event_load"}
    assert "seed_demo_events" in {n.name for n in pipelines["__default__"].nodes}
    assert not load_nodes & {n.name for n in pipelines["__default__"].nodes}
    assert not load_nodes & {n.name for n in pipelines["daily"].nodes}
