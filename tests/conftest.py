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
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
    "warehouse",
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
    """Query a project copy's embedded warehouse files directly, with DuckDB (independent of the emulator).

    The shared embedded server holds the DuckDB files while it runs: it is stopped first (the
    next client starts it again).
    """
    import duckdb

    from customer_segmentation.warehouse import embedded

    embedded.stop_server(project_path / "data" / "warehouse")
    con = duckdb.connect(str(project_path / "data" / "warehouse" / "SEGMENTATION.db"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def embedded_server_pids(under: Path) -> list[int]:
    """Live embedded warehouse server processes whose folder is under ``under`` (from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(a.endswith("embedded_server") for a in argv) and "--path" in argv:
            folder = argv[argv.index("--path") + 1]
            if Path(folder).is_relative_to(under):
                pids.append(int(proc.name))
    return pids


def stop_embedded_servers(under: Path, timeout: float = 60.0) -> list[int]:
    """Stop every embedded warehouse server of a folder tree (recorded or not); returns the pids found."""
    import signal
    import time

    from customer_segmentation.warehouse import embedded

    for record in under.rglob(embedded.RECORD_NAME):
        try:
            embedded.stop_server(record.parent, timeout=timeout)
        except Exception:  # noqa: BLE001 - a stuck server is killed below
            pass
    found = embedded_server_pids(under)
    for pid in found:  # unrecorded (still starting, or a record deleted by a test): SIGTERM
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while embedded_server_pids(under) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in embedded_server_pids(under):
        os.kill(pid, signal.SIGKILL)
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_embedded_server_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test's project copy has its own warehouse folder, hence server: none may outlive the session.

    Under pytest-xdist each worker has its own session and base folder, so this stops only its own.
    """
    yield
    stop_embedded_servers(tmp_path_factory.getbasetemp())


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
    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.config import WarehouseSettings

    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "warehouse"))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()
        # each test has its own warehouse folder, hence its own server: do not let them pile up
        embedded.stop_server(tmp_path / "warehouse", wait=False)


@pytest.fixture
def query(warehouse_session: Any) -> Callable[[str], list[Any]]:
    """Run SQL on the test warehouse and return rows."""
    return lambda sql: warehouse_session.sql(sql).collect()
