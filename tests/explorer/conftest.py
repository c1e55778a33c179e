"""Fixtures of the segment explorer's tests: warehouses with two snapshots, one snapshot and nothing.

Every fixture reads; the one that writes (the browser test's run while the app is open) copies
first. ``two_snapshots`` is the trained demo (one ``kedro run``, conftest's ``trained_template``)
copied, plus a week of simulated demo days and the morning job: a second snapshot, movements and an
activation feed; built once per test run, each worker reads its own copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import copy_project, run_pipeline, shared_template, stop_server_of

APP = Path(__file__).resolve().parents[2] / "src" / "customer_segmentation" / "explorer" / "streamlit_app.py"
PAGES = {
    "overview": "app_pages/overview.py",
    "segment": "app_pages/segment.py",
    "movements": "app_pages/movements.py",
    "customer": "app_pages/customer.py",
    "model_health": "app_pages/model_health.py",
}
SIMULATED_DAYS = 7


def add_snapshot(project: Path, days: int = SIMULATED_DAYS) -> None:
    """A week of demo life, then the morning job: one more snapshot in the history."""
    run_pipeline(project, "simulate_days", {"simulate_days.days": days})
    run_pipeline(project, "daily")  # on the demo clock: simulated days are not future events


@pytest.fixture(scope="session")
def two_snapshots(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo after `kedro run`, a week of simulated days and `daily` (read-only for tests).

    Built once per test run (``shared_template``); each worker reads its own copy.
    """

    def build(path: Path) -> None:
        add_snapshot(copy_project(trained_template, path))

    template = shared_template(tmp_path_factory, "two_snapshots", build)
    project = copy_project(template, tmp_path_factory.mktemp("explorer") / "project")
    yield project
    stop_server_of(project)


def point_warehouse_at(project: Path) -> Any:
    """Make the app's local session (the project's warehouse module) use ``project``'s embedded warehouse."""
    import streamlit as st

    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    # the project's own warehouse parameters (the server's memory limit included), as `kedro run` reads them
    params = yaml.safe_load((project / "conf" / "base" / "parameters.yml").read_text())["warehouse"]
    settings = WarehouseSettings.from_config({}, params, project)
    if not (warehouse.is_open() and warehouse.current_settings().key == settings.key):
        warehouse.close()
        warehouse.configure(settings)
        st.cache_data.clear()  # caches are keyed on the data version, which another warehouse may share
    return warehouse.get_session()


@pytest.fixture(scope="module")
def _warehouse_closed_after_module() -> Iterator[None]:
    """The session the AppTests share (one per project) is closed when the module is done."""
    from customer_segmentation import warehouse

    yield
    warehouse.close()


@pytest.fixture
def app(
    monkeypatch: pytest.MonkeyPatch, _warehouse_closed_after_module: None
) -> Callable[[Path | None], Any]:
    """``app(project)``: an AppTest of the explorer on ``project``'s warehouse (first page not run yet);
    ``rows()`` then queries the same warehouse. ``app(None)`` leaves the warehouse as configured."""
    from streamlit.testing.v1 import AppTest

    for name in ("TABLE_ROWS", "MAX_DOWNLOAD_ROWS", "SCHEMA", "PINNED_MODEL"):
        monkeypatch.delenv(f"SEGMENT_EXPLORER_{name}", raising=False)

    def make(project: Path | None) -> Any:
        if project is not None:
            point_warehouse_at(project)
        return AppTest.from_file(str(APP), default_timeout=90)

    return make


def page_text(at: Any) -> str:
    """Everything an AppTest page wrote as text (markdown, captions, titles, alerts, metrics)."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "success",
        "error",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


def open_page(at: Any, page: str) -> Any:
    """Run ``page`` (a key of PAGES) and check it neither raised nor showed an error."""
    at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def rows(sql: str, params: list[Any] | None = None) -> list[tuple]:
    """An independent look at the warehouse the app reads (plain SQL written in the test)."""
    from customer_segmentation import warehouse

    return [tuple(r) for r in warehouse.get_session().sql(sql, params=params).collect()]
