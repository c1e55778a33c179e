"""Warehouse scoring of customer value (value_sql) equals the numpy/scipy closed forms on every customer.

The histories are simulated at the order level (random first purchase, purchase rate, dropout, order
values, cancelled orders) plus the edge cases that break other implementations: a customer with 5,000
transaction days, customers first seen on the reference date (T = 0), zero-value orders, returns that
cancel a whole order, heavy buyers, a base of one-time buyers only. They are summarised here in
pandas (transaction = a day with an order that is not cancelled), scored in a throw-away embedded
warehouse, and compared with ``value_model``'s reference functions (themselves checked against
scipy.special.hyp2f1 and published figures in test_value_model.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation import value_model as vm
from customer_segmentation.errors import MissingColumnsError, TransactionStateError
from customer_segmentation.value_model import ValueFitError, ValueModel
from customer_segmentation.value_sql import score_customers

HORIZON, RATE, MARGIN = 365, 0.1, 0.35
COLUMNS = ["CUSTOMER_ID", "P_ALIVE", "EXPECTED_PURCHASES", "EXPECTED_ORDER_VALUE", "CLV"]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Snowpark session on a fresh embedded warehouse for the module (stopped at the end)."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.config import WarehouseSettings

    folder: Path = tmp_path_factory.mktemp("value_sql") / "warehouse"
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()
        embedded.stop_server(folder)


def simulated_orders(seed: int = 21) -> pd.DataFrame:
    """Orders (CUSTOMER_ID, DAY before the reference date = 0, NET_VALUE, CANCELLED) of a varied base."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, int, float, bool]] = []
    for i in range(1500):
        first = int(rng.integers(0, 1500))
        rate = rng.gamma(0.6, 1 / 40)  # orders per day
        dropout = rng.beta(0.8, 3.0)
        day, k = float(first), 0
        while day >= 0:
            value = round(float(rng.gamma(4.0, 12.0)), 2) if rng.uniform() > 0.05 else 0.0
            rows.append((f"sim-{i}", int(day), value, bool(rng.uniform() < 0.08)))
            k += 1
            if k > 1 and rng.uniform() < dropout:
                break
            day -= rng.exponential(1 / rate) if rate > 0 else 1e9
    for i in range(40):  # heavy buyers: several orders most days for years
        first = int(rng.integers(1000, 3650))
        days = np.unique(rng.integers(0, first + 1, size=int(rng.integers(800, 3000))))
        rows += [(f"heavy-{i}", int(d), round(float(rng.gamma(2.0, 20.0)), 2), False) for d in days]
        rows.append((f"heavy-{i}", first, 15.0, False))
    rows += [("daily-5000", d, 9.99, False) for d in range(5000)]  # 5,000 transaction days
    rows += [(f"new-{i}", 0, 30.0 + i, False) for i in range(5)]  # first seen on the reference date
    rows += [("new-and-again", 0, 12.0, False), ("new-and-again", 0, 3.0, False)]  # two orders, one day
    rows += [("free-" + str(i), d, 0.0, False) for i in range(3) for d in (400, 200 + i, 10 * i)]
    rows += [("returned", 300, 50.0, False), ("returned", 100, 80.0, True), ("returned", 20, 20.0, False)]
    rows += [("all-returned", 50, 10.0, True)]  # no transaction left: not a customer with an order
    return pd.DataFrame(rows, columns=["CUSTOMER_ID", "DAY", "NET_VALUE", "CANCELLED"])


def summarise(orders: pd.DataFrame) -> pd.DataFrame:
    """The contract's summary: transaction days of non-cancelled orders; x, t_x, T in days; mean repeat spend."""
    kept = orders[~orders["CANCELLED"]]
    days = kept.groupby(["CUSTOMER_ID", "DAY"], as_index=False)["NET_VALUE"].sum()
    days = days.sort_values(
        ["CUSTOMER_ID", "DAY"], ascending=[True, False]
    )  # DAY counts back from the reference
    by = days.groupby("CUSTOMER_ID")
    summary = pd.DataFrame(
        {
            "X": by["DAY"].count() - 1,
            "T_X": by["DAY"].max() - by["DAY"].min(),
            "T": by["DAY"].max(),
        }
    )
    summary["MEAN_VALUE"] = days[by.cumcount() > 0].groupby("CUSTOMER_ID")["NET_VALUE"].mean()
    return summary.reset_index()


def upload(session: Any, summary: pd.DataFrame, table: str) -> Any:
    session.sql(
        f"CREATE OR REPLACE TABLE {table} (CUSTOMER_ID VARCHAR, X NUMBER(38,0), T_X NUMBER(38,0), "
        "T NUMBER(38,0), MEAN_VALUE DOUBLE)"
    ).collect()
    session.write_pandas(summary, table, auto_create_table=False, quote_identifiers=False)
    return session.table(table)


