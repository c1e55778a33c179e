"""The demo clock (DEMO_CLOCK): read only for a demo-only RAW_DATA, never behind the demo's loads, purged with it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io.core import DatasetError

from customer_segmentation.datasets.demo_clock import DemoClockDataset
from customer_segmentation.demo.clock import DemoClock
from customer_segmentation.demo.generator import generate_events
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.demo.purge import remove_demo_before_first_load
from customer_segmentation.pipelines.ingestion.nodes import select_new_events
from customer_segmentation.pipelines.ingestion.params import IngestionParams
from customer_segmentation.warehouse.tables import RAW_COLUMNS, append_pandas, create_table_sql

DB, SCHEMA = "SEGMENTATION", "PUBLIC"
SEEDED = datetime(2026, 11, 1, 6)  # demo_data.loaded_at


_NUMBERS = itertools.count(1)


@pytest.fixture(scope="module")
def warehouse_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One embedded warehouse for the module; each test uses tables of its own (``names``)."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.config import WarehouseSettings

    folder: Path = tmp_path_factory.mktemp("clock") / "warehouse"
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()
        embedded.stop_server(folder, wait=False)


@pytest.fixture
def names() -> tuple[str, str]:
    """(RAW_DATA, DEMO_CLOCK) table names of this test."""
    n = next(_NUMBERS)
    return f"RAW_DATA_{n}", f"DEMO_CLOCK_{n}"


def _clock(names: tuple[str, str]) -> DemoClockDataset:
    return DemoClockDataset(table_name=names[1], raw_table=names[0])


def _demo_raw(session: Any, names: tuple[str, str], n_customers: int = 15) -> int:
    session.sql(create_table_sql(DB, SCHEMA, names[0], RAW_COLUMNS)).collect()
    events = generate_events(n_customers=n_customers)
    append_pandas(session, names[0], events)
    return len(events)


def test_without_the_table_a_demo_only_raw_data_runs_on_its_latest_load(
    warehouse_session: Any, names: tuple[str, str]
) -> None:
    """A demo seeded by a version without the clock: its today is the morning of its latest load."""
    assert _clock(names).load() == DemoClock()  # no RAW_DATA
    _demo_raw(warehouse_session, names)
    assert _clock(names).load() == DemoClock(today=SEEDED, set_by="the latest demo load")
    _clock(names).save(DemoClock())  # no today: nothing written, not even the table
    tables = warehouse_session.sql(
        f"SELECT COUNT(*) FROM {DB}.INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = '{names[1]}'"
    ).collect()
    assert tables[0][0] == 0
    warehouse_session.sql(
        f"INSERT INTO {names[0]} (EVENT_ID, EVENT_TYPE, CUSTOMER_ID, SOURCE_FILE) VALUES ('U-1', 'PAGE_VIEW', 'U1', NULL)"
    ).collect()
    assert _clock(names).load() == DemoClock()  # a row of yours: the wall clock


def test_the_clock_is_read_for_a_demo_only_raw_data_and_replaced_on_save(
    warehouse_session: Any, names: tuple[str, str]
) -> None:
    _demo_raw(warehouse_session, names)
    later = SEEDED + timedelta(days=30)
    _clock(names).save(DemoClock(today=SEEDED, set_by="demo seed", run_id="r1"))
    assert _clock(names).load() == DemoClock(today=SEEDED, set_by="demo seed")
    _clock(names).save(DemoClock(today=later, set_by="simulate_days (30 day(s))", run_id="r2"))
    rows = warehouse_session.sql(f"SELECT TODAY, SET_BY, RUN_ID FROM {names[1]}").collect()
    assert [tuple(r) for r in rows] == [(later, "simulate_days (30 day(s))", "r2")]  # one row, replaced
    assert _clock(names).load().today == later
    with pytest.raises(DatasetError, match="saves a DemoClock"):
        _clock(names).save("2026-12-01")


def test_the_clock_is_never_behind_the_latest_demo_load(
    warehouse_session: Any, names: tuple[str, str]
) -> None:
    """A simulate_days stopped between its two writes: the events landed, the clock did not move."""
    _demo_raw(warehouse_session, names)
    _clock(names).save(DemoClock(today=SEEDED - timedelta(days=3), set_by="demo seed"))
    later = SEEDED + timedelta(days=7)
    batch = (
        generate_events(n_customers=3)
        .head(5)
        .assign(LOADED_AT=pd.Timestamp(later), SOURCE_FILE="demo://simulate/x")
    )
    append_pandas(warehouse_session, names[0], batch)
    assert _clock(names).load() == DemoClock(today=later, set_by="the latest demo load")


@pytest.mark.parametrize("source", ["/data/events.csv", None])  # a loaded file, or a row of your own
def test_any_row_of_yours_switches_the_clock_off(
    warehouse_session: Any, names: tuple[str, str], source: str | None
) -> None:
    _demo_raw(warehouse_session, names)
    _clock(names).save(DemoClock(today=SEEDED + timedelta(days=400), set_by="simulate_days"))
    warehouse_session.sql(
        f"INSERT INTO {names[0]} (EVENT_ID, EVENT_TYPE, CUSTOMER_ID, SOURCE_FILE) VALUES ('U-1', 'PAGE_VIEW', 'U1', ?)",
        params=[source],
    ).collect()
    assert _clock(names).load() == DemoClock()


def test_the_first_user_load_drops_the_clock_with_the_demo(
    warehouse_session: Any, names: tuple[str, str]
) -> None:
    _demo_raw(warehouse_session, names)
    _clock(names).save(DemoClock(today=SEEDED, set_by="demo seed"))
    assert "DEMO_CLOCK" in DemoDataParams().derived_tables  # the default list (conf agrees: test_purge)
    removed = remove_demo_before_first_load(warehouse_session, DB, SCHEMA, names[0], [names[1]])
    assert removed > 0
    tables = warehouse_session.sql(
        f"SELECT TABLE_NAME FROM {DB}.INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = '{names[1]}'"
    ).collect()
    assert tables == []
    assert _clock(names).load() == DemoClock()


def test_ingestion_now_is_as_of_then_the_demo_clock_then_the_wall_clock(
    warehouse_session: Any, names: tuple[str, str]
) -> None:
    _demo_raw(warehouse_session, names)
    raw = warehouse_session.table(names[0])
    state = warehouse_session.sql(
        "SELECT CAST(NULL AS VARCHAR) AS PIPELINE, CAST(NULL AS TIMESTAMP) AS WATERMARK"
    )
    clock = DemoClock(today=SEEDED + timedelta(days=60), set_by="simulate_days")

    def now(params: dict[str, Any], demo_clock: DemoClock | None) -> str:
        return select_new_events(raw, state, IngestionParams.of(params), None, demo_clock)[1]["as_of"]

    assert now({}, clock) == "2026-12-31 06:00:00"
    assert now({"as_of": "2030-01-01"}, clock) == "2030-01-01 00:00:00"  # an explicit as_of wins
    before = datetime.now().replace(microsecond=0) - timedelta(days=1)  # the wall clock, UTC, give or take
    assert datetime.fromisoformat(now({}, DemoClock())) > before
    assert datetime.fromisoformat(now({}, None)) > before
