"""Movements: who moved between two snapshots (Sankey), and the activation feed for the CRM."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from segment_explorer import charts, common, queries
from segment_explorer.common import escape, num

FEED_TOO_MANY = (
    "{count:,} changes match, more than explorer.max_download_rows ({limit:,}) allows in the browser: "
    "read SEGMENT_CHANGES directly (it is the table a CRM sync reads), or narrow the filters."
)


def _sankey(data: common.Data, dates: list) -> None:
    left, right = st.columns(2)
    after = right.selectbox("To snapshot", dates, index=0, key="movements.after")
    earlier = [d for d in dates if d < after]
    if not earlier:
        st.info(f"No snapshot before {after}: choose a later one as 'To snapshot'.")
        return
    before = left.selectbox("From snapshot", earlier, index=0, key="movements.before")
    moves: pd.DataFrame = data.read("migrations_between", before, after)
    if moves.empty:
        st.info(f"SEGMENT_HISTORY holds no customer at {before} or {after}.")
        return
    same = moves["FROM_SEGMENT_ID"].eq(moves["TO_SEGMENT_ID"]) & moves["FROM_SEGMENT"].eq(moves["TO_SEGMENT"])
    new = moves["FROM_SEGMENT"].eq("new") & moves["FROM_SEGMENT_ID"].lt(0)
    gone = moves["TO_SEGMENT"].eq("gone") & moves["TO_SEGMENT_ID"].lt(0)
    cols = st.columns(4)
    cols[0].metric("Stayed in their segment", num(moves.loc[same, "CUSTOMERS"].sum()))
    cols[1].metric(
        "Changed segment", num(moves.loc[~same & ~new & ~gone, "CUSTOMERS"].sum())
    )  # ids or labels
    cols[2].metric("New", num(moves.loc[new, "CUSTOMERS"].sum()))
    cols[3].metric("Gone", num(moves.loc[gone, "CUSTOMERS"].sum()))
    st.plotly_chart(charts.sankey(moves, before, after), key="movements.sankey")
    moved = moves[~same].sort_values("CUSTOMERS", ascending=False)
    with st.expander(f"Every movement between {before} and {after} ({len(moves)} flows)"):
        st.dataframe(moves, hide_index=True)
    if not moved.empty:
        top = moved.iloc[0]
        st.caption(
            f"Largest movement: {num(top['CUSTOMERS'])} customers from {escape(top['FROM_SEGMENT'])} "
            f"to {escape(top['TO_SEGMENT'])}."
        )


def _options(frame: pd.DataFrame, side: str) -> tuple[list[str], dict[str, str]]:
    rows = frame[frame["SIDE"] == side]
    keys = [str(k) for k in rows["KEY"] if not common.missing(k)]
    labels = {str(r.KEY): f"{r.LABEL} ({int(r.N):,})" for r in rows.itertuples() if not common.missing(r.KEY)}
    return keys, labels


def _feed(data: common.Data) -> None:
    st.subheader("Activation feed (SEGMENT_CHANGES)")
    if not data.catalog.has(queries.CHANGES):
        st.info("No activation feed yet: the monitoring pipeline of `kedro run` writes SEGMENT_CHANGES.")
        return
    st.caption(
        "Each row: a customer whose segment differs from the one last sent to the CRM (the table a "
        "reverse-ETL sync reads; apply a customer's rows in CHANGE_SEQ order)."
    )
    published: list = data.read("change_snapshots")
    snapshot = None
    if published:
        snapshot = st.selectbox("Published at snapshot", published, index=0, key="movements.feed.snapshot")
    segments = data.read("change_segments", snapshot)
    from_keys, from_labels = _options(segments, "FROM")
    to_keys, to_labels = _options(segments, "TO")
    left, right = st.columns(2)
    chosen_from = left.multiselect(
        "From segment", from_keys, format_func=lambda k: from_labels.get(k, k), key="movements.feed.from"
    )
    chosen_to = right.multiselect(
        "To segment", to_keys, format_func=lambda k: to_labels.get(k, k), key="movements.feed.to"
    )
    picked = (tuple(chosen_from), tuple(chosen_to))
    count = data.read("change_count", *picked, snapshot)
    shown = data.read("changes", *picked, data.settings.table_rows, snapshot)
    if count == 0:
        st.info(
            "No customer changed segment"
            + (f" at {snapshot}" if snapshot else " at the latest snapshot")
            + (" between the chosen segments." if chosen_from or chosen_to else ".")
        )
        return
    st.markdown(
        f"**{count:,} changes** published at {snapshot}"
        + (f"; the first {len(shown):,} are shown." if count > len(shown) else ".")
    )
    st.dataframe(shown, hide_index=True)
    common.download(
        data,
        key="movements.feed",
        signature=repr((snapshot, *picked)),
        file_name=f"segment_changes_{snapshot or 'all'}.csv",
        count=count,
        shown=shown,
        load_all=lambda: data.read("changes", *picked, data.settings.max_download_rows, snapshot),
        too_many=FEED_TOO_MANY,
    )


def render(data: common.Data) -> None:
    dates = data.read("snapshots")
    if not dates:
        data.read("segment_cards")  # raises the right empty state (no model, or no segments yet)
        raise queries.EmptyState(queries.NO_SEGMENTS)
    if len(dates) < 2:
        st.info(queries.ONE_SNAPSHOT.format(snapshot=dates[0]))
    else:
        _sankey(data, dates)
    _feed(data)


common.page("Movements", render)
