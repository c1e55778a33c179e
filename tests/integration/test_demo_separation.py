"""Demo and user data never mix (issue 9 point 1), checked on data the demo code did not generate.

The user's file here has another shape than the demo: mostly one-time buyers, one customer who
dominates spend, a few browsing-only visitors, dates in 1998, ISO 'T' timestamps. Its RFM values
are recomputed independently with pandas.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import collect_records, copy_project, make_project_copy
from tests.integration.test_ingestion import rows, run, scalar
from tests.integration.test_load_events import kedro_run

pytestmark = pytest.mark.integration

# Persistent tables a demo run leaves (INGESTION_TYPED and INGESTION_REPEATS are per-session temporary tables).
DERIVED = (
    "TRANSFORMED_DATA",
    "REJECTED_EVENTS",
    "INGESTION_STATE",
    "CUSTOMER_FEATURES",
    "SCORED_CUSTOMERS",
    "PROCESSED_DATA",
    "SEGMENTATION_MODELS",  # a model trained on the demo never scores the user's customers
    "MODEL_K_SELECTION",
    "MODEL_SEGMENTS",
    "SEGMENT_SUMMARY",
    # a monitoring history of the demo must not mix with the user's
    "SEGMENT_HISTORY",
    "SEGMENT_MIGRATIONS",
    "SEGMENT_FLOWS",
    "SEGMENT_CHANGES",
    "SEGMENT_PROFILES",
    "SEGMENT_DRIFT",
    # incremental features' state: demo aggregates must not be updated with the user's events
    "CUSTOMER_AGGREGATES",
    "CUSTOMER_DAILY_SPEND",
    "CUSTOMER_AGGREGATES_STATE",
    # the demo's own "today": your data runs on the wall clock
    "DEMO_CLOCK",
    # customer value (issue 21): a value model fitted on the demo never scores the user's customers
    "CUSTOMER_VALUE",
    "CUSTOMER_VALUE_MODELS",
    "SEGMENT_OUTCOMES",
)


def user_history(n_customers: int = 240, seed: int = 1998) -> pd.DataFrame:
    """A retailer's 1998 export: ~80% one-time buyers, one dominant customer, some cancels and returns."""
    rng = np.random.default_rng(seed)
    start = datetime(1998, 1, 1)
    rows_: list[dict] = []

    def add(event_type: str, ts: datetime, customer: str, order: str | None, amount: float | None) -> None:
        rows_.append(
            {
                "EVENT_ID": f"TX{len(rows_) + 1:07d}",
                "EVENT_TYPE": event_type,
                "EVENT_TS": ts.strftime("%Y-%m-%dT%H:%M:%S"),
                "CUSTOMER_ID": customer,
                "ORDER_ID": order,
                "PRODUCT_ID": f"SKU-{int(rng.integers(1, 40))}" if event_type != "ORDER_CANCELLED" else None,
                "CATEGORY": ["Books", "Toys", "Garden"][int(rng.integers(0, 3))],
                "QUANTITY": "1" if amount is not None else None,
                "AMOUNT": None if amount is None else f"{amount:.2f}",
                "CHANNEL": ["store", "web"][int(rng.integers(0, 2))],
            }
        )

    for c in range(n_customers):
        customer = f"ACME{c:05d}"
        dominant = c == 0
        n_orders = 150 if dominant else (1 if rng.random() < 0.8 else int(rng.integers(2, 6)))
        for o in range(n_orders):
            ts = start + timedelta(seconds=int(rng.integers(0, 360 * 86400)))
            order = f"{customer}/{o}"
            amounts = [
                round(float(rng.uniform(500, 2000) if dominant else rng.uniform(3, 80)), 2)
                for _ in range(int(rng.integers(1, 3)))
            ]
            for amount in amounts:
                add("ORDER_CREATED", ts, customer, order, amount)
            draw = rng.random()
            if draw < 0.05:
                add("ORDER_CANCELLED", ts + timedelta(hours=2), customer, order, round(sum(amounts), 2))
            elif draw < 0.10:
                add("ORDER_RETURNED", ts + timedelta(days=4), customer, order, amounts[0])
    for b in range(12):  # visitors who never ordered: not customers of the segmentation
        add("PAGE_VIEW", start + timedelta(days=30 + b), f"VISITOR{b:03d}", None, None)
    return pd.DataFrame(rows_)


