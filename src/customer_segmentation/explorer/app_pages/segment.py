"""Segment: one segment in depth: what sets it apart, its history, its movements, its members."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st
from segment_explorer import charts, common, queries
from segment_explorer.common import escape, num, pct

CHOICE_KEY = "segment.choice"


def _query_param_segment(ids: list[int]) -> int | None:
    """The segment named in the address (?segment=<id>), if it is one of today's; else None."""
    raw = st.query_params.get("segment")
    if raw is None:
        return None
    try:
        chosen = int(str(raw).strip())
    except ValueError:
        chosen = None
    if chosen not in ids:
        st.warning(f"No segment {escape(raw, 40)} in the latest snapshot: showing another one.")
        return None
    return chosen


def _choose(cards: pd.DataFrame) -> int:
    ids = [int(i) for i in cards["SEGMENT_ID"]]
    labels = dict(zip(ids, cards["SEGMENT_LABEL"].astype(str), strict=True))
    wanted = st.session_state.get(common.SEGMENT_KEY)
    if wanted not in ids:
        wanted = _query_param_segment(ids)
    if st.session_state.get(CHOICE_KEY) not in ids:  # first view, or arriving from another page
        st.session_state[CHOICE_KEY] = wanted if wanted is not None else ids[0]
    chosen = st.selectbox("Segment", ids, key=CHOICE_KEY, format_func=lambda i: f"{labels[i]} (segment {i})")
    st.session_state[common.SEGMENT_KEY] = int(chosen)
    st.query_params["segment"] = str(chosen)
    return int(chosen)


def _header(card: pd.Series, value_ready: bool) -> None:
    cols = st.columns(4)
    cols[0].metric("Customers", num(card["CUSTOMERS"]), help=f"{pct(card.get('CUSTOMER_SHARE'), 1)} of all")
    cols[1].metric("Share of customers", pct(card.get("CUSTOMER_SHARE"), 1))
    cols[2].metric("Share of net revenue", pct(card.get("REVENUE_SHARE"), 1))
    cols[3].metric("Most members' RFM segment", str(card.get("DOMINANT_RFM_SEGMENT") or "-"))
    st.markdown(
        f"Median recency **{num(card.get('MEDIAN_RECENCY_DAYS'))} days** · "
        f"frequency **{num(card.get('MEDIAN_FREQUENCY'))} orders** · "
        f"net spend **{num(card.get('MEDIAN_MONETARY'))}**"
    )
    if value_ready and "MEDIAN_CLV" in card:
        st.markdown(
            f"Median P(alive) **{num(card.get('MEDIAN_P_ALIVE'), 2)}** · median CLV "
            f"**{num(card.get('MEDIAN_CLV'))}** · total CLV **{num(card.get('TOTAL_CLV'))}** · "
            f"**{pct(card.get('EXPECTED_REVENUE_SHARE'), 1)}** of expected revenue"
        )
    if card.get("DESCRIPTION"):
        st.caption(card["DESCRIPTION"])
    if card.get("SUGGESTED_ACTION"):
        st.markdown(f"**Suggested action:** {card['SUGGESTED_ACTION']}")


def _apart(data: common.Data, segment_id: int, card: pd.Series) -> None:
    st.subheader("What sets it apart")
    label = str(card["SEGMENT_LABEL"])
    frame = queries.contrast(data.read("feature_stats"), segment_id, card)
    if frame.empty:
        st.info("PROCESSED_DATA has no numeric feature to compare.")
        return
    st.plotly_chart(charts.contrast(frame, label), key=f"segment.apart.{segment_id}")
    top = frame.dropna(subset=["SD_DIFF"]).head(3)
    st.markdown(
        "Furthest from all customers: "
        + "; ".join(
            f"**{common.words(r.FEATURE)}** {'higher' if r.SD_DIFF > 0 else 'lower'} ({r.SD_DIFF:+.1f} sd; "
            f"mean {num(r.SEGMENT_MEAN, 2)} vs {num(r.ALL_MEAN, 2)})"
            for r in top.itertuples()
        )
    )
    with st.expander("Every feature against all customers"):
        _contrast_table(frame)


