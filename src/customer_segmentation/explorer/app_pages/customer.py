"""Customer: one customer's segment, RFM, value, segment history and latest orders."""

from __future__ import annotations

from typing import Any

import streamlit as st
from segment_explorer import common, queries
from segment_explorer.common import code, escape, num, pct

INPUT_KEY = "customer.id"


def _typed_id() -> str:
    wanted = st.session_state.get(common.CUSTOMER_KEY)
    if INPUT_KEY not in st.session_state:  # first view, or arriving from a segment's members
        st.session_state[INPUT_KEY] = wanted or str(st.query_params.get("customer", "") or "")
    typed = st.text_input(
        "Customer id",
        key=INPUT_KEY,
        placeholder="e.g. C-12345678 (as in PROCESSED_DATA)",
        help="Matched exactly (leading and trailing spaces ignored).",
    )
    st.session_state[common.CUSTOMER_KEY] = typed.strip()  # still shown after a visit to another page
    return typed.strip()


def _profile(row: dict[str, Any], value: dict[str, Any], value_ready: bool) -> None:
    cols = st.columns(4)
    cols[0].metric("Segment", str(row.get("SEGMENT_LABEL") or "-"))
    cols[1].metric(
        "Classic RFM segment",
        str(row.get("RFM_SEGMENT") or "-"),
        help=f"RFM score {row.get('RFM_SCORE') or '-'}",
    )
    cols[2].metric("RFM score", str(row.get("RFM_SCORE") or "-"))
    cols[3].metric("Main channel", str(row.get("MAIN_CHANNEL") or "-"))
    cols = st.columns(4)
    cols[0].metric("Recency (days)", num(row.get("RECENCY_DAYS")))
    cols[1].metric("Frequency (orders)", num(row.get("FREQUENCY")))
    cols[2].metric("Net spend", num(row.get("MONETARY"), 2))
    cols[3].metric("Average order value", num(row.get("AVG_ORDER_VALUE"), 2))
    if value_ready:
        cols = st.columns(4)
        cols[0].metric("P(alive)", num(row.get("P_ALIVE"), 3))
        cols[1].metric("Expected purchases", num(row.get("EXPECTED_PURCHASES"), 2))
        cols[2].metric("Expected order value", num(row.get("EXPECTED_ORDER_VALUE"), 2))
        cols[3].metric("CLV", num(row.get("CLV"), 2))
        if value:
            st.caption(
                f"Value model {escape(value.get('VALUE_MODEL_VERSION'))} at {escape(value.get('REFERENCE_DATE'))}: "
                f"{num(value.get('X'))} repeat purchase days, last at day {num(value.get('T_X'))} of "
                f"{num(value.get('T'))}; horizon {num(value.get('HORIZON_DAYS'))} days."
            )
    else:
        st.caption(queries.NO_VALUE)
    facts = [
        f"snapshot {row.get('REFERENCE_DATE')}" if row.get("REFERENCE_DATE") else None,
        f"first order {row.get('FIRST_ORDER')}" if row.get("FIRST_ORDER") else None,
        f"last order {row.get('LAST_ORDER')}" if row.get("LAST_ORDER") else None,
        f"return rate {pct(row.get('RETURN_RATE'))}" if "RETURN_RATE" in row else None,
        f"previous segment {row.get('PREVIOUS_SEGMENT_LABEL')}"
        if row.get("PREVIOUS_SEGMENT_LABEL")
        else None,
        f"model {row.get('MODEL_VERSION')}" if row.get("MODEL_VERSION") else None,
    ]
    st.caption(" · ".join(escape(f, 200) for f in facts if f))


def render(data: common.Data) -> None:
    customer_id = _typed_id()
    if not customer_id:
        data.read("segment_cards")  # an empty warehouse says so here already
        st.info("Type a customer id, or open one from a segment's members table (Segment page).")
        return
    row = data.read("customer", customer_id)
    history = data.read("customer_history", customer_id)
    if not row:
        st.warning(
            f"No customer {code(customer_id, 80)} in the latest snapshot (PROCESSED_DATA): check the id "
            "(matched exactly, case included). Customers without any valid order have no segment."
        )
        if history.empty:
            return
        st.caption("The segment history still knows this id:")
    else:
        st.subheader(f"Customer {code(customer_id)}")
        value = data.read("customer_value", customer_id) if data.catalog.has(queries.VALUE) else {}
        _profile(row, value, data.catalog.value_ready())
        segment_id = row.get("SEGMENT_ID")
        if segment_id is not None and st.button(
            f"Open segment {row.get('SEGMENT_LABEL')}", key="customer.open.segment"
        ):
            st.session_state[common.SEGMENT_KEY] = int(segment_id)
            st.session_state.pop("segment.choice", None)
            st.switch_page(common.SEGMENT_PAGE)
    st.subheader("Segment history")
    if history.empty:
        st.info("No snapshot in SEGMENT_HISTORY holds this customer yet.")
    else:
        changes = (history["SEGMENT_LABEL"] != history["SEGMENT_LABEL"].shift(-1)).sum() - 1
        st.caption(
            f"{len(history):,} snapshot(s), from {history['SNAPSHOT_DATE'].min()} to "
            f"{history['SNAPSHOT_DATE'].max()}; {max(int(changes), 0)} change(s) of segment."
        )
        st.dataframe(history, hide_index=True)
    if row:
        st.subheader("Latest orders")
        orders = data.read("customer_orders", customer_id)
        if orders.empty:
            st.info("No order of this customer in TRANSFORMED_DATA.")
        else:
            st.dataframe(orders, hide_index=True)


common.page("Customer", render)