def expected_rfm(events: pd.DataFrame) -> pd.DataFrame:
    """RECENCY_DAYS, FREQUENCY, MONETARY per customer, by the README's definitions, in pandas."""
    frame = events.assign(TS=pd.to_datetime(events["EVENT_TS"]), AMT=events["AMOUNT"].astype(float))
    reference = frame["TS"].max().normalize() + pd.Timedelta(days=1)
    keys = ["CUSTOMER_ID", "ORDER_ID"]
    created = (
        frame[frame["EVENT_TYPE"] == "ORDER_CREATED"]
        .groupby(keys)
        .agg(ORDER_TS=("TS", "min"), GROSS=("AMT", "sum"))
    )
    cancelled = frame[frame["EVENT_TYPE"] == "ORDER_CANCELLED"].groupby(keys)["AMT"].sum().rename("CANCELLED")
    returned = frame[frame["EVENT_TYPE"] == "ORDER_RETURNED"].groupby(keys)["AMT"].sum().rename("RETURNED")
    orders = created.join(cancelled, how="left").join(returned, how="left")
    orders["IS_CANCELLED"] = orders["CANCELLED"].notna()
    orders = orders.fillna({"CANCELLED": 0.0, "RETURNED": 0.0})
    orders["NET"] = orders["GROSS"] - np.minimum(orders["CANCELLED"], orders["GROSS"]) - orders["RETURNED"]
    per_customer = orders.groupby(level="CUSTOMER_ID").agg(
        LAST=("ORDER_TS", "max"),
        FREQUENCY=("IS_CANCELLED", lambda s: int((~s).sum())),
        MONETARY=("NET", "sum"),
    )
    per_customer["RECENCY_DAYS"] = (reference - per_customer["LAST"].dt.normalize()).dt.days
    per_customer["MONETARY"] = per_customer["MONETARY"].round(2)
    return per_customer[["RECENCY_DAYS", "FREQUENCY", "MONETARY"]].sort_index()


def processed(project: Path) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows(project, "SELECT CUSTOMER_ID, RECENCY_DAYS, FREQUENCY, MONETARY FROM PUBLIC.PROCESSED_DATA"),
        columns=["CUSTOMER_ID", "RECENCY_DAYS", "FREQUENCY", "MONETARY"],
    )
    return frame.set_index("CUSTOMER_ID").astype(float).sort_index()


def assert_segments_only_the_files_customers(project: Path, events: pd.DataFrame) -> None:
    expected, got = expected_rfm(events), processed(project)
    assert list(got.index) == list(expected.index)  # the file's buying customers, nobody else
    means = got.mean(), expected.mean()
    for column in ("RECENCY_DAYS", "FREQUENCY", "MONETARY"):
        assert means[0][column] == pytest.approx(means[1][column], rel=1e-9), column
    assert (got["RECENCY_DAYS"] == expected["RECENCY_DAYS"]).all()
    assert (got["FREQUENCY"] == expected["FREQUENCY"]).all()
    assert np.allclose(got["MONETARY"], expected["MONETARY"], atol=0.006)


def existing_tables(project: Path) -> set[str]:
    return {
        r[0]
        for r in rows(
            project, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'PUBLIC'"
        )
    }


