"""Smoke run of the scale benchmark (deselected by default: ``pytest -m benchmark tests/benchmarks``).

The real measurement is ``python tests/benchmarks/run_benchmark.py --sizes 100000,1000000,10000000``
(docs/benchmarks.md); this checks that the harness, the SQL generator and both baselines
work and agree with the pipeline's CUSTOMER_FEATURES on a small size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks import run_benchmark

pytestmark = pytest.mark.benchmark


def test_generated_events_follow_the_raw_contract(warehouse_session) -> None:
    from customer_segmentation.warehouse.tables import RAW_COLUMNS
    from tests.benchmarks.benchmark_data import populate_raw_data

    assert populate_raw_data(warehouse_session, 5000) == 5000
    rows = warehouse_session.sql(
        "SELECT COUNT(DISTINCT CUSTOMER_ID), SUM(IFF(TRIM(UPPER(EVENT_TYPE)) = 'ORDER_CREATED', 1, 0)), "
        "SUM(IFF(EVENT_TYPE IN ('ORDER_SHIPPED') OR EVENT_ID = '' OR CUSTOMER_ID = '', 1, 0)) FROM RAW_DATA"
    ).collect()[0]
    assert 450 <= rows[0] <= 600  # about 9.5 events per customer
    assert 1000 < rows[1] < 2500  # a realistic share of orders (a BG/NBD process: ~37% of the events)
    assert 0 < rows[2] < 50  # a little defective data
    columns = [r[0] for r in warehouse_session.sql("DESCRIBE TABLE RAW_DATA").collect()]
    assert columns == list(RAW_COLUMNS)


def test_generated_purchases_follow_the_bgnbd_population(warehouse_session) -> None:
    """The generator draws purchases from BG/NBD with benchmark_data.BGNBD: a fit on its order days
    (summarised here in pandas, independently of the pipeline) lands near those parameters."""
    from datetime import date

    import numpy as np

    from customer_segmentation.value_model import fit_bgnbd
    from tests.benchmarks.benchmark_data import BGNBD, populate_raw_data

    populate_raw_data(warehouse_session, 150_000, defect_rate=0.0)
    days = warehouse_session.sql(
        "SELECT CUSTOMER_ID, CAST(CAST(EVENT_TS AS TIMESTAMP_NTZ) AS DATE) AS D FROM RAW_DATA "
        "WHERE EVENT_TYPE = 'ORDER_CREATED'"
    ).to_pandas()
    days["D"] = days["D"].map(lambda d: d.toordinal())
    per = days.drop_duplicates().groupby("CUSTOMER_ID")["D"].agg(["min", "max", "count"])
    end = date(2026, 11, 1).toordinal()
    x = (per["count"] - 1).to_numpy(float)
    fit = fit_bgnbd(x, (per["max"] - per["min"]).to_numpy(float), (end - per["min"]).to_numpy(float))
    assert len(per) > 10_000 and (x > 0).mean() > 0.4
    for name, value in BGNBD.items():
        assert abs(getattr(fit.params, name) - value) / value < 0.35, (name, fit.params)
    assert np.isfinite(fit.log_likelihood)


def test_value_fit_deviation() -> None:
    from tests.benchmarks.benchmark_data import BGNBD

    assert run_benchmark.value_fit_deviation({}) is None
    assert run_benchmark.value_fit_deviation({"bgnbd": dict(BGNBD)}) == 0.0
    assert run_benchmark.value_fit_deviation({"bgnbd": {**BGNBD, "b": BGNBD["b"] * 3}}) == 2.0


def test_benchmark_harness_small(tmp_path: Path) -> None:
    assert run_benchmark.main(["--sizes", "20000", "--workdir", str(tmp_path), "--timeout", "600"]) == 0
    (result,) = json.loads((tmp_path / "results.json").read_text())
    kedro = result["kedro"]
    assert kedro["customers_scored"] > 1000
    assert result["duckdb"]["check"] == kedro["check"]
    assert result["pandas"]["check"] == kedro["check"]
    ingestion = result["duckdb_ingestion"]
    assert ingestion["counts_agree"] and ingestion["record_ids_agree"], ingestion
    assert ingestion["counts"]["accepted"] > 19000 and len(ingestion["counts"]) > 3  # several reasons
    assert result["append"]["events"] == 200  # the daily batch: 1% new events
    assert (
        result["daily"]["pipeline"] == "daily"
        and result["daily"]["customers_scored"] >= kedro["customers_scored"]
    )
    report = (tmp_path / "results.md").read_text()
    assert report.count("20,000") >= 3
    assert "| kedro run / DuckDB baselines (ingestion script + feature SQL) | 20,000 |" in report
    assert (
        "| customer_value / full run | 20,000 |" in report
        and "| customer_value / daily run | 20,000 |" in report
    )
    assert "PASS" in report or "MISS" in report
    assert (
        kedro["pipelines"]["customer_value"]["seconds"] > 0
        and result["daily"]["pipelines"]["customer_value"]["seconds"] > 0
    )


def test_targets_at_100m_are_judged_against_10m() -> None:
    """Target 4: peak RSS, time vs 10M and disk per million events at 100M; the full-run ratio applies to 10M only."""

    def entry(size: int, seconds: float, rss: float, disk: float) -> dict:
        pipes = {"ingestion": {"seconds": seconds / 2}, "customer_value": {"seconds": seconds / 10}}
        return {
            "size": size,
            "kedro": {"total_seconds": seconds, "peak_rss_mb": rss, "pipelines": pipes},
            "daily": {
                "total_seconds": seconds / 5,
                "pipelines": {"customer_value": {"seconds": seconds / 40}},
            },
            "duckdb_ingestion": {"seconds": seconds / 3, "counts_agree": True},
            "duckdb": {"seconds": seconds / 3},
            "warehouse_disk_mb": disk,
        }

    rows = run_benchmark.targets(
        [entry(10_000_000, 40.0, 1200.0, 1300.0), entry(100_000_000, 500.0, 1600.0, 12000.0)]
    )
    at = {(r["target"], r["events"]): r for r in rows}
    ratio = at[("kedro run / DuckDB baselines (ingestion script + feature SQL)", 10_000_000)]
    assert ratio["measured"] == 1.5 and ratio["status"] == "PASS" and ratio["limit"] == 1.6
    assert ("kedro run / DuckDB baselines (ingestion script + feature SQL)", 100_000_000) not in at
    assert ("kedro run", 10_000_000) not in at  # the absolute 45 s is gone
    assert at[("customer_value / full run", 10_000_000)]["measured"] == 0.1  # <= 15%: PASS
    assert at[("customer_value / full run", 10_000_000)]["status"] == "PASS"
    assert at[("customer_value / daily run", 10_000_000)]["measured"] == 0.125  # > 10%: MISS
    assert at[("customer_value / daily run", 10_000_000)]["status"] == "MISS"
    assert (
        at[("time vs 10M", 100_000_000)]["measured"] == 12.5
        and at[("time vs 10M", 100_000_000)]["status"] == "MISS"
    )
    assert at[("peak RSS", 100_000_000)]["status"] == "MISS"
    assert at[("warehouse disk per million events", 100_000_000)]["measured"] == 120.0
    assert 10_000_000 < run_benchmark.PANDAS_MAX_EVENTS < 100_000_000  # pandas runs at 10M, not at 100M
