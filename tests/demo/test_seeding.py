"""The demo seed node: demo events only for an empty RAW_DATA of an allowed target, marked demo://."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from customer_segmentation.demo.clock import DemoClock
from customer_segmentation.demo.generator import DEMO_SOURCE_PREFIX, generate_events
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.demo.seeding import seed_demo_events, should_seed
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.warehouse.tables import RAW_COLUMNS

DEMO = DemoDataParams(enabled=True, seed_snowflake=False, n_customers=30, seed=11)
EMBEDDED = {"run_id": "r", "embedded_warehouse": True}
SNOWFLAKE = {"run_id": "r", "embedded_warehouse": False}


def _raw(session: Any, rows: int) -> Any:
    """A RAW_DATA-like Snowpark frame with ``rows`` rows (as the catalog would load it)."""
    return (
        session.sql(f"SELECT 'x' AS SOURCE_FILE FROM TABLE(GENERATOR(ROWCOUNT => {rows}))")
        if rows
        else session.sql("SELECT CAST(NULL AS VARCHAR) AS SOURCE_FILE WHERE 1 = 0")
    )


def test_seeds_an_empty_raw_data_of_the_embedded_warehouse(warehouse_session: Any) -> None:
    events, clock = seed_demo_events(_raw(warehouse_session, 0), DEMO, EMBEDDED)
    # the demo clock starts the morning the seeded history is stamped as loaded
    assert clock == DemoClock(today=datetime(2026, 11, 1, 6), set_by="demo seed", run_id="r")
    assert (events["LOADED_AT"].astype(str) == "2026-11-01 06:00:00").all()
    assert list(events.columns) == list(RAW_COLUMNS)
    assert len(events) == len(generate_events(n_customers=30, seed=11)) > 0
    assert events["SOURCE_FILE"].str.startswith(DEMO_SOURCE_PREFIX).all()
    assert events["CUSTOMER_ID"].nunique() == 30


@pytest.mark.parametrize(
    ("rows", "demo", "run", "expected"),
    [
        (1, DEMO, EMBEDDED, False),  # any row (the user's or the demo's): never seeded
        (0, DemoDataParams.of(DEMO, enabled=False), EMBEDDED, False),
        (0, DEMO, SNOWFLAKE, False),  # real Snowflake only with the explicit opt-in
        (0, DemoDataParams.of(DEMO, seed_snowflake=True), SNOWFLAKE, True),
        (0, DEMO, {"run_id": "r"}, False),  # target unknown: treated as real Snowflake
    ],
)
def test_seeds_only_when_allowed(
    warehouse_session: Any, rows: int, demo: DemoDataParams, run: dict, expected: bool
) -> None:
    raw = _raw(warehouse_session, rows)
    assert should_seed(raw, demo, run) is expected
    events, clock = seed_demo_events(raw, demo, run)
    assert (len(events) > 0) is expected
    assert (clock.today is not None) is expected  # DemoClock() writes nothing
    assert list(events.columns) == list(RAW_COLUMNS)


class _NoQueries:
    """A frame whose emptiness must not be asked: the decision is made before any query."""

    def limit(self, n: int) -> Any:
        raise AssertionError("RAW_DATA was queried although seeding is not allowed")


def test_no_query_when_seeding_is_not_allowed() -> None:
    assert should_seed(_NoQueries(), DemoDataParams.of(DEMO, enabled=False), EMBEDDED) is False
    assert should_seed(_NoQueries(), DEMO, SNOWFLAKE) is False


def test_demo_source_must_keep_the_marker() -> None:
    with pytest.raises(InvalidParametersError, match="demo_data.source must start with 'demo://'"):
        generate_events(n_customers=5, source="/data/events.csv")
    with pytest.raises(InvalidParametersError, match="n_customers must be at least 1"):
        generate_events(n_customers=0)
    # the same rules stop `kedro run` before the seed node (the parameters are checked first)
    with pytest.raises(InvalidParametersError, match="demo_data.source: String should match pattern"):
        DemoDataParams.of(source="/data/events.csv")
    with pytest.raises(InvalidParametersError, match="demo_data.n_customers: Input should be greater"):
        DemoDataParams.of(n_customers=0)


def test_the_seed_uses_every_generator_parameter() -> None:
    import inspect

    demo = DemoDataParams(n_customers=7, end_date="2026-01-31", history_days=40, seed=3)
    assert set(demo.generator_args()) == set(inspect.signature(generate_events).parameters)
    assert demo.generator_args()["end_date"] == "2026-01-31"
    # the generator's defaults are the parameters' defaults
    assert {
        name: p.default for name, p in inspect.signature(generate_events).parameters.items()
    } == DemoDataParams().generator_args()