@pytest.mark.slow
def test_fresh_clone_load_then_run_segments_only_the_users_customers(tmp_path: Path) -> None:
    events = user_history()
    assert (events["CUSTOMER_ID"].str.startswith("ACME").sum() / len(events)) > 0.9
    path = tmp_path / "acme_1998.csv"
    events.to_csv(path, index=False)
    project = make_project_copy(tmp_path / "p")

    result = kedro_run(
        project, "--pipeline", "load_events", f"--params=events_file={path}"
    )  # no other parameter
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seeding" not in result.stdout + result.stderr and "Removed the demo" not in result.stdout
    assert rows(project, "SELECT COUNT(*), COUNT_IF(SOURCE_FILE LIKE 'demo://%') FROM PUBLIC.RAW_DATA") == [
        (len(events), 0)
    ]

    result = kedro_run(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA") == len(events)  # not seeded
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA") == len(events)  # all accepted
    assert_segments_only_the_files_customers(project, events)


@pytest.mark.slow
def test_first_user_load_removes_the_demo_and_everything_built_on_it(
    trained_template: Path, tmp_path: Path
) -> None:
    # brand-new clone after `kedro run`, which shows the demo (the same 400 customers as run() here)
    project = copy_project(trained_template, tmp_path / "p")
    demo_customers = scalar(project, "SELECT COUNT(*) FROM PUBLIC.PROCESSED_DATA")
    assert demo_customers > 300
    assert scalar(project, "SELECT COUNT_IF(SOURCE_FILE NOT LIKE 'demo://%') FROM PUBLIC.RAW_DATA") == 0
    assert set(DERIVED) <= existing_tables(project)

    events = user_history(n_customers=150, seed=7)
    path = tmp_path / "acme.parquet"
    events.to_parquet(path, index=False)
    with collect_records("customer_segmentation.demo.purge", logging.INFO) as seen:
        run(project, "load_events", events_file=str(path))
    lines = [r.getMessage() for r in seen]
    assert len(lines) == 1 and lines[0].startswith("Removed the demo before your first load")
    assert rows(project, "SELECT COUNT(*), COUNT_IF(SOURCE_FILE LIKE 'demo://%') FROM PUBLIC.RAW_DATA") == [
        (len(events), 0)
    ]
    assert not set(DERIVED) & existing_tables(project)
    assert "LOAD_HISTORY" in existing_tables(project)

    run(project)
    assert "DEMO_CLOCK" not in existing_tables(project)
    # ingestion's "now" is the wall clock again (UTC), not the demo's today
    stamp = scalar(project, "SELECT MAX(UPDATED_AT) FROM PUBLIC.INGESTION_STATE")
    assert abs(stamp - datetime.now(UTC).replace(tzinfo=None)) < timedelta(hours=1)
    assert (
        scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA WHERE SOURCE_FILE LIKE 'demo://%'") == 0
    )
    assert (
        scalar(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS WHERE SOURCE_FILE LIKE 'demo://%'") == 0
    )
    assert_segments_only_the_files_customers(project, events)

    # a second file adds to the user's data; nothing is removed any more
    more = write_more(tmp_path)
    run(project, "load_events", events_file=str(more))
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA") == len(events) + 1
    assert "PROCESSED_DATA" in existing_tables(project)


def write_more(folder: Path) -> Path:
    path = folder / "more.csv"
    pd.DataFrame(
        [
            {
                "EVENT_ID": "MORE-1",
                "EVENT_TYPE": "ORDER_CREATED",
                "EVENT_TS": "1999-01-05 10:00:00",
                "CUSTOMER_ID": "ACME00001",
                "ORDER_ID": "M1",
                "PRODUCT_ID": "SKU-1",
                "CATEGORY": "Books",
                "QUANTITY": "1",
                "AMOUNT": "12.00",
                "CHANNEL": "web",
            }
        ]
    ).to_csv(path, index=False)
    return path


def test_raw_data_with_user_rows_is_never_seeded(tmp_path: Path) -> None:
    """A user's own RAW_DATA (contract columns only, no load stamps) is ingested as it is."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings
    from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS, append_pandas, create_table_sql

    project = make_project_copy(tmp_path / "p")
    events = user_history(n_customers=40, seed=3)
    warehouse.configure(WarehouseSettings.from_credentials({}, project / "data" / "warehouse"))
    try:
        session = warehouse.get_session()
        session.sql(create_table_sql("SEGMENTATION", "PUBLIC", "RAW_DATA", RAW_EVENT_COLUMNS)).collect()
        append_pandas(session, "RAW_DATA", events)
    finally:
        warehouse.close()
    run(project, "ingestion")  # demo enabled, embedded warehouse: only the RAW_DATA's content decides
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA") == len(events)
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA") == len(events)
