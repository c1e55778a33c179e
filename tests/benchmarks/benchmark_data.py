"""Benchmark events generated inside the warehouse with one SQL statement (no Python rows).

``populate_raw_data(session, n_events)`` creates RAW_DATA (the contract in
``warehouse/tables.py``: every event column VARCHAR, plus LOADED_AT, SOURCE_FILE, SOURCE_ROW)
and fills it with ``INSERT ... SELECT ... FROM TABLE(GENERATOR(ROWCOUNT => n))``. It is valid
Snowflake SQL and runs on the embedded emulator.

Shape of the data (deterministic: every "random" draw is ``HASH(..., salt)``, no RANDOM()):

- **purchases follow a BG/NBD process** (Fader, Hardie & Lee 2005), the one the customer-value
  model assumes, with the parameters :data:`BGNBD` (days): each customer buys at their own rate
  lambda ~ Gamma(r, alpha) from their first purchase on, and after each repeat purchase stops for
  good with their own probability p ~ Beta(a, b). Exact sampling from hashes: Gamma(1/2) is half a
  squared normal (Box-Muller), Gamma(3/2) = Gamma(1/2) + an exponential, Beta(a, b) =
  Ga / (Ga + Gb); the number of repeat purchases before dropout is geometric; the gaps between
  purchases are exponential. The generated history therefore has the spread in purchase rate and
  dropout that the fit needs, and a fit on it lands near :data:`BGNBD`;
- each customer has a persona (champion, loyal, occasional, churned, new: shares of customers),
  which sets their basket size and the window of their first purchase (``new``: the last 60 days;
  the others: the last two years), and a preferred channel (70% of its events);
- each customer's rows: their orders (the first purchase and every repeat purchase before the end
  date), then 5-7 other events: ORDER_CANCELLED and ORDER_RETURNED (each about 6%, pointing at one
  of the customer's rows and refunding its amount a day after it: an order of theirs, or, when
  that row is not an order, an orphan, as in real feeds), PAGE_VIEW and ADD_TO_CART. About 9.5
  events per customer, ~37% of them orders;
- about 1% defective records (``defect_rate``): missing event id or customer, unparseable or
  future timestamp, non-numeric or negative amount, unknown event type, duplicated event id;
  and some harmless noise (lower-case, padded event types) that ingestion must clean.

Cancellations, defects and several orders on one day thin the process a little (the summary counts
purchase *days* that are not cancelled), so the fitted parameters are near :data:`BGNBD`, not equal.
"""

from __future__ import annotations

from typing import Any

from customer_segmentation.warehouse.identifiers import qualified_name
from customer_segmentation.warehouse.tables import RAW_COLUMNS, create_table_sql

CATEGORIES = ("Red wine", "White wine", "Champagne", "Spirits", "Fine food", "Accessories")
CHANNELS = ("web", "app", "store", "marketplace")

#: The BG/NBD population the purchases are drawn from (time unit: days): purchase rate
#: Gamma(r, alpha) (mean r / alpha = 1 purchase in 60 days), dropout probability Beta(a, b) (mean 0.25).
#: r = 1/2 and a = 1/2, b = 3/2 because those shapes are sampled exactly from uniform draws.
BGNBD = {"r": 0.5, "alpha": 30.0, "a": 0.5, "b": 1.5}
#: At most this many repeat purchases per customer (never reached with :data:`BGNBD`: a bound for the SQL).
MAX_REPEATS = 500

#: name, share of customers (%), mean basket in cents, first purchase at most this many days before the end date.
PERSONAS = (
    ("champion", 8, 9500, 730),
    ("loyal", 17, 4500, 730),
    ("occasional", 35, 3000, 730),
    ("churned", 25, 4000, 730),
    ("new", 15, 3500, 60),
)
#: Other events per customer (page views, carts, cancellations, returns): OTHER_MIN + 0..OTHER_SPREAD-1.
OTHER_MIN, OTHER_SPREAD = 5, 3
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
    "rate1": 10,
    "rate2": 11,
    "drop1": 12,
    "drop2": 13,
    "drop3": 14,
    "drop4": 15,
    "drop5": 16,
    "dropout": 17,
    "gap": 18,
    "others": 19,
    "refers": 20,
}


def _h(index: str, what: str, seed: int, modulo: int) -> str:
    """A deterministic draw in [0, modulo) for row/customer ``index``."""
    return f"MOD(ABS(HASH({index}, {seed * 100 + _SALT[what]})), {modulo})"


def _u(index: str, what: str, seed: int) -> str:
    """A deterministic uniform draw in (0, 1), never 0 or 1."""
    return f"(({_h(index, what, seed, 1_000_000_000)} + 0.5) / 1000000000.0)"


