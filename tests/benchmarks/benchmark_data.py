"""Benchmark events generated inside the warehouse with one SQL statement (no Python rows).

``populate_raw_data(session, n_events)`` creates RAW_DATA (the contract in
``warehouse/tables.py``: every event column VARCHAR, plus LOADED_AT, SOURCE_FILE, SOURCE_ROW)
and fills it with ``INSERT ... SELECT ... FROM TABLE(GENERATOR(ROWCOUNT => n))``. It is valid
Snowflake SQL and runs on the embedded emulator (10M events in well under a minute).

Shape of the data (deterministic: every "random" draw is ``HASH(row, salt)``, no RANDOM()):

- ``events_per_customer`` consecutive rows (default 10) belong to one customer, so there are
  ``n_events / events_per_customer`` customers;
- each customer has a persona and a preferred channel (70% of its events), (champion, loyal, occasional, churned, new) that sets the share of
  its events that are orders, its basket size and the period it is active in;
- event types: ORDER_CREATED (persona share), then among the other rows ORDER_CANCELLED and
  ORDER_RETURNED (each about 6%, pointing at the previous row's order and refunding its amount;
  when that row is not an order the event is an orphan, as in real feeds), PAGE_VIEW and
  ADD_TO_CART;
- about 1% defective records (``defect_rate``): missing event id or customer, unparseable or
  future timestamp, non-numeric or negative amount, unknown event type, duplicated event id;
  and some harmless noise (lower-case, padded event types) that ingestion must clean.
"""

from __future__ import annotations

from typing import Any

from customer_segmentation.warehouse.identifiers import qualified_name
from customer_segmentation.warehouse.tables import RAW_COLUMNS, create_table_sql

CATEGORIES = ("Red wine", "White wine", "Champagne", "Spirits", "Fine food", "Accessories")
CHANNELS = ("web", "app", "store", "marketplace")

#: name, share of customers (%), share of events that are orders (per mille),
#: mean basket in cents, first active day back, last active day back (days before end date).
PERSONAS = (
    ("champion", 8, 700, 9500, 730, 0),
    ("loyal", 17, 500, 4500, 730, 0),
    ("occasional", 35, 200, 3000, 730, 0),
    ("churned", 25, 350, 4000, 730, 400),
    ("new", 15, 250, 3500, 60, 0),
)
_SALT = {
    "persona": 1,
    "type": 2,
    "other": 3,
    "amount": 4,
    "ts": 5,
    "defect": 6,
    "channel": 7,
    "product": 8,
    "qty": 9,
}


def _h(index: str, what: str, seed: int, modulo: int) -> str:
    """A deterministic draw in [0, modulo) for row/customer ``index``."""
    return f"MOD(ABS(HASH({index}, {seed * 100 + _SALT[what]})), {modulo})"


