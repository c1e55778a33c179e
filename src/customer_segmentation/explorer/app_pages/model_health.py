"""Model health: versions (in use, pinned), how k was chosen, stability, faithfulness, drift, value model."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from segment_explorer import charts, common, queries
from segment_explorer.common import escape, num, pct


def _versions(data: common.Data, versions: pd.DataFrame, active: dict[str, Any]) -> None:
    st.subheader("Model versions")
    in_use, newest = active["in_use"], active["newest_ready"]
    if active["scored"]:
        st.markdown(f"**In use:** {escape(in_use)} (it scored the latest run).")
    else:
        st.markdown(f"**Newest READY version:** {escape(newest)} (no scoring run recorded yet).")
    if active["pinned"]:
        st.markdown(
            f"**Pinned** in the project's configuration: `prediction.model_version` = {escape(active['pinned'])}."
        )
    if active["pinned_or_stale"]:
        st.warning(
            f"The newest READY version {escape(newest)} is not the one in use: `prediction.model_version` "
            "pins an older version, or the newest was trained after the latest scoring run. Set the "
            "parameter to null (or run `kedro run --pipelines daily`) to score with the newest."
        )
    elif not active["pinned"]:
        st.caption("Not pinned: the newest READY version scores (`prediction.model_version: null`).")
    table = versions.copy()
    table.insert(
        0,
        "ROLE",
        [
            "in use" if str(v) == str(in_use) else ("newest READY" if str(v) == str(newest) else "")
            for v in table["VERSION"]
        ],
    )
    shown = [
        c
        for c in (
            "ROLE",
            "VERSION",
            "TRAINED_AT",
            "STATUS",
            "K",
            "SILHOUETTE",
            "STABILITY_ARI",
            "STABILITY",
            "FAITHFUL_SHARE",
            "RETRAINED_BECAUSE",
        )
        if c in table
    ]
    st.dataframe(table[shown], hide_index=True)


def _evidence(
    data: common.Data, versions: pd.DataFrame, active: dict[str, Any], scoring: dict[str, Any]
) -> None:
    options = [str(v) for v in versions["VERSION"]]
    default = options.index(str(active["in_use"])) if str(active["in_use"]) in options else 0
    version = st.selectbox("Evidence of version", options, index=default, key="health.version")
    row = versions[versions["VERSION"].astype(str) == version].iloc[0]
    st.subheader("How k was chosen")
    ks = data.read("k_selection", version)
    if ks.empty:
        st.info("MODEL_K_SELECTION holds no row for this version (k was fixed or the table is missing).")
    else:
        st.plotly_chart(charts.elbow(ks), key="health.elbow")
    if row.get("K_NOTE") or row.get("K_SOURCE"):
        st.caption(
            f"k = {num(row.get('K'))} ({escape(row.get('K_SOURCE') or '-')}). {escape(row.get('K_NOTE') or '', 600)}"
        )
    st.subheader("Stability")
    detail = row.get("STABILITY_DETAIL") if isinstance(row.get("STABILITY_DETAIL"), dict) else {}
    cols = st.columns(3)
    cols[0].metric("Mean adjusted Rand index", num(detail.get("ari_mean"), 3))
    cols[1].metric("Lowest", num(detail.get("ari_min"), 3))
    cols[2].metric("Verdict", str(detail.get("verdict") or "-"))
    st.caption("Bootstrap refits of the training sample compared with the model (1 = identical partitions).")
    st.subheader("Faithfulness per segment")
    if version == str(active["in_use"]) and scoring:
        frame = data.read("run_summary", scoring["run_id"])
        column = "FAITHFUL_SHARE"
        st.caption(f"Latest scoring run {escape(scoring['run_id'])}: every customer.")
    else:
        frame = data.read("model_segments", version)
        column = "FAITHFULNESS"
        st.caption("The training sample of this version.")
    if frame.empty or column not in frame:
        st.info("No per-segment faithfulness stored for this version.")
    else:
        st.plotly_chart(charts.faithfulness(frame, column), key="health.faithfulness")
        st.dataframe(frame, hide_index=True)


def _drift(data: common.Data) -> None:
    st.subheader("Drift over runs")
    drift = data.read("drift_runs", 365)
    if drift.empty:
        st.info("No drift measurement yet: the monitoring pipeline of `kedro run` appends one per run.")
        return
    latest = drift.iloc[-1]
    status = str(latest.get("STATUS") or "unknown")
    cols = st.columns(4)
    cols[0].metric("Latest status", status)
    cols[1].metric("Max PSI", num(latest.get("MAX_PSI"), 3), help=str(latest.get("MAX_PSI_FEATURE") or ""))
    cols[2].metric("Max segment share shift", pct(latest.get("MAX_SHARE_SHIFT"), 1))
    cols[3].metric("Distance ratio", num(latest.get("DISTANCE_RATIO"), 2))
    if latest.get("REASONS"):
        st.caption(f"Why: {escape(latest['REASONS'], 600)}")
    long = queries.psi_long(drift)
    if not long.empty:
        st.plotly_chart(
            charts.psi(long, (data.settings.psi_watch, data.settings.psi_retrain)), key="health.psi"
        )
    st.dataframe(drift.drop(columns=["FEATURE_PSI"], errors="ignore").iloc[::-1], hide_index=True)


def _scalars(doc: dict[str, Any]) -> pd.DataFrame:
    rows = [(k, v) for k, v in doc.items() if isinstance(v, (int, float, str, bool)) or v is None]
    return pd.DataFrame(rows, columns=["measure", "value"]).astype({"value": str})


def _holdout(report: dict[str, Any]) -> None:
    if report.get("skipped"):
        st.info(f"No holdout check for this version: {escape(report['skipped'], 400)}")
    if report.get("large_error"):
        st.warning("Large holdout error: read docs/customer-value.md before acting on CLV.")
    headline = [
        ("Predicted repeat purchases", num(report.get("predicted_purchases"))),
        ("Actual repeat purchases", num(report.get("actual_purchases"))),
        ("Total error", pct(report.get("total_error"), 1)),
        ("Per-customer correlation", num(report.get("correlation"), 2)),
        ("Mean absolute error", num(report.get("mae"), 3)),
    ]
    if any(report.get(k) is not None for k in ("predicted_purchases", "actual_purchases", "correlation")):
        for col, (label, value) in zip(st.columns(len(headline)), headline, strict=True):
            col.metric(label, value)
    scalars = _scalars(report)
    if not scalars.empty:
        st.dataframe(scalars, hide_index=True)
    for name, value in report.items():
        if isinstance(value, dict):
            st.markdown(f"**{common.words(name)}**")
            st.dataframe(_scalars(value), hide_index=True)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            st.markdown(f"**{common.words(name)}**")
            x = next(iter(value[0]))
            ys = [
                k
                for k in value[0]
                if k != x and any(t in k.lower() for t in ("pred", "actual", "rate", "share"))
            ]
            figure = charts.series(value, x, ys, common.words(name)) if ys else None
            if figure is not None:
                st.plotly_chart(figure, key=f"health.holdout.{name}")
            st.dataframe(pd.DataFrame(value), hide_index=True)


def _value_model(data: common.Data) -> None:
    st.subheader("Customer value model")
    models = data.read("value_models")
    if models.empty:
        st.info(queries.NO_VALUE_MODEL)
        return
    latest = models.iloc[0]
    st.markdown(
        f"Version **{escape(latest['VERSION'])}**"
        + (f", trained {escape(latest['TRAINED_AT'])}" if "TRAINED_AT" in latest else "")
        + (
            f", on segmentation model {escape(latest['SEGMENTATION_MODEL_VERSION'])}"
            if "SEGMENTATION_MODEL_VERSION" in latest
            else ""
        )
    )
    params = latest.get("PARAMS") if isinstance(latest.get("PARAMS"), dict) else {}
    if params:
        with st.expander("Fitted parameters"):
            st.json(params)
    metrics = latest.get("METRICS") if isinstance(latest.get("METRICS"), dict) else {}
    report = metrics.get("holdout") if isinstance(metrics.get("holdout"), dict) else None
    if not report:
        st.info("This value model version carries no holdout report.")
    else:
        st.markdown("**Holdout report** (fitted on the history before the holdout period, checked on it)")
        _holdout(report)
    outcomes = data.read("segment_outcomes")
    if not outcomes.empty:
        st.subheader("Segment outcomes (what past segments realised, against the prediction)")
        st.dataframe(outcomes, hide_index=True)


def render(data: common.Data) -> None:
    versions = data.read("model_versions")
    scoring = data.read("latest_scoring")
    active = queries.active_model(versions, scoring, data.settings.pinned_model)
    _versions(data, versions, active)
    _evidence(data, versions, active, scoring)
    _drift(data)
    _value_model(data)


common.page("Model health", render)
