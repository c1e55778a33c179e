"""Synthetic order histories turned into CUSTOMER_FEATURES by the real warehouse code, and
independent pandas checks of segment naming (written without the project's naming code)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation.pipelines.rfm_features.nodes import compute_customer_features
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.rfm import rfm_segment

REFERENCE = date(2026, 6, 1)
FEATURE_PARAMS = {
    "reference_date": REFERENCE.isoformat(),
    "trend_window_days": 90,
    "channels": ["web", "app"],
}
# the project's nine features (the model's defaults), fewer k and refits to stay fast
TRAINING = TrainingParams(
    k_max=8,
    n_init=3,
    silhouette_sample_size=2000,
    bootstrap_rounds=2,
    sample_size=100000,
    scatter_sample_size=200,
)


def order_events(orders: pd.DataFrame) -> pd.DataFrame:
    """Events for orders given as CUSTOMER_ID, ORDER_ID, DAYS_AGO, AMOUNT, CATEGORY, CANCELLED, RETURNED."""
    rows = []
    for o in orders.itertuples(index=False):
        ts = (
            datetime.combine(REFERENCE, datetime.min.time())
            - timedelta(days=int(o.DAYS_AGO))
            + timedelta(hours=10)
        )
        base = dict(
            CUSTOMER_ID=o.CUSTOMER_ID, ORDER_ID=o.ORDER_ID, PRODUCT_ID="p", CATEGORY=o.CATEGORY, CHANNEL="web"
        )
        rows.append({**base, "EVENT_TYPE": "ORDER_CREATED", "EVENT_TS": ts, "AMOUNT": float(o.AMOUNT)})
        if o.CANCELLED:
            rows.append(
                {
                    **base,
                    "EVENT_TYPE": "ORDER_CANCELLED",
                    "EVENT_TS": ts + timedelta(hours=1),
                    "AMOUNT": float(o.AMOUNT),
                }
            )
        if o.RETURNED > 0:
            rows.append(
                {
                    **base,
                    "EVENT_TYPE": "ORDER_RETURNED",
                    "EVENT_TS": ts + timedelta(days=3),
                    "AMOUNT": float(o.RETURNED),
                }
            )
    events = pd.DataFrame(rows)
    events.insert(0, "EVENT_ID", [f"e{i}" for i in range(len(events))])
    events["EVENT_TS"] = events["EVENT_TS"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return events


def customer_features(session: Any, orders: pd.DataFrame) -> Any:
    """CUSTOMER_FEATURES computed in the (embedded) warehouse from synthetic orders."""
    events = order_events(orders)
    session.sql(
        "CREATE OR REPLACE TABLE EVENTS_RAW (EVENT_ID VARCHAR, CUSTOMER_ID VARCHAR, ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, "
        "CATEGORY VARCHAR, CHANNEL VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS VARCHAR, AMOUNT DOUBLE)"
    ).collect()
    session.write_pandas(events, "EVENTS_RAW", auto_create_table=False)
    session.sql(
        "CREATE OR REPLACE TABLE EVENTS AS SELECT EVENT_ID, EVENT_TYPE, CAST(EVENT_TS AS TIMESTAMP_NTZ) AS EVENT_TS, "
        "CUSTOMER_ID, ORDER_ID, PRODUCT_ID, CATEGORY, CAST(AMOUNT AS NUMBER(12,2)) AS AMOUNT, CHANNEL FROM EVENTS_RAW"
    ).collect()
    return compute_customer_features(session.table("EVENTS"), FEATURE_PARAMS)


def make_orders(
    customers: list[tuple[str, list[int], list[float], list[bool], list[float], list[str]]],
) -> pd.DataFrame:
    """(customer id, days ago per order, amount per order, cancelled per order, returned per order, category per order)."""
    rows = []
    for cid, days, amounts, cancelled, returned, categories in customers:
        for n, (d, a, c, r, cat) in enumerate(zip(days, amounts, cancelled, returned, categories)):
            rows.append((cid, f"{cid}-{n}", d, a, cat, c, r))
    return pd.DataFrame(
        rows, columns=["CUSTOMER_ID", "ORDER_ID", "DAYS_AGO", "AMOUNT", "CATEGORY", "CANCELLED", "RETURNED"]
    )


# --- independent checks -----------------------------------------------------------------------


def ntile(n: int, buckets: int = 5) -> np.ndarray:
    """SQL NTILE for rows 0..n-1 in order: the first n % buckets tiles hold one row more."""
    size, extra = divmod(n, buckets)
    out = []
    for b in range(buckets):
        out += [b + 1] * (size + (1 if b < extra else 0))
    return np.array(out, dtype=int)


def classic_rfm(frame: pd.DataFrame) -> pd.DataFrame:
    """R/F/M quintile scores and segment in pandas (README definition: ties broken by customer id)."""
    out = frame.copy()
    n = len(out)
    r_order = out.sort_values(["RECENCY_DAYS", "CUSTOMER_ID"], ascending=[False, True]).index
    f_order = out.sort_values(["FREQUENCY", "MONETARY", "CUSTOMER_ID"]).index
    m_order = out.sort_values(["MONETARY", "CUSTOMER_ID"]).index
    out.loc[r_order, "R_SCORE"] = ntile(n)
    out.loc[f_order, "F_SCORE"] = ntile(n)
    out.loc[m_order, "M_SCORE"] = ntile(n)
    for c in ("R_SCORE", "F_SCORE", "M_SCORE"):
        out[c] = out[c].astype(int)
    out["RFM_SEGMENT"] = [rfm_segment(r, f) for r, f in zip(out["R_SCORE"], out["F_SCORE"])]
    return out


#: qualifier phrase -> (column, +1 when the phrase means a higher median)
PHRASE_MEANING = {
    "more recent": ("RECENCY_DAYS", -1),
    "less recent": ("RECENCY_DAYS", +1),
    "more orders": ("FREQUENCY", +1),
    "fewer orders": ("FREQUENCY", -1),
    "higher spend": ("MONETARY", +1),
    "lower spend": ("MONETARY", -1),
    "larger orders": ("AVG_ORDER_VALUE", +1),
    "smaller orders": ("AVG_ORDER_VALUE", -1),
    "longer tenure": ("TENURE_DAYS", +1),
    "shorter tenure": ("TENURE_DAYS", -1),
    "more categories": ("DISTINCT_CATEGORIES", +1),
    "fewer categories": ("DISTINCT_CATEGORIES", -1),
    "more returns": ("RETURN_RATE", +1),
    "fewer returns": ("RETURN_RATE", -1),
    "more cancellations": ("CANCELLATION_RATE", +1),
    "fewer cancellations": ("CANCELLATION_RATE", -1),
    "rising spend": ("SPEND_TREND", +1),
    "falling spend": ("SPEND_TREND", -1),
    "flat spend": ("SPEND_TREND", 0),
    "higher spend trend": ("SPEND_TREND", +1),
    "lower spend trend": ("SPEND_TREND", -1),
}


def qualifiers(label: str, base: str) -> list[str]:
    rest = label[len(base) :].strip()
    if not rest:
        return []
    assert rest.startswith("(") and rest.endswith(")"), label
    return [p.strip() for p in rest[1:-1].split(",")]


def check_naming(sample: pd.DataFrame, assigned: np.ndarray, model: Any) -> pd.DataFrame:
    """Assert the naming rule with pandas only; returns one row per segment (for further checks)."""
    frame = sample.reset_index(drop=True).assign(_SEG=np.asarray(assigned))
    assert len(set(model.labels)) == model.k, model.labels
    rows = []
    counts = {i: frame.loc[frame["_SEG"] == i, "RFM_SEGMENT"].value_counts() for i in range(model.k)}
    for i in range(model.k):
        c, base, label = counts[i], model.base_labels[i], model.labels[i]
        assert label == base or label.startswith(base + " ("), (label, base)
        top = c[c == c.max()].index.tolist()
        if base not in top:
            # a cluster spanning two cells: its plurality cell is named by a cluster holding more of it,
            # and its base is its second-largest cell
            assert any(
                model.base_labels[j] == cell and counts[j].get(cell, 0) >= c[cell]
                for cell in top
                for j in range(model.k)
                if j != i
            ), (label, c.to_dict())
            second = c.drop(top)
            assert base in second[second == second.max()].index, (label, c.to_dict())
            assert c[base] >= 0.5 * c.max()
        share = c.get(base, 0) / int((frame["_SEG"] == i).sum())
        (stat,) = [s for s in model.segment_stats if s["label"] == label]
        assert stat["base_label"] == base and stat["faithfulness"] == pytest_approx(share)
        assert f"{share:.0%} of members are classic-RFM {base}" in model.descriptions[i]
        median_recency = frame.loc[frame["_SEG"] == i, "RECENCY_DAYS"].median()
        assert f"last order {median_recency:.0f} days ago" in model.descriptions[i]
        rows.append({"segment": i, "label": label, "base": base, "share": share, "size": int(c.sum())})
    medians = frame.groupby("_SEG")[list(model.features)].median()
    logged = frame[list(model.features)].fillna(0.0).copy()
    for name in model.log_features:
        logged[name] = np.log1p(logged[name].clip(lower=0.0))
    means = logged.groupby(frame["_SEG"]).mean()  # only used where medians tie
    for base in set(model.base_labels):
        group = [i for i in range(model.k) if model.base_labels[i] == base]
        for a in group:
            for b in group:
                if a >= b:
                    continue
                qa, qb = qualifiers(model.labels[a], base), qualifiers(model.labels[b], base)
                depth = next(d for d in range(min(len(qa), len(qb))) if qa[d] != qb[d])
                if {qa[depth], qb[depth]} == {"more so", "less so"}:
                    # the same feature split again: "more so" lies further in the direction named above
                    above = next(q for q in reversed(qa[:depth]) if q in PHRASE_MEANING)
                    col, sign = PHRASE_MEANING[above]
                    (col_a, dir_a), (col_b, dir_b) = (
                        (col, sign if qa[depth] == "more so" else -sign),
                        (col, 0),
                    )
                    dir_b = -dir_a
                else:
                    (col_a, dir_a), (col_b, dir_b) = PHRASE_MEANING[qa[depth]], PHRASE_MEANING[qb[depth]]
                assert col_a == col_b, (qa, qb)
                higher, lower = (a, b) if dir_a > dir_b else (b, a)
                stats = medians if medians.loc[higher, col_a] != medians.loc[lower, col_a] else means
                assert stats.loc[higher, col_a] > stats.loc[lower, col_a], (
                    model.labels[a],
                    model.labels[b],
                    col_a,
                )
    return pd.DataFrame(rows)


def pytest_approx(value: float) -> Any:
    import pytest

    return pytest.approx(value, abs=1e-12)