def _case(expr: str, values: tuple[Any, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(values))
    return f"CASE {expr} {whens} END"


def _persona_case(persona: str, column: int) -> str:
    return (
        "CASE " + " ".join(f"WHEN {persona} = {i} THEN {p[column]}" for i, p in enumerate(PERSONAS)) + " END"
    )


def events_select_sql(
    n_events: int,
    events_per_customer: int = 10,
    end_date: str = "2026-11-01",
    defect_rate: float = 0.01,
    seed: int = 11,
    loaded_at: str = "2026-11-01 06:00:00",
    source: str = "benchmark://generator",
    id_prefix: str = "",
) -> str:
    """The SELECT that yields ``n_events`` RAW_DATA rows (all columns of the contract, in order).

    ``id_prefix`` starts every EVENT_ID and ORDER_ID, so that a later batch (``seed``, ``loaded_at``
    and ``end_date`` moved) holds new events and orders of the same customers (``C-...`` ids).
    """
    if not id_prefix.replace("-", "").isalnum() and id_prefix:
        raise ValueError("id_prefix must be letters, digits and dashes")
    if n_events < 1 or events_per_customer < 1:
        raise ValueError("n_events and events_per_customer must be positive")
    per_mille_defects = max(0, min(1000, round(defect_rate * 1000)))
    # persona from the customer's hash, by cumulative share
    bounds, acc = [], 0
    for i, p in enumerate(PERSONAS):
        acc += p[1]
        bounds.append(f"WHEN {_h('C', 'persona', seed, 100)} < {acc} THEN {i}")
    persona = "CASE " + " ".join(bounds) + f" ELSE {len(PERSONAS) - 1} END"

    def ts_seconds_back(index: str) -> str:
        # seconds before end date, inside the persona's active window
        lo, hi = _persona_case("PERSONA", 5), _persona_case("PERSONA", 4)
        return f"({lo} * 86400 + {_h(index, 'ts', seed, 2_000_000_000)} % (({hi} - {lo}) * 86400))"

    def amount_cents(index: str) -> str:
        basket = _persona_case("PERSONA", 3)
        return f"({basket} / 4 + {_h(index, 'amount', seed, 1_000_000)} % ({basket} * 3 / 2))"

    base = f"""
        SELECT I, C, PERSONA,
            {_h("I", "type", seed, 1000)} < {_persona_case("PERSONA", 2)} AS IS_ORDER,
            {_h("I", "other", seed, 100)} AS OTHER,
            {_h("I", "defect", seed, 1000)} AS DEFECT,
            {ts_seconds_back("I")} AS BACK_S,
            {ts_seconds_back("I - 1")} AS PREV_BACK_S,
            {amount_cents("I")} AS CENTS,
            {amount_cents("I - 1")} AS PREV_CENTS,
            {_h("I", "product", seed, 500)} AS PROD,
            {_h("I", "channel", seed, 1000)} AS CH
        FROM (
            SELECT I, C, {persona} AS PERSONA
            FROM (SELECT I, CAST(FLOOR(I / {int(events_per_customer)}) AS BIGINT) AS C
                  FROM (SELECT SEQ8() AS I FROM TABLE(GENERATOR(ROWCOUNT => {int(n_events)}))))
        )"""
    first_of_customer = f"MOD(I, {int(events_per_customer)}) = 0"
    typ = (
        f"CASE WHEN IS_ORDER THEN 'ORDER_CREATED' "
        f"WHEN OTHER < 6 AND NOT {first_of_customer} THEN 'ORDER_CANCELLED' "
        f"WHEN OTHER < 12 AND NOT {first_of_customer} THEN 'ORDER_RETURNED' "
        f"WHEN OTHER < 85 THEN 'PAGE_VIEW' ELSE 'ADD_TO_CART' END"
    )
    refers_back = "TYPE IN ('ORDER_CANCELLED', 'ORDER_RETURNED')"
    end = f"'{end_date}'::TIMESTAMP_NTZ"
    # cancellations/returns happen a day after the order they refer to
    back = f"CASE WHEN {refers_back} THEN GREATEST(PREV_BACK_S - 86400, 0) ELSE BACK_S END"
    ts = f"CAST(DATEADD(SECOND, -({back}), {end}) AS VARCHAR)"
    cents = f"CASE WHEN {refers_back} THEN PREV_CENTS ELSE CENTS END"
    amount = f"CAST(ROUND({cents} / 100.0, 2) AS VARCHAR)"
    order_id = (
        f"CASE WHEN TYPE = 'ORDER_CREATED' THEN '{id_prefix}O-' || CAST(I AS VARCHAR) "
        f"WHEN {refers_back} THEN '{id_prefix}O-' || CAST(I - 1 AS VARCHAR) ELSE NULL END"
    )
    is_defect = f"DEFECT < {per_mille_defects}"
    # the defect kind: 0 .. 8 spread over the defective rows
    kind = "MOD(DEFECT, 9)"
    defect = lambda k: f"({is_defect} AND {kind} = {k})"  # noqa: E731
    select = f"""
        SELECT
            CASE WHEN {defect(0)} THEN '' WHEN {defect(1)} OR {defect(2)} THEN '{id_prefix}E-' || CAST(I - 1 AS VARCHAR)
                 ELSE '{id_prefix}E-' || CAST(I AS VARCHAR) END AS EVENT_ID,
            CASE WHEN {defect(3)} THEN 'ORDER_SHIPPED'
                 WHEN {defect(8)} THEN '  ' || LOWER(TYPE) || ' '
                 ELSE TYPE END AS EVENT_TYPE,
            CASE WHEN {defect(4)} THEN 'yesterday'
                 WHEN {defect(5)} THEN '2031-01-01 00:00:00'
                 ELSE {ts} END AS EVENT_TS,
            CASE WHEN {defect(6)} THEN '' ELSE 'C-' || LPAD(CAST(C AS VARCHAR), 9, '0') END AS CUSTOMER_ID,
            {order_id} AS ORDER_ID,
            CASE WHEN TYPE = 'PAGE_VIEW' AND OTHER < 40 THEN NULL
                 ELSE 'P-' || CAST(PROD AS VARCHAR) END AS PRODUCT_ID,
            {_case(f"PROD % {len(CATEGORIES)}", tuple(f"'{c}'" for c in CATEGORIES))} AS CATEGORY,
            CASE WHEN TYPE LIKE 'ORDER_%' THEN CAST(1 + {_h("I", "qty", seed, 4)} AS VARCHAR) ELSE NULL END AS QUANTITY,
            CASE WHEN {defect(7)} AND TYPE = 'ORDER_CREATED' THEN 'n/a'
                 WHEN {defect(7)} THEN '-' || {amount}
                 WHEN TYPE LIKE 'ORDER_%' THEN {amount} ELSE NULL END AS AMOUNT,
            CASE WHEN CH < 700
                 THEN {_case(_h("C", "channel", seed, len(CHANNELS)), tuple(f"'{c}'" for c in CHANNELS))}
                 ELSE {_case(f"CH % {len(CHANNELS)}", tuple(f"'{c}'" for c in CHANNELS))}
            END AS CHANNEL,
            '{loaded_at}'::TIMESTAMP_NTZ AS LOADED_AT,
            '{source}' AS SOURCE_FILE,
            I + 1 AS SOURCE_ROW
        FROM (SELECT *, {typ} AS TYPE FROM ({base}))"""
    return select


def populate_raw_data(
    session: Any,
    n_events: int,
    database: str = "SEGMENTATION",
    schema: str = "PUBLIC",
    table: str = "RAW_DATA",
    **kwargs: Any,
) -> int:
    """Create ``table`` if needed and append ``n_events`` generated events; returns the row count."""
    session.sql(create_table_sql(database, schema, table, RAW_COLUMNS)).collect()
    fqn = qualified_name(database, schema, table)
    columns = ", ".join(RAW_COLUMNS)
    session.sql(f"INSERT INTO {fqn} ({columns}) {events_select_sql(n_events, **kwargs)}").collect()
    return int(session.sql(f"SELECT COUNT(*) FROM {fqn}").collect()[0][0])