def fitted_model(summary: pd.DataFrame) -> ValueModel:
    bgnbd = vm.fit_bgnbd(summary["X"], summary["T_X"], summary["T"])
    gamma_gamma = vm.fit_gamma_gamma(summary["X"], summary["MEAN_VALUE"])
    return ValueModel("test", "2026-12-05T00:00:00", None, bgnbd, gamma_gamma)


def reference(model: ValueModel, summary: pd.DataFrame) -> pd.DataFrame:
    m, g = model.bgnbd.params, model.gamma_gamma.params
    x, t_x, T, mean = (summary[c].to_numpy(dtype=float) for c in ("X", "T_X", "T", "MEAN_VALUE"))
    return pd.DataFrame(
        {
            "CUSTOMER_ID": summary["CUSTOMER_ID"],
            "P_ALIVE": vm.p_alive(m, x, t_x, T),
            "EXPECTED_PURCHASES": vm.expected_purchases(m, HORIZON, x, t_x, T),
            "EXPECTED_ORDER_VALUE": vm.expected_order_value(g, x, mean),
            "CLV": vm.clv(m, g, x, t_x, T, mean, HORIZON, RATE, MARGIN),
        }
    )


def assert_equal_everywhere(scored: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = scored.set_index("CUSTOMER_ID").sort_index()
    want = expected.set_index("CUSTOMER_ID").sort_index()
    assert list(got.index) == list(want.index)  # every customer, once
    for column in COLUMNS[1:]:
        a, b = got[column].to_numpy(dtype=float), want[column].to_numpy(dtype=float)
        assert np.isfinite(a).all(), f"{column} has NULL/NaN"
        # relative 1e-6; absolute 1e-300 only for P(alive) floored at EXP(-700) (value_sql.EXP_FLOOR)
        bad = ~np.isclose(a, b, rtol=1e-6, atol=1e-300)
        assert not bad.any(), f"{column}: {got.index[bad][:5].tolist()} differ: {a[bad][:5]} vs {b[bad][:5]}"


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, ValueModel]:
    summary = summarise(simulated_orders())
    return summary, fitted_model(summary)


def test_summaries_cover_the_edge_cases(history: tuple[pd.DataFrame, ValueModel]) -> None:
    summary, _ = history
    row = summary.set_index("CUSTOMER_ID")
    assert row.loc["daily-5000", "X"] == 4999
    assert (row.loc[[f"new-{i}" for i in range(5)], "T"] == 0).all()
    assert row.loc["new-and-again", "X"] == 0
    assert (row.loc[["free-0", "free-1", "free-2"], "MEAN_VALUE"] == 0).all()
    assert row.loc["returned", "X"] == 1 and "all-returned" not in row.index
    assert summary["X"].max() >= 2500 and (summary["X"] == 0).sum() > 100


def test_warehouse_scores_equal_the_closed_forms_on_every_customer(
    session: Any, history: tuple[pd.DataFrame, ValueModel]
) -> None:
    summary, model = history
    table = upload(session, summary, "VALUE_SUMMARY_SIM")
    scored = score_customers(
        session, table, model, horizon_days=HORIZON, annual_discount_rate=RATE, margin=MARGIN
    ).to_pandas()
    assert list(scored.columns) == COLUMNS
    assert_equal_everywhere(scored, reference(model, summary))
    assert scored["P_ALIVE"].between(0, 1).all() and (scored["CLV"] >= 0).all()
    new = scored[scored["CUSTOMER_ID"].str.startswith("new-")]
    assert (new["P_ALIVE"] == 1).all() and (new["EXPECTED_PURCHASES"] > 0).all()


def test_one_time_buyers_only(session: Any, history: tuple[pd.DataFrame, ValueModel]) -> None:
    summary, model = history
    once = summary[summary["X"] == 0].reset_index(drop=True)
    table = upload(session, once, "VALUE_SUMMARY_ONCE")
    scored = score_customers(
        session, table, model, horizon_days=HORIZON, annual_discount_rate=RATE, margin=MARGIN
    ).to_pandas()
    assert_equal_everywhere(scored, reference(model, once))
    g = model.gamma_gamma.params
    assert scored["EXPECTED_ORDER_VALUE"].to_numpy() == pytest.approx(g.p * g.gamma / (g.q - 1), rel=1e-12)


