"""Removing the demo at the first user load: only a demo-only RAW_DATA, derived tables first."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from customer_segmentation.demo.generator import generate_events
from customer_segmentation.demo.purge import DEFAULT_DERIVED_TABLES, remove_demo_before_first_load
from customer_segmentation.errors import InvalidIdentifierError
from customer_segmentation.warehouse.tables import RAW_COLUMNS, append_pandas, create_table_sql

DB, SCHEMA = "SEGMENTATION", "PUBLIC"
DERIVED = ["TRANSFORMED_DATA", "CUSTOMER_FEATURES", "MODEL_HISTORY"]


def _tables(session: Any) -> set[str]:
    rows = session.sql(
        f"SELECT TABLE_NAME FROM {DB}.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = '{SCHEMA}'"
    ).collect()
    return {r[0] for r in rows}


def _warehouse(session: Any, demo_customers: int, user_rows: list[str | None]) -> int:
    """RAW_DATA with demo rows and user rows (SOURCE_FILE given), plus two derived tables."""
    session.sql(create_table_sql(DB, SCHEMA, "RAW_DATA", RAW_COLUMNS)).collect()
    demo = generate_events(n_customers=demo_customers) if demo_customers else None
    if demo is not None:
        append_pandas(session, "RAW_DATA", demo)
    for i, source in enumerate(user_rows):
        session.sql(
            "INSERT INTO RAW_DATA (EVENT_ID, EVENT_TYPE, CUSTOMER_ID, SOURCE_FILE) VALUES (?, 'PAGE_VIEW', 'U1', ?)",
            params=[f"U-{i}", source],
        ).collect()
    for table in ("TRANSFORMED_DATA", "CUSTOMER_FEATURES", "LOAD_HISTORY"):
        session.sql(f"CREATE TABLE {table} AS SELECT 1 AS X").collect()
    return 0 if demo is None else len(demo)


def test_demo_only_warehouse_is_emptied_with_its_derived_tables(
    warehouse_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    n_demo = _warehouse(warehouse_session, 20, [])
    with caplog.at_level(logging.INFO, logger="customer_segmentation.demo.purge"):
        removed = remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA", DERIVED)
    assert removed == n_demo > 0
    assert warehouse_session.sql("SELECT COUNT(*) FROM RAW_DATA").collect()[0][0] == 0
    # derived tables dropped (MODEL_HISTORY never existed); RAW_DATA and LOAD_HISTORY kept
    assert _tables(warehouse_session) == {"RAW_DATA", "LOAD_HISTORY"}
    lines = [r.getMessage() for r in caplog.records if r.name == "customer_segmentation.demo.purge"]
    assert len(lines) == 1
    assert f"{n_demo:,} demo events" in lines[0] and "TRANSFORMED_DATA, CUSTOMER_FEATURES" in lines[0]
    # nothing left to remove: a second call is a no-op
    assert remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA", DERIVED) == 0


@pytest.mark.parametrize("user_source", ["/data/events.csv", None])  # a loaded file, or a user's own row
def test_user_rows_are_never_touched(
    warehouse_session: Any, caplog: pytest.LogCaptureFixture, user_source: str | None
) -> None:
    _warehouse(warehouse_session, 0, [user_source, user_source])
    assert remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA", DERIVED) == 0
    assert warehouse_session.sql("SELECT COUNT(*) FROM RAW_DATA").collect()[0][0] == 2
    assert {"TRANSFORMED_DATA", "CUSTOMER_FEATURES"} <= _tables(warehouse_session)


def test_a_mixed_warehouse_is_left_alone_with_a_warning(
    warehouse_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    n_demo = _warehouse(warehouse_session, 10, ["/data/events.csv"])
    with caplog.at_level(logging.WARNING, logger="customer_segmentation.demo.purge"):
        assert remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA", DERIVED) == 0
    assert warehouse_session.sql("SELECT COUNT(*) FROM RAW_DATA").collect()[0][0] == n_demo + 1
    assert {"TRANSFORMED_DATA", "CUSTOMER_FEATURES"} <= _tables(warehouse_session)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "next to 1 of your own" in warning and "ingestion.full_refresh=true" in warning


def test_no_raw_data_and_bad_names(warehouse_session: Any) -> None:
    assert remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA") == 0
    with pytest.raises(InvalidIdentifierError, match="demo_data.derived_tables"):
        remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA", ["PROCESSED_DATA; DROP"])


def test_default_list_matches_the_parameters() -> None:
    import yaml

    from tests.conftest import PROJECT_ROOT

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters.yml").read_text())
    assert tuple(params["demo_data"]["derived_tables"]) == DEFAULT_DERIVED_TABLES


def test_an_interrupted_purge_is_finished_by_the_next_load(warehouse_session: Any) -> None:
    n_demo = _warehouse(warehouse_session, 10, [])

    class StopsAtDelete:
        """The session, failing on the DELETE (as if the process died between the two steps)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(warehouse_session, name)

        def sql(self, query: str, *args: Any, **kwargs: Any) -> Any:
            if query.startswith("DELETE"):
                raise RuntimeError("connection lost")
            return warehouse_session.sql(query, *args, **kwargs)

    with pytest.raises(RuntimeError, match="connection lost"):
        remove_demo_before_first_load(StopsAtDelete(), DB, SCHEMA, "RAW_DATA", DERIVED)
    # derived tables are gone, the demo rows are still there: the next load finds them
    assert _tables(warehouse_session) == {"RAW_DATA", "LOAD_HISTORY"}
    assert warehouse_session.sql("SELECT COUNT(*) FROM RAW_DATA").collect()[0][0] == n_demo
    assert remove_demo_before_first_load(warehouse_session, DB, SCHEMA, "RAW_DATA", DERIVED) == n_demo
    assert warehouse_session.sql("SELECT COUNT(*) FROM RAW_DATA").collect()[0][0] == 0