def _half_gamma(index: str, first: str, second: str, seed: int) -> str:
    """Gamma(1/2, 1): half a squared standard normal (Box-Muller from two uniform draws)."""
    return f"(-LN({_u(index, first, seed)}) * POWER(COS(2 * PI() * {_u(index, second, seed)}), 2))"


def _case(expr: str, values: tuple[Any, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(values))
    return f"CASE {expr} {whens} END"


def _persona_case(persona: str, column: int) -> str:
    return (
        "CASE " + " ".join(f"WHEN {persona} = {i} THEN {p[column]}" for i, p in enumerate(PERSONAS)) + " END"
    )


def events_select_sql(
    n_events: int,
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
    if n_events < 1:
        raise ValueError("n_events must be positive")
    n = int(n_events)
    per_mille_defects = max(0, min(1000, round(defect_rate * 1000)))
    # every customer has at least 1 + OTHER_MIN rows: this many customers always fill n rows
    max_customers = n // (1 + OTHER_MIN) + 1
    bounds, acc = [], 0
    for i, p in enumerate(PERSONAS):
        acc += p[1]
        bounds.append(f"WHEN {_h('C', 'persona', seed, 100)} < {acc} THEN {i}")
    persona = "CASE " + " ".join(bounds) + f" ELSE {len(PERSONAS) - 1} END"
    r, alpha, a, b = (BGNBD[k] for k in ("r", "alpha", "a", "b"))
    if (r, a, b) != (0.5, 0.5, 1.5):
        raise ValueError("the exact samplers below draw Gamma(1/2) rates and Beta(1/2, 3/2) dropouts only")
    rate = f"({_half_gamma('C', 'rate1', 'rate2', seed)} / {alpha})"
    g_a = _half_gamma("C", "drop1", "drop2", seed)
    g_b = f"({_half_gamma('C', 'drop3', 'drop4', seed)} - LN({_u('C', 'drop5', seed)}))"
    dropout = f"({g_a} / ({g_a} + {g_b}))"
    # repeat purchases before dropout: geometric, K >= 1 (BG/NBD drops out only after a repeat purchase)
    repeats_before_dropout = f"GREATEST(1, CEIL(LN({_u('C', 'dropout', seed)}) / LN(1 - P_DROP)))"
    # the first purchase: uniform in the persona's window, in seconds before the end date
    birth_back_s = f"{_h('C', 'ts', seed, 2_000_000_000)} % ({_persona_case('PERSONA', 3)} * 86400)"
    customers = f"""
        SELECT C, PERSONA, LAM, BIRTH_BACK_S, BIRTH_BACK_S / 86400.0 AS TB,
               LEAST({MAX_REPEATS}, {repeats_before_dropout},
                     -- more arrivals than this within TB: far beyond the Poisson tail (a bound for the join)
                     FLOOR(LAM * BIRTH_BACK_S / 86400.0 + 8 * SQRT(LAM * BIRTH_BACK_S / 86400.0) + 10)) AS SLOTS
        FROM (
            SELECT C, PERSONA, {rate} AS LAM, {dropout} AS P_DROP, {birth_back_s} AS BIRTH_BACK_S
            FROM (SELECT C, {persona} AS PERSONA
                  FROM (SELECT SEQ8() AS C FROM TABLE(GENERATOR(ROWCOUNT => {max_customers}))))
        )"""
    # repeat purchase j at S_j = sum of j exponential gaps; kept while before the end date
    repeats = f"""
        SELECT C, J, S FROM (
            SELECT C, J, TB, SUM(-LN({_u("C * 1000 + J", "gap", seed)}) / LAM)
                                 OVER (PARTITION BY C ORDER BY J) AS S
            FROM CUST JOIN (SELECT SEQ8() + 1 AS J FROM TABLE(GENERATOR(ROWCOUNT => {MAX_REPEATS}))) G
                 ON G.J <= CUST.SLOTS
        ) WHERE S < TB"""
    layout = f"""
        SELECT C, PERSONA, BIRTH_BACK_S, X, ROWS_C,
               CAST(SUM(ROWS_C) OVER (ORDER BY C) - ROWS_C AS BIGINT) AS START_I
        FROM (
            SELECT CUST.C, PERSONA, BIRTH_BACK_S, COALESCE(N.X, 0) AS X,
                   1 + COALESCE(N.X, 0) + {OTHER_MIN} + {_h("CUST.C", "others", seed, OTHER_SPREAD)} AS ROWS_C
            FROM CUST LEFT JOIN (SELECT C, COUNT(*) AS X FROM REP GROUP BY C) N ON N.C = CUST.C
        )"""
    rows = f"""
        SELECT L.C, L.PERSONA, L.BIRTH_BACK_S, L.X, L.ROWS_C, CAST(L.START_I + G.J AS BIGINT) AS I, G.J
        FROM LAYOUT L JOIN (SELECT SEQ8() AS J FROM TABLE(GENERATOR(ROWCOUNT => {MAX_REPEATS + 1 + OTHER_MIN + OTHER_SPREAD}))) G
             ON G.J < L.ROWS_C
        WHERE L.START_I < {n} AND L.START_I + G.J < {n}"""

    def amount_cents(index: str) -> str:
        basket = _persona_case("PERSONA", 2)
        return f"({basket} / 4 + {_h(index, 'amount', seed, 1_000_000)} % ({basket} * 3 / 2))"

    # the row a cancellation/return refers to: one of the customer's rows (an order when K <= X)
    refers_j = _h("I", "refers", seed, 1_000_000) + " % ROWS_C"
    base = f"""
        SELECT R.*, R.J <= R.X AS IS_ORDER,
               {_h("I", "other", seed, 100)} AS OTHER,
               {_h("I", "defect", seed, 1000)} AS DEFECT,
               -- an order: the first purchase or repeat J; any other event: a moment since the first purchase
               CASE WHEN R.J = 0 THEN R.BIRTH_BACK_S
                    WHEN R.J <= R.X THEN GREATEST(0, R.BIRTH_BACK_S - FLOOR(S1.S * 86400))
                    ELSE {_h("I", "ts", seed, 2_000_000_000)} % (R.BIRTH_BACK_S + 1) END AS BACK_S,
               R.KJ <= R.X AS REFERS_TO_ORDER,
               CASE WHEN R.KJ = 0 THEN R.BIRTH_BACK_S
                    WHEN R.KJ <= R.X THEN GREATEST(0, R.BIRTH_BACK_S - FLOOR(S2.S * 86400))
                    ELSE {_h("R.START_I + R.KJ", "ts", seed, 2_000_000_000)} % (R.BIRTH_BACK_S + 1) END AS PREV_BACK_S,
               {amount_cents("I")} AS CENTS,
               {amount_cents("R.START_I + R.KJ")} AS PREV_CENTS,
               R.START_I + R.KJ AS PREV_I,
               {_h("I", "product", seed, 500)} AS PROD,
               {_h("I", "channel", seed, 1000)} AS CH
        FROM (SELECT RW.*, RW.I - RW.J AS START_I, {refers_j} AS KJ FROM RW) R
        LEFT JOIN REP S1 ON S1.C = R.C AND S1.J = R.J
        LEFT JOIN REP S2 ON S2.C = R.C AND S2.J = R.KJ"""
    typ = (
        "CASE WHEN IS_ORDER THEN 'ORDER_CREATED' "
        "WHEN OTHER < 6 THEN 'ORDER_CANCELLED' "
        "WHEN OTHER < 12 THEN 'ORDER_RETURNED' "
        "WHEN OTHER < 85 THEN 'PAGE_VIEW' ELSE 'ADD_TO_CART' END"
    )
    refers_back = "TYPE IN ('ORDER_CANCELLED', 'ORDER_RETURNED')"
    end = f"'{end_date}'::TIMESTAMP_NTZ"
    # cancellations/returns happen a day after the order (row) they refer to
    back = f"CASE WHEN {refers_back} THEN GREATEST(PREV_BACK_S - 86400, 0) ELSE BACK_S END"
    ts = f"CAST(DATEADD(SECOND, -({back}), {end}) AS VARCHAR)"
    cents = f"CASE WHEN {refers_back} THEN PREV_CENTS ELSE CENTS END"
    amount = f"CAST(ROUND({cents} / 100.0, 2) AS VARCHAR)"
    order_id = (
        f"CASE WHEN TYPE = 'ORDER_CREATED' THEN '{id_prefix}O-' || CAST(I AS VARCHAR) "
        f"WHEN {refers_back} THEN '{id_prefix}O-' || CAST(PREV_I AS VARCHAR) ELSE NULL END"
    )
    is_defect = f"DEFECT < {per_mille_defects}"
    # the defect kind: 0 .. 8 spread over the defective rows
    kind = "MOD(DEFECT, 9)"
    defect = lambda k: f"({is_defect} AND {kind} = {k})"  # noqa: E731
    select = f"""
        WITH CUST AS ({customers}),
             REP AS ({repeats}),
             LAYOUT AS ({layout}),
             RW AS ({rows})
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
