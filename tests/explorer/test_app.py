"""The explorer's pages through streamlit.testing's AppTest, on real embedded warehouses.

Three warehouses: the demo with two snapshots (``two_snapshots``), the demo after one `kedro run`
(``trained_project``: one snapshot) and an empty one (no model). Each page must render without an
exception or error message, and what it shows is compared with the warehouse.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.explorer.conftest import PAGES, open_page, page_text, rows

pytest.importorskip("streamlit", reason="the explorer extra: pip install -e '.[explorer]'")
pytestmark = pytest.mark.integration

HOSTILE_IDS = [
    "O'Brien",
    '"; DROP TABLE PROCESSED_DATA; --',
    "'; DROP TABLE PROCESSED_DATA; --",
    "C-1' OR '1'='1",
    "Ünïcødé 客户 🙂 \\ % _",
    "x" * 10_000,
]


def _plain(text: str) -> str:
    """Markdown source as the reader sees it (bold markers and backslash escapes removed)."""
    return re.sub(r"\\(.)", r"\1", re.sub(r"(?<!\\)\*\*", "", text))


def test_every_page_renders_on_the_demo(two_snapshots: Path, app: Any) -> None:
    at = app(two_snapshots)
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    profiles = rows("SELECT SEGMENT_LABEL, CUSTOMERS, SUGGESTED_ACTION, SNAPSHOT_DATE FROM SEGMENT_PROFILES")
    overview = _plain(page_text(at))
    total = sum(int(r[1]) for r in profiles)
    assert f"{total:,} customers in {len(profiles)} segments" in overview
    assert f"Snapshot {profiles[0][3]}" in overview
    for label, customers, action, _ in profiles:
        assert label in [s.value for s in at.subheader]
        assert f"{int(customers):,} customers" in overview and action in overview
    version = rows("SELECT MODEL_VERSION FROM PROCESSED_DATA LIMIT 1")[0][0]
    assert f"Model {version}" in overview
    status = rows("SELECT STATUS FROM SEGMENT_DRIFT ORDER BY MEASURED_AT DESC LIMIT 1")[0][0]
    assert f"Drift status {status}" in overview
    # the customer-value pipeline runs in `kedro run` and `daily`: its figures are on every segment card
    assert rows(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'PROCESSED_DATA' AND COLUMN_NAME = 'CLV'"
    )[0][0]
    assert "No customer value yet" not in overview
    assert overview.count("median CLV") == len(profiles)
    for label, median_clv, share in rows(
        "SELECT SEGMENT_LABEL, MEDIAN_CLV, EXPECTED_REVENUE_SHARE FROM SEGMENT_PROFILES"
    ):
        assert f"median CLV {float(median_clv):,.0f}" in overview, label
        assert f"{100 * float(share):.1f}% of expected revenue" in overview, label

    for page in PAGES:
        open_page(at, page)
        assert page_text(at), page

    open_page(at, "movements")
    text = _plain(page_text(at))
    latest, changed = rows(
        "SELECT SNAPSHOT_DATE, COUNT(*) FROM SEGMENT_CHANGES GROUP BY 1 ORDER BY 1 DESC LIMIT 1"
    )[0]
    assert changed > 0 and f"{changed:,} changes published at {latest}" in text
    both = rows(
        "SELECT COUNT(DISTINCT CUSTOMER_ID) FROM SEGMENT_HISTORY WHERE SNAPSHOT_DATE IN "
        "(SELECT DISTINCT SNAPSHOT_DATE FROM SEGMENT_HISTORY ORDER BY 1 DESC LIMIT 2)",
    )[0][0]
    metrics = {m.label: int(m.value.replace(",", "")) for m in at.metric}
    assert sum(metrics.values()) == both  # stayed + changed + new + gone = everyone in either snapshot
    assert metrics["Changed segment"] == changed  # the feed is the label changes (docs/monitoring.md)

    open_page(at, "model_health")
    versions = rows("SELECT COUNT(*) FROM SEGMENTATION_MODELS")[0][0]
    runs = rows("SELECT COUNT(*) FROM SEGMENT_DRIFT")[0][0]
    tables = [d.value for d in at.dataframe]
    assert len(tables[0]) == versions and runs == 2
    assert any(len(t) == runs and "MAX_PSI" in t.columns for t in tables)
    assert "in use" in set(tables[0]["ROLE"])
    # the customer-value model's holdout report (stored with its version by the customer_value pipeline)
    health = _plain(page_text(at))
    assert "Holdout report" in health and "No customer value model yet" not in health
    import json

    metrics_json = rows("SELECT METRICS FROM CUSTOMER_VALUE_MODELS ORDER BY TRAINED_AT DESC LIMIT 1")[0][0]
    report = json.loads(metrics_json)["holdout"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Predicted repeat purchases"] == f"{report['predicted_purchases']:,.0f}"
    assert shown["Actual repeat purchases"] == f"{report['actual_purchases']:,.0f}"
    assert shown["Per-customer correlation"] == f"{report['correlation']:,.2f}"
    assert any("frequency" in t.columns and "predicted" in t.columns for t in tables)


def test_segment_page_shows_the_segment_and_its_members(two_snapshots: Path, app: Any) -> None:
    at = app(two_snapshots)
    at.run()
    first = next(b for b in at.button if b.label.startswith("Open "))  # the largest revenue share
    label = first.label.removeprefix("Open ")
    first.click().run()
    assert not at.exception and not at.error
    segment_id, customers = rows(
        "SELECT SEGMENT_ID, CUSTOMERS FROM SEGMENT_PROFILES WHERE SEGMENT_LABEL = ?", [label]
    )[0]
    assert at.selectbox(key="segment.choice").value == segment_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Customers"] == f"{int(customers):,}"
    members = next(d.value for d in at.dataframe if "CUSTOMER_ID" in d.value.columns)
    expected = rows("SELECT CUSTOMER_ID FROM PROCESSED_DATA WHERE SEGMENT_ID = ?", [segment_id])
    assert set(members["CUSTOMER_ID"]) == {r[0] for r in expected} and len(members) == customers
    assert (members["SEGMENT_ID"] == segment_id).all()
    apart = next(d.value for d in at.dataframe if "SD_DIFF" in d.value.columns)
    assert {"RECENCY_DAYS", "FREQUENCY", "MONETARY"} <= set(apart["FEATURE"])
    assert "Size and revenue over snapshots" in page_text(at)


def test_member_filters_change_the_table(
    two_snapshots: Path, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app(two_snapshots)
    at.switch_page(PAGES["segment"]).run()
    segment_id = at.selectbox(key="segment.choice").value
    prefix = f"members.{segment_id}"

    def table() -> Any:
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        return next(d.value for d in at.dataframe if "CUSTOMER_ID" in d.value.columns)

    everyone = table()
    rfm = at.multiselect(key=f"{prefix}.rfm")
    assert len(rfm.options) > 1  # the demo's segments mix classic RFM segments
    chosen = rfm.options[-1]  # the rarest classic segment of this segment
    rfm.set_value([chosen]).run()
    filtered = table()
    expected = rows(
        "SELECT COUNT(*) FROM PROCESSED_DATA WHERE SEGMENT_ID = ? AND RFM_SEGMENT = ?",
        [segment_id, chosen],
    )[0][0]
    assert 0 < len(filtered) == expected < len(everyone)
    assert set(filtered["RFM_SEGMENT"]) == {chosen}
    rfm.set_value([]).run()

    low, high = int(everyone["F_SCORE"].min()), int(everyone["F_SCORE"].max())
    assert low < high  # the demo's segments mix F scores
    at.slider(key=f"{prefix}.f").set_value((low + 1, high)).run()
    filtered = table()
    assert len(filtered) == int((everyone["F_SCORE"] > low).sum()) < len(everyone)
    assert filtered["F_SCORE"].between(low + 1, high).all()
    at.slider(key=f"{prefix}.f").set_value((1, 5)).run()

    at.selectbox(key=f"{prefix}.sort").set_value("MONETARY").run()
    at.toggle(key=f"{prefix}.desc").set_value(False).run()
    ascending = table()
    assert ascending["MONETARY"].is_monotonic_increasing and len(ascending) == len(everyone)

    some_id = str(everyone["CUSTOMER_ID"].iloc[0])
    at.text_input(key=f"{prefix}.id").set_value(some_id[-4:].lower()).run()
    found = table()
    assert some_id in set(found["CUSTOMER_ID"])
    assert all(some_id[-4:].upper() in c.upper() for c in found["CUSTOMER_ID"])

    for hostile in HOSTILE_IDS:
        at.text_input(key=f"{prefix}.id").set_value(hostile).run()
        assert len(table()) == 0
        assert f"**0** of {len(everyone):,} members match" in page_text(at)
    assert rows("SELECT COUNT(*) FROM PROCESSED_DATA")[0][0] > len(everyone)


def test_downloads_are_bounded(two_snapshots: Path, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(two_snapshots)
    monkeypatch.setenv("SEGMENT_EXPLORER_TABLE_ROWS", "20")
    at.switch_page(PAGES["segment"]).run()
    members = next(d.value for d in at.dataframe if "CUSTOMER_ID" in d.value.columns)
    assert len(members) == 20 and "the first 20 by" in page_text(at)
    prepare = next(b for b in at.button if b.label.startswith("Prepare CSV"))
    count = int(re.search(r"\(([\d,]+) rows\)", prepare.label)[1].replace(",", ""))
    assert count > 20
    prepare.click().run()
    assert not at.exception and not at.error
    assert [b.label for b in at.get("download_button")] == [f"Download CSV ({count:,} rows)"]

    monkeypatch.setenv("SEGMENT_EXPLORER_MAX_DOWNLOAD_ROWS", "10")
    at.run()
    assert not at.get("download_button")
    warning = " ".join(w.value for w in at.warning)
    assert "more than explorer.max_download_rows (10)" in warning
    assert "`kedro run --pipelines export_segments`" in warning


def test_unknown_customer_shows_the_message(two_snapshots: Path, app: Any) -> None:
    """Unknown and hostile ids (quotes, SQL, unicode, 10 kB) are looked up as values: a message, no harm."""
    from customer_segmentation.explorer.segment_explorer.common import code

    at = app(two_snapshots)
    tables = rows("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES")[0][0]
    before = rows("SELECT COUNT(*) FROM PROCESSED_DATA")[0][0]
    at.switch_page(PAGES["customer"]).run()
    for hostile in HOSTILE_IDS:
        at.text_input(key="customer.id").set_value(hostile).run()
        assert not at.exception and not at.error, hostile[:40]
        (warning,) = [w.value for w in at.warning]
        assert warning.startswith("No customer ") and "in the latest snapshot (PROCESSED_DATA)" in warning
        assert warning.startswith(f"No customer {code(hostile, 80)} in the latest")  # shown verbatim
        assert not at.dataframe  # no history, no orders: nothing matched
    assert rows("SELECT COUNT(*) FROM PROCESSED_DATA")[0][0] == before
    assert rows("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES")[0][0] == tables


def test_customer_page_shows_segment_history_and_orders(two_snapshots: Path, app: Any) -> None:
    at = app(two_snapshots)
    # a customer who changed segment at the latest snapshot: two different labels in the history
    customer, before, after = rows(
        "SELECT CUSTOMER_ID, FROM_SEGMENT, TO_SEGMENT FROM SEGMENT_CHANGES "
        "WHERE SNAPSHOT_DATE = (SELECT MAX(SNAPSHOT_DATE) FROM SEGMENT_CHANGES) ORDER BY CUSTOMER_ID LIMIT 1"
    )[0]
    at.switch_page(PAGES["customer"]).run()
    at.text_input(key="customer.id").set_value(f"  {customer} ").run()
    assert not at.exception and not at.error and not at.warning
    metrics = {m.label: m.value for m in at.metric}
    label, rfm, frequency = rows(
        "SELECT SEGMENT_LABEL, RFM_SEGMENT, FREQUENCY FROM PROCESSED_DATA WHERE CUSTOMER_ID = ?", [customer]
    )[0]
    assert metrics["Segment"] == label == after
    assert metrics["Classic RFM segment"] == rfm and metrics["Frequency (orders)"] == f"{int(frequency):,}"
    history, orders = (d.value for d in at.dataframe)
    assert list(history["SEGMENT_LABEL"]) == [after, before]  # newest first
    assert min(int(frequency), 20) <= len(orders) <= 20  # cancelled orders are listed too
    net = rows("SELECT MONETARY FROM PROCESSED_DATA WHERE CUSTOMER_ID = ?", [customer])[0][0]
    if len(orders) < 20:  # every order shown: their net values add up to the customer's net spend
        assert orders["NET"].sum() == pytest.approx(float(net), abs=0.01)


def test_pages_on_one_snapshot(trained_project: Path, app: Any) -> None:
    at = app(trained_project)
    snapshot = rows("SELECT MAX(SNAPSHOT_DATE) FROM SEGMENT_HISTORY")[0][0]
    at.run()
    assert not at.exception and not at.error
    for page in PAGES:
        open_page(at, page)
    open_page(at, "movements")
    infos = " ".join(i.value for i in at.info)
    assert f"One snapshot only ({snapshot}): run `kedro run --pipelines daily` tomorrow" in infos
    assert "No customer changed segment" in infos
    open_page(at, "segment")
    assert "One snapshot only" in " ".join(i.value for i in at.info)


def test_pages_on_a_warehouse_without_model(tmp_path: Path, app: Any) -> None:
    from tests.conftest import make_project_copy

    project = make_project_copy(tmp_path / "project")
    at = app(project)
    at.run()
    for page in PAGES:
        open_page(at, page)
        assert [i.value for i in at.info] == [
            "No model yet: run `kedro run` (it trains a model and segments every customer)."
        ], page


def test_app_shows_a_connection_problem_without_a_traceback(tmp_path: Path, app: Any) -> None:
    """A warehouse that cannot be opened: one readable message in the page, no exception element."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    at = app(None)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the warehouse folder should be")
    warehouse.close()
    warehouse.configure(WarehouseSettings.from_credentials({}, blocked))
    at.run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("The page could not be built: ") and "Traceback" not in error
    assert str(blocked) in error
