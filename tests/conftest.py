"""Shared fixtures: throw-away copies of the project, each with its own embedded warehouse."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_LAYERS = (
    "01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
    "07_model_output", "08_reporting", "warehouse",
)
#: Small demo so that end-to-end tests stay fast.
SMALL_DEMO = {"demo_data.n_customers": 400}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


def make_project_copy(target: Path) -> Path:
    """A copy of the project's configuration with an empty data folder (no warehouse, no model)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "conf" / "base", target / "conf" / "base")
    (target / "conf" / "local").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", target / "conf" / "logging.yml")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", target / "pyproject.toml")
    (target / "src").mkdir(exist_ok=True)  # the package itself is installed (pip install -e .)
    for layer in DATA_LAYERS:
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    return target


def nested(params: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as `kedro run --params=a.b=1` does (nested dicts merge)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            value = nested(value)
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = {**node[leaf], **value}
        else:
            node[leaf] = value
    return out


def run_pipeline(
    project_path: Path, pipeline: str | None = None, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run a pipeline of the project copy through KedroSession, as `kedro run` does."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    runtime = nested({**SMALL_DEMO, **(params or {})})
    with KedroSession.create(project_path=project_path, runtime_params=runtime) as session:
        return session.run(pipeline_names=[pipeline] if pipeline else None)


def warehouse_rows(project_path: Path, sql: str) -> list[tuple]:
    """Query a project copy's embedded warehouse files directly (after a run released them)."""
    import duckdb

    con = duckdb.connect(str(project_path / "data" / "warehouse" / "SEGMENTATION.db"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(autouse=True)
def _no_real_snowflake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests use the embedded warehouse unless they set SNOWFLAKE_* themselves."""
    for name in list(os.environ):
        if name.startswith("SNOWFLAKE_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    return make_project_copy(tmp_path / "project")


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy on which the full default pipeline has run once (shared, treat as read-only)."""
    path = make_project_copy(tmp_path_factory.mktemp("trained") / "project")
    run_pipeline(path)
    return path


@pytest.fixture
def warehouse_session(tmp_path: Path) -> Iterator[Any]:
    """A Snowpark session on a fresh, empty embedded warehouse (no demo data)."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "warehouse"))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()


@pytest.fixture
def query(warehouse_session: Any) -> Callable[[str], list[Any]]:
    """Run SQL on the test warehouse and return rows."""
    return lambda sql: warehouse_session.sql(sql).collect()
