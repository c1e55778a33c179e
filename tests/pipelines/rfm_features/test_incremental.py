"""Incremental features equal a full recompute: histories of other shapes than the demo, appended batches.

Each scenario loads a base history into a TRANSFORMED_DATA-like table, builds the aggregates with
the full run's node, then appends batches (late events of old customers and old orders, new
customers, returns and cancellations of old orders, page views) and updates the aggregates with
the daily node. After every step CUSTOMER_FEATURES from the aggregates is compared, column by
column and customer by customer, with ``compute_customer_features`` recomputed from scratch on
the same table, and a few columns with an independent pandas computation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io.core import DatasetError

from customer_segmentation.datasets import CustomerAggregatesDataset
from customer_segmentation.pipelines.rfm_features.nodes import (
    compute_customer_features,
    customer_features_from_aggregates,
    rebuild_customer_aggregates,
    update_customer_aggregates,
)

CHANNELS = ["web", "app", "store"]
PARAMS = {"reference_date": None, "trend_window_days": 90, "channels": CHANNELS}
COLUMNS = {
    "RECORD_ID": "VARCHAR",
    "EVENT_ID": "VARCHAR",
    "EVENT_TYPE": "VARCHAR",
    "EVENT_TS": "TIMESTAMP_NTZ",
    "CUSTOMER_ID": "VARCHAR",
    "ORDER_ID": "VARCHAR",
    "CATEGORY": "VARCHAR",
    "AMOUNT": "NUMBER(12,2)",
    "CHANNEL": "VARCHAR",
    "LOADED_AT": "TIMESTAMP_NTZ",
    "INGESTION_RUN_ID": "VARCHAR",
}
INT_COLUMNS = {
    "RECENCY_DAYS",
    "FREQUENCY",
    "TENURE_DAYS",
    "DISTINCT_CATEGORIES",
    "R_SCORE",
    "F_SCORE",
    "M_SCORE",
}
TEXT_COLUMNS = {"RFM_SCORE", "RFM_SEGMENT", "FIRST_ORDER_TS", "LAST_ORDER_TS", "REFERENCE_DATE"}
START = datetime(2024, 1, 1)


class History:
    """Builds events batch by batch; keeps every event in pandas for the independent check."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.events: list[dict[str, Any]] = []
        self.orders: list[tuple[str, str, datetime]] = []  # (customer, order, created)
        self._n = 0

    def _event(self, kind: str, ts: datetime, customer: str, order: str | None, amount: float | None) -> dict:
        self._n += 1
        return {
            "RECORD_ID": f"r{self._n}",
            "EVENT_ID": f"e{self._n}",
            "EVENT_TYPE": kind,
            "EVENT_TS": ts,
            "CUSTOMER_ID": customer,
            "ORDER_ID": order,
            "CATEGORY": str(self.rng.choice(["A", "B", "C", "D", None])) if order else None,
            "AMOUNT": amount,
            "CHANNEL": str(self.rng.choice(CHANNELS + ["unknown"])),
        }

    def order(self, customer: str, ts: datetime, amount: float, lines: int = 1) -> list[dict]:
        order = f"O{len(self.orders) + 1}"
        self.orders.append((customer, order, ts))
        return [self._event("ORDER_CREATED", ts, customer, order, amount) for _ in range(lines)]

    def follow_up(self, kind: str, index: int, delay_days: int, amount: float) -> list[dict]:
        customer, order, created = self.orders[index]
        return [self._event(kind, created + timedelta(days=delay_days), customer, order, amount)]

    def view(self, customer: str, ts: datetime) -> list[dict]:
        return [self._event("PAGE_VIEW", ts, customer, None, None)]