def test_published_cdnow_model_in_days_scores_like_the_paper(session: Any) -> None:
    """The paper's example customer (x = 2, t_x = 30.43, T = 38.86 weeks) in days, through SQL: 1.226 in 39 weeks."""
    m = vm.BGNBDParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
    g = vm.GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
    fit = vm.FitResult
    model = ValueModel(
        "paper", "1997-09-30", None, fit(m, 0.0, 1, 1, 0.0, True), fit(g, 0.0, 1, 1, 0.0, True)
    )
    summary = pd.DataFrame({"CUSTOMER_ID": ["c1"], "X": [2], "T_X": [213], "T": [272], "MEAN_VALUE": [22.35]})
    table = upload(session, summary, "VALUE_SUMMARY_PAPER")
    scored = score_customers(session, table, model, horizon_days=273, annual_discount_rate=0.0, margin=1.0)
    row = scored.to_pandas().iloc[0]
    assert row["EXPECTED_PURCHASES"] == pytest.approx(1.226, abs=1e-3)
    assert row["CLV"] == pytest.approx(row["EXPECTED_PURCHASES"] * row["EXPECTED_ORDER_VALUE"], rel=1e-9)


def test_missing_columns_and_bad_rows_are_refused(
    session: Any, history: tuple[pd.DataFrame, ValueModel]
) -> None:
    _, model = history
    session.sql("CREATE OR REPLACE TABLE VALUE_SUMMARY_BAD (CUSTOMER_ID VARCHAR, X NUMBER(38,0))").collect()
    with pytest.raises(MissingColumnsError, match="T_X"):
        score_customers(
            session,
            session.table("VALUE_SUMMARY_BAD"),
            model,
            horizon_days=365,
            annual_discount_rate=0.1,
            margin=1.0,
        )
    bad = pd.DataFrame(
        {"CUSTOMER_ID": ["a", "b"], "X": [1, 2], "T_X": [10, 50], "T": [20, 40], "MEAN_VALUE": [1.0, 2.0]}
    )
    with pytest.raises(ValueFitError, match="1 row"):
        score_customers(
            session,
            upload(session, bad, "VALUE_SUMMARY_BAD"),
            model,
            horizon_days=365,
            annual_discount_rate=0.1,
            margin=1.0,
        )
    with pytest.raises(ValueFitError, match="horizon_days"):
        score_customers(
            session,
            session.table("VALUE_SUMMARY_BAD"),
            model,
            horizon_days=0,
            annual_discount_rate=0.1,
            margin=1.0,
        )


def test_scoring_inside_a_transaction_is_refused(
    session: Any, history: tuple[pd.DataFrame, ValueModel]
) -> None:
    from customer_segmentation.warehouse.tables import transaction

    summary, model = history
    table = upload(session, summary.head(5), "VALUE_SUMMARY_TX")
    with pytest.raises(TransactionStateError, match="outside the transaction"), transaction(session):
        score_customers(session, table, model, horizon_days=365, annual_discount_rate=0.1, margin=1.0)


def test_the_outcome_window_prediction_equals_the_closed_forms(
    session: Any, history: tuple[pd.DataFrame, ValueModel]
) -> None:
    """With outcome_days, the expected purchases and spend over that window (SEGMENT_OUTCOMES' period)
    equal E[Y(outcome_days) | x, t_x, T] and that times E[M] on every customer; the other columns stay."""
    summary, model = history
    table = upload(session, summary, "VALUE_SUMMARY_OUTCOME")
    scored = score_customers(
        session,
        table,
        model,
        horizon_days=HORIZON,
        annual_discount_rate=RATE,
        margin=MARGIN,
        outcome_days=180,
    ).to_pandas()
    assert list(scored.columns) == [*COLUMNS, "OUTCOME_EXPECTED_PURCHASES", "OUTCOME_EXPECTED_SPEND"]
    assert_equal_everywhere(scored[COLUMNS], reference(model, summary))
    m, g = model.bgnbd.params, model.gamma_gamma.params
    x, t_x, T, mean = (summary[c].to_numpy(dtype=float) for c in ("X", "T_X", "T", "MEAN_VALUE"))
    window = vm.expected_purchases(m, 180, x, t_x, T)
    expected = pd.DataFrame(
        {
            "CUSTOMER_ID": summary["CUSTOMER_ID"],
            "OUTCOME_EXPECTED_PURCHASES": window,
            "OUTCOME_EXPECTED_SPEND": window * vm.expected_order_value(g, x, mean),
        }
    ).set_index("CUSTOMER_ID")
    got = scored.set_index("CUSTOMER_ID").loc[expected.index]
    for column in expected.columns:
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-6, atol=1e-300, err_msg=column)
