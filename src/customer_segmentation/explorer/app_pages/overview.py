"""Overview: the latest snapshot's segments as cards, the model in use and its drift status."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from segment_explorer import charts, common, queries
from segment_explorer.common import escape, num, pct

COLUMNS = 3


def _model_line(versions: pd.DataFrame, active: dict[str, Any]) -> tuple[str, Any]:
    row = versions[versions["VERSION"].astype(str) == str(active["in_use"])]
    if row.empty:
        return f"Model {escape(active['in_use'])} (not in SEGMENTATION_MODELS any more)", None
    model = row.iloc[0]
    trained = (
        pd.Timestamp(model["TRAINED_AT"]).strftime("%Y-%m-%d %H:%M")
        if not common.missing(model.get("TRAINED_AT"))
        else "-"
    )
    return f"Model {escape(model['VERSION'])}, trained {trained} UTC, k = {num(model.get('K'))}", model


def _drift(data: common.Data) -> None:
    drift = data.read("drift_runs", 1)
    if drift.empty:
        st.info("No drift measurement yet: the monitoring pipeline of `kedro run` measures it.")
        return
    latest = drift.iloc[-1]
    status = str(latest.get("STATUS") or "unknown")
    reasons = str(latest.get("REASONS") or "").strip()
    text = f"Drift status **{status}** (measured {escape(latest.get('MEASURED_AT'))})" + (
        f": {escape(reasons, 400)}" if reasons else "."
    )
    {"ok": st.success, "watch": st.warning}.get(status, st.error)(text)


def _card(card: Any, value_ready: bool) -> None:
    st.subheader(card.SEGMENT_LABEL)
    st.markdown(
        f"**{num(card.CUSTOMERS)} customers** ({pct(card.CUSTOMER_SHARE, 1)}) · "
        f"**{pct(getattr(card, 'REVENUE_SHARE', None), 1)}** of net revenue"
    )
    st.markdown(
        f"Median recency **{num(getattr(card, 'MEDIAN_RECENCY_DAYS', None))} days** · "
        f"frequency **{num(getattr(card, 'MEDIAN_FREQUENCY', None))} orders** · "
        f"net spend **{num(getattr(card, 'MEDIAN_MONETARY', None))}**"
    )
    if value_ready and hasattr(card, "MEDIAN_CLV"):
        st.markdown(
            f"Median P(alive) **{num(getattr(card, 'MEDIAN_P_ALIVE', None), 2)}** · "
            f"median CLV **{num(card.MEDIAN_CLV)}** · "
            f"**{pct(getattr(card, 'EXPECTED_REVENUE_SHARE', None), 1)}** of expected revenue"
        )
    if getattr(card, "DESCRIPTION", None):
        st.caption(card.DESCRIPTION)
    if getattr(card, "SUGGESTED_ACTION", None):
        st.markdown(f"**Suggested action:** {card.SUGGESTED_ACTION}")
    if st.button(f"Open {card.SEGMENT_LABEL}", key=f"overview.open.{card.SEGMENT_ID}"):
        st.session_state[common.SEGMENT_KEY] = int(card.SEGMENT_ID)
        st.session_state.pop("segment.choice", None)
        st.switch_page(common.SEGMENT_PAGE)


def render(data: common.Data) -> None:
    versions = data.read("model_versions")
    scoring = data.read("latest_scoring")
    active = queries.active_model(versions, scoring, data.settings.pinned_model)
    cards = data.read("segment_cards")
    snapshot = cards["SNAPSHOT_DATE"].max() if "SNAPSHOT_DATE" in cards else None
    total = int(cards["CUSTOMERS"].sum())
    line, _ = _model_line(versions, active)
    st.markdown(
        f"Snapshot **{escape(snapshot)}** · **{total:,} customers** in {len(cards)} segments · {line}"
    )
    if active["pinned_or_stale"]:
        st.info(
            f"The latest run scored with {escape(active['in_use'])}, not the newest READY version "
            f"{escape(active['newest_ready'])}: a version is pinned (`prediction.model_version`) or the "
            "newest was trained after the last scoring run (see Model health)."
        )
    _drift(data)
    value_ready = data.catalog.has(queries.PROFILES, "MEDIAN_CLV")
    if not value_ready:
        st.info(queries.NO_VALUE)
    grid = st.columns(COLUMNS)
    for i, card in enumerate(cards.itertuples(index=False)):
        with grid[i % COLUMNS].container(border=True):
            _card(card, value_ready)
    st.plotly_chart(charts.shares(cards), key="overview.shares")


common.page("Segments", render)