def _contrast_table(frame: pd.DataFrame) -> None:
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "FEATURE": "feature",
            "SEGMENT_MEDIAN": st.column_config.NumberColumn("segment median", format="%.2f"),
            "SEGMENT_MEAN": st.column_config.NumberColumn("segment mean", format="%.2f"),
            "ALL_MEAN": st.column_config.NumberColumn("all customers' mean", format="%.2f"),
            "SD_DIFF": st.column_config.NumberColumn("difference (sd)", format="%+.2f"),
        },
    )


def _over_time(data: common.Data, segment_id: int, label: str) -> None:
    st.subheader("Size and revenue over snapshots")
    trend = data.read("segment_trend", segment_id)
    if trend.empty:
        st.info(queries.NO_SEGMENTS)
        return
    if len(trend) == 1:
        st.info(queries.ONE_SNAPSHOT.format(snapshot=trend.iloc[0]["SNAPSHOT_DATE"]))
    st.plotly_chart(charts.segment_trend(trend, label), key=f"segment.trend.{segment_id}")
    last = trend.iloc[-1]
    st.caption(
        f"At {last['SNAPSHOT_DATE']}: {num(last['CUSTOMERS'])} customers ({pct(last['CUSTOMER_SHARE'], 1)}), "
        f"{num(last['NET_REVENUE'])} net revenue ({pct(last['REVENUE_SHARE'], 1)})."
    )


def _flows(rows: pd.DataFrame, column: str, word: str) -> str:
    """Movements as a markdown list: "- 47 from At risk (69,355 net revenue)", largest first."""
    revenue = "NET_REVENUE" in rows
    return "\n".join(
        f"- {num(r['CUSTOMERS'])} {word} {escape(r[column])}"
        + (f" ({num(r['NET_REVENUE'])} net revenue)" if revenue else "")
        for _, r in rows.sort_values("CUSTOMERS", ascending=False).iterrows()
    )


def _moves(data: common.Data, segment_id: int) -> None:
    st.subheader("Where its members came from and went")
    dates: list[date] = data.read("snapshots")
    if not dates:
        st.info(queries.NO_SEGMENTS)
        return
    snapshot = dates[0]
    if len(dates) > 1:
        snapshot = st.selectbox(
            "At snapshot (compared with the one before)", dates, key=f"segment.moves.{segment_id}"
        )
    flow = data.read("segment_flow", segment_id, snapshot)
    if flow:
        cols = st.columns(5)
        cols[0].metric("Before", num(flow.get("CUSTOMERS_BEFORE")))
        cols[1].metric("Stayed", num(flow.get("STAYED")))
        cols[2].metric(
            "Entered", num(flow.get("ENTERED")), help=f"of which new: {num(flow.get('ENTERED_NEW'))}"
        )
        cols[3].metric("Exited", num(flow.get("EXITED")))
        cols[4].metric("After", num(flow.get("CUSTOMERS_AFTER")))
    moves = data.read("segment_moves", segment_id, snapshot)
    if moves.empty:
        st.info("No movement recorded at this snapshot.")
        return
    came = moves[(moves["TO_SEGMENT_ID"] == segment_id) & (moves["FROM_SEGMENT_ID"] != segment_id)]
    went = moves[(moves["FROM_SEGMENT_ID"] == segment_id) & (moves["TO_SEGMENT_ID"] != segment_id)]
    left, right = st.columns(2)
    left.markdown("**Came from**\n\n" + (_flows(came, "FROM_SEGMENT", "from") or "Nobody entered."))
    right.markdown("**Went to**\n\n" + (_flows(went, "TO_SEGMENT", "to") or "Nobody left."))
    if len(dates) == 1:
        st.caption(
            queries.ONE_SNAPSHOT.format(snapshot=snapshot) + " Everybody is new at the first snapshot."
        )