def _literal(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NULL"
    if isinstance(value, datetime):
        return f"'{value:%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value))


def append(session: Any, history: History, rows: list[dict], loaded_at: datetime | None, run_id: str) -> None:
    """Append a batch to the TD table, stamped like ingestion stamps it."""
    for row in rows:
        row["LOADED_AT"], row["INGESTION_RUN_ID"] = loaded_at, run_id
    history.events.extend(rows)
    for start in range(0, len(rows), 500):
        values = ", ".join(
            "(" + ", ".join(_literal(r[c]) for c in COLUMNS) + ")" for r in rows[start : start + 500]
        )
        session.sql(f"INSERT INTO TD ({', '.join(COLUMNS)}) VALUES {values}").collect()


@pytest.fixture
def td(warehouse_session: Any) -> Any:
    ddl = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
    warehouse_session.sql(f"CREATE TABLE TD ({ddl})").collect()
    return warehouse_session.table("TD")


@pytest.fixture
def aggregates() -> CustomerAggregatesDataset:
    return CustomerAggregatesDataset(
        table_name="CUSTOMER_AGGREGATES",
        daily_table="CUSTOMER_DAILY_SPEND",
        state_table="CUSTOMER_AGGREGATES_STATE",
        credentials={},
    )


def run_step(td: Any, dataset: CustomerAggregatesDataset, params: dict, full: bool = False) -> str:
    """One features step as the pipeline runs it; returns the update mode."""
    node = rebuild_customer_aggregates if full else update_customer_aggregates
    update = node(td, dataset.load(), params)
    dataset.save(update)
    return update.mode


def features(td: Any, dataset: CustomerAggregatesDataset, params: dict) -> pd.DataFrame:
    frame = customer_features_from_aggregates(td, dataset.load(), params).to_pandas()
    return frame.set_index("CUSTOMER_ID").sort_index()


def assert_same_features(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    assert list(got.index) == list(expected.index)
    for column in expected.columns:
        a, b = got[column], expected[column]
        if column in INT_COLUMNS:
            assert (a.astype("int64") == b.astype("int64")).all(), column
        elif column in TEXT_COLUMNS:
            assert (a.astype(str) == b.astype(str)).all(), column
        else:
            assert np.allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True), (
                f"{column}: {(a - b).abs().max()}"
            )


def pandas_features(events: list[dict], ref: datetime, window: int = 90) -> pd.DataFrame:
    """FREQUENCY, MONETARY, RECENCY_DAYS, SPEND_LAST_90D, DISTINCT_CATEGORIES, M_SCORE: plain pandas."""
    ev = pd.DataFrame(events)
    ev = ev[ev["EVENT_TS"] < ref]
    ev["AMOUNT"] = ev["AMOUNT"].astype(float).fillna(0.0)
    rows = []
    for (customer, order), g in ev[ev["ORDER_ID"].notna()].groupby(["CUSTOMER_ID", "ORDER_ID"]):
        created = g[g["EVENT_TYPE"] == "ORDER_CREATED"]
        if created.empty:
            continue
        gross = created["AMOUNT"].sum()
        cancelled = g.loc[g["EVENT_TYPE"] == "ORDER_CANCELLED", "AMOUNT"].sum()
        returned = g.loc[g["EVENT_TYPE"] == "ORDER_RETURNED", "AMOUNT"].sum()
        rows.append(
            {
                "CUSTOMER_ID": customer,
                "TS": created["EVENT_TS"].min(),
                "KEPT": not (g["EVENT_TYPE"] == "ORDER_CANCELLED").any(),
                "NET": gross - min(cancelled, gross) - returned,
            }
        )
    orders = pd.DataFrame(rows)
    recent = ref - timedelta(days=window)
    out = orders.groupby("CUSTOMER_ID").agg(
        FREQUENCY=("KEPT", "sum"),
        MONETARY=("NET", "sum"),
        LAST=("TS", "max"),
    )
    out["RECENCY_DAYS"] = [(ref.date() - ts.date()).days for ts in out["LAST"]]
    out["SPEND_LAST_90D"] = orders[orders["TS"] >= recent].groupby("CUSTOMER_ID")["NET"].sum()
    out["SPEND_LAST_90D"] = out["SPEND_LAST_90D"].fillna(0.0).round(2)
    out["MONETARY"] = out["MONETARY"].round(2)
    lines = ev[ev["EVENT_TYPE"] == "ORDER_CREATED"]
    out["DISTINCT_CATEGORIES"] = lines.groupby("CUSTOMER_ID")["CATEGORY"].nunique()
    # ntile(5) over MONETARY ascending, then CUSTOMER_ID: the first n % 5 tiles get one extra row
    ranked = out.reset_index().sort_values(["MONETARY", "CUSTOMER_ID"]).reset_index(drop=True)
    n = len(ranked)
    sizes = [n // 5 + (1 if i < n % 5 else 0) for i in range(5)]
    ranked["M_SCORE"] = np.repeat(np.arange(1, 6), sizes)
    out["M_SCORE"] = ranked.set_index("CUSTOMER_ID")["M_SCORE"]
    return out.sort_index()


def check_against_pandas(got: pd.DataFrame, history: History) -> None:
    ref = pd.Timestamp(got["REFERENCE_DATE"].iloc[0]).to_pydatetime()
    expected = pandas_features(history.events, ref)
    assert list(got.index) == list(expected.index)
    for column in ("FREQUENCY", "RECENCY_DAYS", "DISTINCT_CATEGORIES", "M_SCORE"):
        assert (got[column].astype("int64") == expected[column].astype("int64")).all(), column
    for column in ("MONETARY", "SPEND_LAST_90D"):
        assert np.allclose(got[column].astype(float), expected[column].astype(float), atol=1e-6), column


def base_history(history: History, customers: int, one_time_share: float) -> list[dict]:
    """Mostly one-time buyers, a dominant customer, ties (same day, same amount), long gaps."""
    rng = history.rng
    rows: list[dict] = []
    for i in range(customers):
        cid = f"C{i:04d}"
        if rng.random() < one_time_share:
            day = int(rng.integers(0, 600))
            rows += history.order(cid, START + timedelta(days=day, hours=int(rng.integers(0, 24))), 25.0)
        else:
            first = int(rng.integers(0, 300))
            for k in range(int(rng.integers(2, 6))):
                gap = int(rng.choice([1, 30, 400]))  # long gaps too
                ts = START + timedelta(days=first + k * gap, minutes=int(rng.integers(0, 1440)))
                rows += history.order(cid, ts, float(rng.integers(1, 40) * 5), lines=int(rng.integers(1, 3)))
        if rng.random() < 0.2:
            rows += history.view(cid, START + timedelta(days=int(rng.integers(0, 600))))
    # ties: ten customers with the very same single order
    for i in range(10):
        rows += history.order(f"T{i:02d}", START + timedelta(days=500, hours=12), 60.0)
    # one dominant customer: 150 orders over two years
    for k in range(150):
        rows += history.order("BIG", START + timedelta(days=4 * k, hours=9), float(100 + k))
    # some cancellations and returns in the base itself
    for index in rng.choice(len(history.orders), size=len(history.orders) // 10, replace=False):
        kind = "ORDER_CANCELLED" if rng.random() < 0.5 else "ORDER_RETURNED"
        rows += history.follow_up(kind, int(index), int(rng.integers(0, 20)), 10.0)
    return rows


def daily_batch(history: History, day: int, new_customers: int, prefix: str) -> list[dict]:
    """New orders of old customers, late events of old orders, new customers, a late (back-dated) order."""
    rng = history.rng
    rows: list[dict] = []
    now = START + timedelta(days=day)
    old = sorted({c for c, _, _ in history.orders})
    for cid in rng.choice(old, size=15, replace=False):
        rows += history.order(str(cid), now + timedelta(hours=int(rng.integers(0, 20))), 45.0)
    for index in rng.choice(len(history.orders) - 15, size=12, replace=False):  # old orders
        kind = ["ORDER_CANCELLED", "ORDER_RETURNED", "ORDER_RETURNED"][int(rng.integers(0, 3))]
        customer, order, created = history.orders[int(index)]
        ts = max(created, now - timedelta(days=1))
        rows.append(history._event(kind, ts, customer, order, float(rng.integers(1, 30))))  # noqa: SLF001
    for i in range(new_customers):
        rows += history.order(f"{prefix}{i:03d}", now + timedelta(hours=i % 24), 25.0)
    # an old customer's order that happened long ago but was loaded only now
    rows += history.order(str(old[0]), START + timedelta(days=3), 500.0)
    rows += history.view(str(old[1]), now)
    rows += history.order("BIG", now + timedelta(hours=2), 1000.0)
    return rows


@pytest.mark.parametrize(("seed", "customers", "one_time_share"), [(1, 300, 0.85), (7, 120, 0.4)])
@pytest.mark.slow
def test_incremental_features_equal_a_full_recompute(
    td: Any, aggregates: CustomerAggregatesDataset, seed: int, customers: int, one_time_share: float
) -> None:
    history = History(seed)
    session = td.session
    append(session, history, base_history(history, customers, one_time_share), datetime(2025, 9, 1), "run-1")
    assert run_step(td, aggregates, PARAMS, full=True) == "rebuild"
    assert_same_features(
        features(td, aggregates, PARAMS),
        compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index(),
    )

    for step, day in enumerate((620, 621, 700), start=2):
        rows = daily_batch(history, day, new_customers=8, prefix=f"N{step}_")
        append(session, history, rows, datetime(2025, 9, 1) + timedelta(days=step), f"run-{step}")
        assert run_step(td, aggregates, PARAMS) == "incremental"
        got = features(td, aggregates, PARAMS)
        expected = compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index()
        assert_same_features(got, expected)
        check_against_pandas(got, history)

    # a moved reference date: later than every event (aggregates used) and before the last ones
    # (the features fall back to all events); both equal the full recompute
    for reference in ("2026-03-15", "2025-06-01"):
        params = {**PARAMS, "reference_date": reference}
        got = features(td, aggregates, params)
        expected = compute_customer_features(td, params).to_pandas().set_index("CUSTOMER_ID").sort_index()
        assert_same_features(got, expected)
        check_against_pandas(got, history)


def _tables(session: Any) -> dict[str, pd.DataFrame]:
    out = {}
    for table, key in (
        ("CUSTOMER_AGGREGATES", ["CUSTOMER_ID"]),
        ("CUSTOMER_DAILY_SPEND", ["CUSTOMER_ID", "ORDER_DAY"]),
        ("CUSTOMER_AGGREGATES_STATE", ["WATERMARK"]),
    ):
        out[table] = session.table(table).to_pandas().sort_values(key).reset_index(drop=True)
    return out


def test_daily_without_new_events_changes_nothing(td: Any, aggregates: CustomerAggregatesDataset) -> None:
    history = History(3)
    session = td.session
    append(session, history, base_history(history, 80, 0.7), datetime(2025, 9, 1), "run-1")
    run_step(td, aggregates, PARAMS, full=True)
    append(session, history, daily_batch(history, 620, 5, "N"), datetime(2025, 9, 2), "run-2")
    assert run_step(td, aggregates, PARAMS) == "incremental"
    before = _tables(session)
    assert len(before["CUSTOMER_AGGREGATES_STATE"]) == 1
    for _ in range(2):
        assert run_step(td, aggregates, PARAMS) == "unchanged"
        after = _tables(session)
        for table, frame in before.items():
            pd.testing.assert_frame_equal(after[table], frame, check_exact=True)


def test_changed_old_rows_or_unstamped_rows_trigger_a_rebuild(
    td: Any, aggregates: CustomerAggregatesDataset
) -> None:
    """Rows that are not above the watermark (no LOADED_AT, a full refresh's restamp) cannot be told apart: rebuild."""
    history = History(5)
    session = td.session
    append(session, history, base_history(history, 60, 0.7), datetime(2025, 9, 1), "run-1")
    run_step(td, aggregates, PARAMS, full=True)
    append(session, history, daily_batch(history, 620, 3, "N"), None, "run-2")  # no LOADED_AT
    assert run_step(td, aggregates, PARAMS) == "rebuild"
    expected = compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index()
    assert_same_features(features(td, aggregates, PARAMS), expected)
    # a full refresh restamps every row with its run id (same rows, same LOADED_AT)
    session.sql("UPDATE TD SET INGESTION_RUN_ID = 'refresh'").collect()
    assert run_step(td, aggregates, PARAMS) == "rebuild"
    assert run_step(td, aggregates, PARAMS) == "unchanged"
    # another channel list changes the aggregate columns
    params = {**PARAMS, "channels": ["web", "marketplace"]}
    assert run_step(td, aggregates, params) == "rebuild"
    expected = compute_customer_features(td, params).to_pandas().set_index("CUSTOMER_ID").sort_index()
    assert_same_features(features(td, aggregates, params), expected)


@pytest.mark.parametrize(
    "older_layout",
    [
        # an older version also kept the kept orders' first and last timestamps
        [
            f"ALTER TABLE {t} ADD COLUMN {c} TIMESTAMP_NTZ"
            for t in ("CUSTOMER_AGGREGATES", "CUSTOMER_DAILY_SPEND")
            for c in ("FIRST_KEPT_TS", "LAST_KEPT_TS")
        ],
        # one before the customer-value rollup
        ["ALTER TABLE CUSTOMER_AGGREGATES DROP COLUMN REPEAT_NET_SPEND"],
    ],
)
def test_aggregates_of_an_older_layout_are_rebuilt_once(
    td: Any, aggregates: CustomerAggregatesDataset, older_layout: list[str]
) -> None:
    """Tables with columns this version does not write (or without ones it does) are rebuilt at the next
    daily run, not updated in place (stale columns would stay behind, missing ones fail the INSERT)."""
    history = History(9)
    session = td.session
    append(session, history, base_history(history, 50, 0.6), datetime(2025, 9, 1), "run-1")
    run_step(td, aggregates, PARAMS, full=True)
    for statement in older_layout:
        session.sql(statement).collect()
    append(session, history, daily_batch(history, 620, 3, "N"), datetime(2025, 9, 2), "run-2")
    assert run_step(td, aggregates, PARAMS) == "rebuild"
    stored = {*session.table("CUSTOMER_AGGREGATES").columns, *session.table("CUSTOMER_DAILY_SPEND").columns}
    assert not stored & {"FIRST_KEPT_TS", "LAST_KEPT_TS"} and "REPEAT_NET_SPEND" in stored
    expected = compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index()
    assert_same_features(features(td, aggregates, PARAMS), expected)
    append(session, history, daily_batch(history, 621, 2, "M"), datetime(2025, 9, 3), "run-3")
    assert run_step(td, aggregates, PARAMS) == "incremental"


def test_unstamped_history_then_stamped_batches_are_incremental(
    td: Any, aggregates: CustomerAggregatesDataset
) -> None:
    """A history loaded without LOADED_AT (a user's own RAW_DATA), then stamped daily loads."""
    history = History(13)
    session = td.session
    append(session, history, base_history(history, 60, 0.8), None, "run-1")
    assert run_step(td, aggregates, PARAMS, full=True) == "rebuild"
    assert aggregates.load().state.watermark is None
    append(session, history, daily_batch(history, 620, 4, "N"), datetime(2025, 9, 2), "run-2")
    assert run_step(td, aggregates, PARAMS) == "incremental"
    expected = compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index()
    got = features(td, aggregates, PARAMS)
    assert_same_features(got, expected)
    check_against_pandas(got, history)


class _CrashingSession:
    """The real session, except that a statement containing ``needle`` fails (a crash mid-update)."""

    def __init__(self, real: Any, needle: str) -> None:
        self._real, self._needle = real, needle

    def sql(self, text: str, *args: Any, **kwargs: Any) -> Any:
        if self._needle in text:
            raise RuntimeError("simulated crash")
        return self._real.sql(text, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("statement", ["INSERT INTO", "DELETE FROM"])
def test_a_crash_mid_update_leaves_the_previous_aggregates(
    td: Any, aggregates: CustomerAggregatesDataset, monkeypatch: pytest.MonkeyPatch, statement: str
) -> None:
    history = History(9)
    session = td.session
    append(session, history, base_history(history, 60, 0.7), datetime(2025, 9, 1), "run-1")
    run_step(td, aggregates, PARAMS, full=True)
    before = _tables(session)
    append(session, history, daily_batch(history, 620, 4, "N"), datetime(2025, 9, 2), "run-2")
    update = update_customer_aggregates(td, aggregates.load(), PARAMS)
    # the first such statement on CUSTOMER_AGGREGATES is inside the update's transaction
    crashing = _CrashingSession(session, f"{statement} {aggregates.fqn}")
    monkeypatch.setattr(CustomerAggregatesDataset, "session", property(lambda self: crashing))
    with pytest.raises(DatasetError, match="simulated crash"):
        aggregates.save(update)
    monkeypatch.undo()
    after = _tables(session)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(after[table], frame, check_exact=True)
    # the rerun applies the batch once
    assert run_step(td, aggregates, PARAMS) == "incremental"
    expected = compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index()
    assert_same_features(features(td, aggregates, PARAMS), expected)


def test_a_crash_mid_rebuild_makes_the_next_run_rebuild(
    td: Any, aggregates: CustomerAggregatesDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History(11)
    session = td.session
    append(session, history, base_history(history, 40, 0.7), datetime(2025, 9, 1), "run-1")
    run_step(td, aggregates, PARAMS, full=True)
    append(session, history, daily_batch(history, 620, 4, "N"), datetime(2025, 9, 2), "run-2")
    update = rebuild_customer_aggregates(td, aggregates.load(), PARAMS)
    crashing = _CrashingSession(session, "INSERT INTO " + aggregates._fqn("CUSTOMER_AGGREGATES_STATE"))  # noqa: SLF001
    monkeypatch.setattr(CustomerAggregatesDataset, "session", property(lambda self: crashing))
    with pytest.raises(DatasetError, match="simulated crash"):
        aggregates.save(update)
    monkeypatch.undo()
    assert aggregates.load().state is None
    assert run_step(td, aggregates, PARAMS) == "rebuild"
    expected = compute_customer_features(td, PARAMS).to_pandas().set_index("CUSTOMER_ID").sort_index()
    assert_same_features(features(td, aggregates, PARAMS), expected)
