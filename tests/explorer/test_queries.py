"""The explorer's queries against independent computations (pandas over the demo's few hundred rows).

On the two-snapshot demo (read-only): the members' filters and sort, the feature contrast, the
trend, both paths of the Sankey, the orders, against pandas; hostile text as bound values; the
data version that the caches are keyed on, on a throw-away warehouse.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.explorer.segment_explorer import queries as q
from tests.explorer.conftest import point_warehouse_at

pytestmark = pytest.mark.integration

HOSTILE = [
    "O'Brien",
    "'; DROP TABLE PROCESSED_DATA; --",
    '" OR 1=1 --',
    "Ünïcødé 客户 🙂 \\ % _",
    "x" * 10_000,
]


@pytest.fixture(scope="module")
def demo(two_snapshots: Path) -> Any:
    """(session, catalog, PROCESSED_DATA and SEGMENT_HISTORY as pandas) of the two-snapshot demo."""
    from customer_segmentation import warehouse

    session = point_warehouse_at(two_snapshots)
    catalog = q.read_catalog(session)
    processed = session.table("PROCESSED_DATA").to_pandas()
    history = session.table("SEGMENT_HISTORY").to_pandas()
    yield session, catalog, processed, history
    warehouse.close()


def _main_channel(frame: pd.DataFrame) -> pd.Series:
    shares = frame[[c for c in frame.columns if c.startswith("SHARE_")]].astype(float)
    channel = shares.idxmax(axis=1).str.removeprefix("SHARE_").str.lower()  # first of equal shares
    return channel.where(shares.max(axis=1) > 0, "none")


def _expected(processed: pd.DataFrame, cat: q.Catalog, segment: int, flt: q.MemberFilter) -> set[str]:
    p = processed[processed["SEGMENT_ID"] == segment]
    keep = pd.Series(True, index=p.index)
    if flt.rfm_segments:
        keep &= p["RFM_SEGMENT"].isin(flt.rfm_segments)
    for column, (low, high) in (("R_SCORE", flt.r_score), ("F_SCORE", flt.f_score), ("M_SCORE", flt.m_score)):
        keep &= p[column].between(low, high)
    if flt.channels:
        keep &= _main_channel(p).isin(flt.channels)
    last = pd.to_datetime(p["LAST_ORDER_TS"]).dt.date
    if flt.last_order_from:
        keep &= last >= flt.last_order_from
    if flt.last_order_to:
        keep &= last <= flt.last_order_to
    if flt.min_value is not None:
        keep &= p[q.value_column(cat)] >= flt.min_value
    if flt.id_contains:
        keep &= p["CUSTOMER_ID"].str.upper().str.contains(flt.id_contains.upper(), regex=False)
    return set(p.loc[keep, "CUSTOMER_ID"])


def test_member_filters_select_what_pandas_selects(demo: Any) -> None:
    session, cat, processed, _ = demo
    biggest = int(processed["SEGMENT_ID"].value_counts().idxmax())
    p = processed[processed["SEGMENT_ID"] == biggest]
    second_rfm = p["RFM_SEGMENT"].value_counts().index[:2]
    channel = _main_channel(p).value_counts().index[0]
    middle = pd.to_datetime(p["LAST_ORDER_TS"]).dt.date.sort_values().iloc[len(p) // 2]
    some_id = str(p["CUSTOMER_ID"].iloc[3])
    filters = [
        q.MemberFilter(),
        q.MemberFilter(rfm_segments=tuple(second_rfm)),
        q.MemberFilter(r_score=(2, 4), m_score=(3, 5)),
        q.MemberFilter(channels=(channel,)),
        q.MemberFilter(last_order_from=middle),
        q.MemberFilter(last_order_to=middle, f_score=(1, 3)),
        q.MemberFilter(min_value=float(p["MONETARY"].median())),
        q.MemberFilter(id_contains=some_id[-3:].lower()),
    ]
    for flt in filters:
        expected = _expected(processed, cat, biggest, flt)
        count = q.member_count(session, cat, biggest, flt)
        found = q.members(session, cat, biggest, flt, "CUSTOMER_ID", False, 100_000)
        assert count == len(expected) and set(found["CUSTOMER_ID"]) == expected, flt
        assert len(found) == count
    assert len(expected) >= 1 and len(_expected(processed, cat, biggest, filters[0])) == len(p)


def test_members_are_sorted_and_limited_in_the_warehouse(demo: Any) -> None:
    session, cat, processed, _ = demo
    segment = int(processed["SEGMENT_ID"].iloc[0])
    top = q.members(session, cat, segment, q.MemberFilter(), "MONETARY", True, 10)
    p = processed[processed["SEGMENT_ID"] == segment].sort_values(
        ["MONETARY", "CUSTOMER_ID"], ascending=[False, True]
    )
    assert list(top["CUSTOMER_ID"]) == list(p["CUSTOMER_ID"].head(10))
    assert list(top.columns[:3]) == ["CUSTOMER_ID", "SEGMENT_ID", "SEGMENT_LABEL"]
    assert {"MAIN_CHANNEL", "LAST_ORDER", "RFM_SCORE"} <= set(top.columns)
    assert list(top["MAIN_CHANNEL"]) == list(_main_channel(p.head(10)))


def test_identifiers_and_sort_keys_are_checked(demo: Any) -> None:
    session, cat, _, _ = demo
    for sort in ("MONETARY; DROP TABLE PROCESSED_DATA", "monetary", "SEGMENT_LABEL", ""):
        with pytest.raises(q.ExplorerError, match="Cannot sort by"):
            q.members(session, cat, 0, q.MemberFilter(), sort, True, 10)
    for bad in ("PROCESSED_DATA; DROP", '"X"', "a.b", "", None, "1X"):
        with pytest.raises(q.ExplorerError):
            q.identifier(bad)
    assert q.parse_location("retail.segmentation") == ("RETAIL", "SEGMENTATION")
    with pytest.raises(q.ExplorerError, match="DATABASE.SCHEMA"):
        q.parse_location("RETAIL")
    with pytest.raises(q.ExplorerError, match="within 1..5"):
        q.member_where(cat, 0, q.MemberFilter(r_score=(0, 9)))
    with pytest.raises(q.ExplorerError, match="whole number"):
        q.change_where(cat, ("1; DROP TABLE SEGMENT_CHANGES",), ())


def test_hostile_text_is_a_value(demo: Any) -> None:
    session, cat, processed, _ = demo
    tables = session.sql("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES").collect()[0][0]
    segment = int(processed["SEGMENT_ID"].iloc[0])
    for text in HOSTILE:
        assert q.customer(session, cat, text) == {}
        assert q.customer_history(session, cat, text).empty
        assert q.customer_orders(session, cat, text).empty
        assert q.customer_value(session, cat, text) == {}
        flt = q.MemberFilter(id_contains=text, rfm_segments=(text,))
        assert q.member_count(session, cat, segment, flt) == 0
        assert q.members(session, cat, segment, flt, "CUSTOMER_ID", True, 5).empty
        label_cat = dataclasses.replace(
            cat, columns={**cat.columns, "SEGMENT_CHANGES": ("CUSTOMER_ID", "FROM_SEGMENT", "TO_SEGMENT")}
        )
        assert q.change_count(session, label_cat, (text,), (text,)) == 0
    assert session.sql("SELECT COUNT(*) FROM PROCESSED_DATA").collect()[0][0] == len(processed)
    assert session.sql("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES").collect()[0][0] == tables


def test_feature_contrast_matches_pandas(demo: Any) -> None:
    session, cat, processed, _ = demo
    segment = int(processed["SEGMENT_ID"].value_counts().idxmin())
    cards = q.segment_cards(session, cat)
    profile = cards[cards["SEGMENT_ID"] == segment].iloc[0]
    stats = q.feature_stats(session, cat)
    frame = q.contrast(stats, segment, profile)
    features = q.feature_columns(cat)
    assert set(frame["FEATURE"]) == set(features) and "R_SCORE" not in features
    members = processed[processed["SEGMENT_ID"] == segment]
    for row in frame.itertuples():
        everyone = processed[row.FEATURE].astype(float)
        mine = members[row.FEATURE].astype(float)
        # the medians are SEGMENT_PROFILES' (the latest snapshot is PROCESSED_DATA's)
        assert row.SEGMENT_MEDIAN == pytest.approx(mine.median(), nan_ok=True)
        assert row.SEGMENT_MEAN == pytest.approx(mine.mean(), nan_ok=True)
        assert row.ALL_MEAN == pytest.approx(everyone.mean(), nan_ok=True)
        sd = everyone.std(ddof=0)
        if sd > 0:
            assert row.SD_DIFF == pytest.approx(
                (mine.mean() - everyone.mean()) / sd, rel=1e-7, abs=1e-9, nan_ok=True
            )
    base = q.base_stats(stats).set_index("FEATURE")
    for feature in features:  # all customers' figures, combined from the segments' (total variance)
        values = processed[feature].astype(float)
        assert base.loc[feature, "ALL_MEAN"] == pytest.approx(values.mean(), rel=1e-9, nan_ok=True)
        assert base.loc[feature, "ALL_SD"] == pytest.approx(
            values.std(ddof=0), rel=1e-7, abs=1e-9, nan_ok=True
        )
    ordered = frame["SD_DIFF"].abs().dropna().tolist()
    assert ordered == sorted(ordered, reverse=True)
    # the top features the monitoring pipeline named are the top of the contrast
    top = [profile[f"TOP_FEATURE_{i}"] for i in (1, 2, 3) if f"TOP_FEATURE_{i}" in profile]
    assert list(frame["FEATURE"].head(len(top))) == top


def test_trend_and_snapshot_dates_match_the_history(demo: Any) -> None:
    session, cat, processed, history = demo
    dates = q.snapshots(session, cat)
    assert dates == sorted({pd.Timestamp(d).date() for d in history["SNAPSHOT_DATE"]}, reverse=True)
    assert len(dates) == 2
    segment = int(processed["SEGMENT_ID"].iloc[0])
    trend = q.segment_trend(session, cat, segment).set_index("SNAPSHOT_DATE")
    for day, rows in history.groupby(history["SNAPSHOT_DATE"].map(lambda d: pd.Timestamp(d).date())):
        mine = rows[rows["SEGMENT_ID"] == segment]
        assert trend.loc[day, "CUSTOMERS"] == len(mine)
        assert trend.loc[day, "NET_REVENUE"] == pytest.approx(mine["MONETARY"].sum(), abs=0.05)
        assert trend.loc[day, "CUSTOMER_SHARE"] == pytest.approx(len(mine) / len(rows))


def test_sankey_from_history_equals_the_stored_migrations(demo: Any) -> None:
    session, cat, _, history = demo
    before, after = sorted(q.snapshots(session, cat))
    stored = q.migrations_between(session, cat, before, after)
    without = dataclasses.replace(cat, columns={t: c for t, c in cat.columns.items() if t != q.MIGRATIONS})
    computed = q.migrations_between(session, without, before, after)
    key = ["FROM_SEGMENT_ID", "FROM_SEGMENT", "TO_SEGMENT_ID", "TO_SEGMENT"]
    pd.testing.assert_frame_equal(
        stored.sort_values(key).reset_index(drop=True),
        computed.sort_values(key).reset_index(drop=True),
        check_dtype=False,
        atol=0.01,
    )
    assert stored["CUSTOMERS"].sum() == history["CUSTOMER_ID"].nunique()
    # a pair without stored migrations is computed from the history: at a date without snapshot, all are gone
    assert q.migrations_between(session, cat, after, date(2000, 1, 1))["CUSTOMERS"].sum() == len(
        history[history["SNAPSHOT_DATE"].map(lambda d: pd.Timestamp(d).date()) == after]
    )


def test_orders_add_up_to_the_customers_features(demo: Any) -> None:
    session, cat, processed, _ = demo
    buyers = processed[processed["FREQUENCY"] > 1].sort_values("CUSTOMER_ID").head(5)
    for row in buyers.itertuples():
        orders = q.customer_orders(session, cat, row.CUSTOMER_ID, limit=100_000)
        assert orders["NET"].sum() == pytest.approx(float(row.MONETARY), abs=0.01)
        assert len(orders) >= int(row.FREQUENCY)  # FREQUENCY leaves the cancelled orders out
        assert list(orders["ORDER_DATE"]) == sorted(orders["ORDER_DATE"], reverse=True)
        found = q.customer(session, cat, row.CUSTOMER_ID)
        assert found["SEGMENT_LABEL"] == row.SEGMENT_LABEL and found["MONETARY"] == pytest.approx(
            row.MONETARY
        )


def test_active_model_tells_in_use_newest_and_pinned() -> None:
    versions = pd.DataFrame({"VERSION": ["v3", "v2", "v1"], "STATUS": ["RETIRED", "READY", "READY"]})
    assert q.active_model(versions, {"model_version": "v2"}) == {
        "in_use": "v2",
        "newest_ready": "v2",
        "pinned": None,
        "pinned_or_stale": False,
        "scored": True,
    }
    pinned = q.active_model(versions, {"model_version": "v1"}, pinned="v1")
    assert pinned["in_use"] == "v1" and pinned["pinned_or_stale"] and pinned["pinned"] == "v1"
    assert q.active_model(versions, {})["in_use"] == "v2"  # trained, never scored: the newest READY


def test_data_version_changes_with_every_run(warehouse_session: Any) -> None:
    session = warehouse_session
    empty = q.data_version(session)
    assert empty == q.data_version(session) and q.read_catalog(session).columns == {}
    session.sql(
        "CREATE TABLE SEGMENT_SUMMARY (RUN_ID VARCHAR, SEGMENT_ID NUMBER, CUSTOMERS NUMBER)"
    ).collect()
    session.sql("INSERT INTO SEGMENT_SUMMARY VALUES ('run-1', 0, 10)").collect()
    first = q.data_version(session)
    assert first != empty and "SEGMENT_SUMMARY=run-1" in first
    session.sql("INSERT INTO SEGMENT_SUMMARY VALUES ('run-1', 1, 5)").collect()
    more = q.data_version(session)
    assert more != first  # a row count changed
    session.sql("UPDATE SEGMENT_SUMMARY SET RUN_ID = 'run-2'").collect()
    rerun = q.data_version(session)
    assert rerun != more and "SEGMENT_SUMMARY=run-2" in rerun  # same rows, a new run
    assert q.data_version(session) == rerun  # nothing written: the caches stay
    cat = q.read_catalog(session)
    assert cat.has("SEGMENT_SUMMARY", "RUN_ID") and cat.rows("SEGMENT_SUMMARY") == 2
    with pytest.raises(q.EmptyState, match="No model yet"):
        q.model_versions(session, cat)


def test_csv_and_markdown_helpers() -> None:
    pytest.importorskip("streamlit")
    from customer_segmentation.explorer.segment_explorer import common

    frame = pd.DataFrame(
        {
            "CUSTOMER_ID": ["C-1", 'Ünï,"q"'],
            "MONETARY": [1.005, 2.0],
            "P_ALIVE": [0.123456, np.nan],
            "LAST_ORDER": [date(2026, 1, 2), None],
        }
    )
    text = common.csv_bytes(frame).decode("utf-8")
    assert text.splitlines() == [
        "CUSTOMER_ID,MONETARY,P_ALIVE,LAST_ORDER",
        "C-1,1.0,0.1235,2026-01-02",
        '"Ünï,""q""",2.0,,',
    ]
    assert "\r" not in text
    read = pd.read_csv(pd.io.common.StringIO(text))
    assert list(read["CUSTOMER_ID"]) == ["C-1", 'Ünï,"q"']
    assert (
        common.escape("[x](javascript:alert(1)) **b** 1. a")
        == "\\[x\\](javascript\\:alert(1)) \\*\\*b\\*\\* 1. a"
    )
    assert common.escape("1. first") == "1\\. first" and common.escape("- item") == "\\- item"
    assert common.escape("a" * 300, 10) == "a" * 10 + "..."
    assert common.slug("At risk (more recent)") == "At_risk_more_recent"
    assert (
        common.code("A--B") == "`A--B`"
        and common.code("x`y") == "``x`y``"
        and common.code("`a") == "`` `a ``"
    )