def _filters(data: common.Data, segment_id: int) -> tuple[queries.MemberFilter, str, bool]:
    cat = data.catalog
    facets = data.read("member_facets", segment_id)
    prefix = f"members.{segment_id}"
    first = st.columns(4)
    rfm = first[0].multiselect("Classic RFM segment", facets["rfm_segments"], key=f"{prefix}.rfm")
    channels = first[1].multiselect("Main channel", facets["channels"], key=f"{prefix}.channel")
    bounds = {"min_value": facets["first_order"], "max_value": facets["last_order"]}
    last_from = first[2].date_input("Last order from", value=None, key=f"{prefix}.from", **bounds)
    last_to = first[3].date_input("Last order to", value=None, key=f"{prefix}.to", **bounds)
    second = st.columns(4)
    r = second[0].slider("R score", 1, 5, (1, 5), key=f"{prefix}.r")
    f = second[1].slider("F score", 1, 5, (1, 5), key=f"{prefix}.f")
    m = second[2].slider("M score", 1, 5, (1, 5), key=f"{prefix}.m")
    value_name = "CLV" if queries.value_column(cat) == "CLV" else "net spend"
    min_value = second[3].number_input(f"Minimum {value_name}", value=None, key=f"{prefix}.value")
    third = st.columns([2, 2, 1])
    text = third[0].text_input("Customer id contains", key=f"{prefix}.id")
    sortable = queries.sortable_columns(cat)
    default_sort = queries.value_column(cat)
    sort = third[1].selectbox(
        "Sort by",
        sortable,
        index=sortable.index(default_sort) if default_sort in sortable else 0,
        key=f"{prefix}.sort",
    )
    descending = third[2].toggle("Descending", value=True, key=f"{prefix}.desc")
    flt = queries.MemberFilter(
        rfm_segments=tuple(rfm),
        r_score=tuple(r),
        f_score=tuple(f),
        m_score=tuple(m),
        channels=tuple(channels),
        last_order_from=last_from,
        last_order_to=last_to,
        min_value=min_value,
        id_contains=text.strip(),
    )
    return flt, sort, bool(descending)


def _members(data: common.Data, segment_id: int, card: pd.Series) -> None:
    st.subheader("Members")
    if not data.catalog.value_ready():
        st.caption(queries.NO_VALUE)
    flt, sort, descending = _filters(data, segment_id)
    count = data.read("member_count", segment_id, flt)
    limit = data.settings.table_rows
    shown = data.read("members", segment_id, flt, sort, descending, limit)
    st.markdown(
        f"**{count:,}** of {num(card['CUSTOMERS'])} members match"
        + (f"; the first {len(shown):,} by {common.words(sort)} are shown." if count > len(shown) else ".")
    )
    event: Any = st.dataframe(
        shown,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"members.{segment_id}.table",
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if rows and rows[0] < len(shown):
        picked = str(shown.iloc[rows[0]]["CUSTOMER_ID"])
        if st.button(f"Open customer {picked}", key=f"members.{segment_id}.open"):
            st.session_state[common.CUSTOMER_KEY] = picked
            st.session_state.pop("customer.id", None)
            st.switch_page(common.CUSTOMER_PAGE)
    snapshot = card.get("SNAPSHOT_DATE")
    common.download(
        data,
        key=f"members.{segment_id}",
        signature=repr((segment_id, flt, sort, descending)),
        file_name=f"segment_{segment_id}_{common.slug(card['SEGMENT_LABEL'])}_{snapshot}.csv",
        count=count,
        shown=shown,
        load_all=lambda: data.read(
            "members", segment_id, flt, sort, descending, data.settings.max_download_rows
        ),
        too_many=common.EXPORT_HINT,
    )


def render(data: common.Data) -> None:
    cards = data.read("segment_cards")
    segment_id = _choose(cards)
    card = cards[cards["SEGMENT_ID"] == segment_id].iloc[0]
    label = str(card["SEGMENT_LABEL"])
    value_ready = data.catalog.has(queries.PROFILES, "MEDIAN_CLV")
    _header(card, value_ready)
    if not value_ready:
        st.caption(queries.NO_VALUE)
    _apart(data, segment_id, card)
    _over_time(data, segment_id, label)
    _moves(data, segment_id)
    _members(data, segment_id, card)


common.page("Segment", render)
