"""Deterministic demo events for the embedded warehouse (Faker ``fr_FR``, seed 11).

Customers follow distinct behaviours (frequent high spenders, regulars, occasional buyers,
churned, new), buy over about two years through several channels and categories, sometimes
cancel or return, and about 1% of the records are defective on purpose (duplicates, missing
customer, negative or non-numeric amount, unparseable or future timestamp, unknown event type) so
that the quarantine has something to catch.

Every demo row's ``SOURCE_FILE`` starts with ``demo://`` (:data:`DEMO_SOURCE_PREFIX`): that is how
the project tells demo rows from a user's (files loaded by ``load_events`` carry their path, a
user's own RAW_DATA a path or NULL), and how the first user load finds the demo to remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from faker import Faker

from customer_segmentation.demo.marker import DEMO_SOURCE_PREFIX
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.warehouse.tables import RAW_COLUMNS

CATEGORIES = ["Vins rouges", "Vins blancs", "Champagnes", "Spiritueux", "Épicerie fine", "Accessoires"]
CHANNELS = ["web", "app", "store", "marketplace"]
BROWSING_EVENTS = ["PAGE_VIEW", "ADD_TO_CART"]


@dataclass(frozen=True)
class Persona:
    """How one kind of customer behaves."""

    name: str
    share: float
    orders: float  # mean orders over the active window
    basket: float  # mean unit price
    active_from: float  # fraction of the history when activity starts
    active_to: float  # fraction of the history when activity stops
    channels: tuple[float, float, float, float]


PERSONAS = (
    Persona("champion", 0.08, 26.0, 95.0, 0.0, 1.0, (0.45, 0.35, 0.15, 0.05)),
    Persona("loyal", 0.17, 11.0, 45.0, 0.0, 1.0, (0.40, 0.25, 0.30, 0.05)),
    Persona("occasional", 0.35, 2.5, 30.0, 0.0, 1.0, (0.50, 0.10, 0.20, 0.20)),
    Persona("churned", 0.25, 5.0, 40.0, 0.0, 0.45, (0.40, 0.10, 0.40, 0.10)),
    Persona("new", 0.15, 1.6, 35.0, 0.92, 1.0, (0.40, 0.40, 0.10, 0.10)),
)

DEFECT_KINDS = (
    "duplicate",
    "missing_customer",
    "negative_amount",
    "non_numeric_amount",
    "bad_timestamp",
    "future_timestamp",
    "unknown_event_type",
)


#: Columns of the event tuples the generators build (typed TS, QTY, AMT; see ``as_landed_text``).
EVENT_ROW_COLUMNS = [
    "EVENT_TYPE",
    "TS",
    "CUSTOMER_ID",
    "ORDER_ID",
    "PRODUCT_ID",
    "CATEGORY",
    "QTY",
    "AMT",
    "CHANNEL",
]


def as_landed_text(frame: pd.DataFrame) -> pd.DataFrame:
    """EVENT_TS, QUANTITY and AMOUNT as text, the way events land in RAW_DATA (empty stays NULL)."""
    frame["EVENT_TS"] = pd.to_datetime(frame.pop("TS")).dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["QUANTITY"] = frame.pop("QTY").map(lambda v: None if pd.isna(v) else str(int(v)))
    frame["AMOUNT"] = frame.pop("AMT").map(lambda v: None if pd.isna(v) else f"{v:.2f}")
    return frame


#: The default demo (demo_data's defaults): the generator's keyword defaults.
_DEMO = DemoDataParams()


def generate_events(
    n_customers: int = _DEMO.n_customers,
    end_date: str = _DEMO.end_date.isoformat(),
    history_days: int = _DEMO.history_days,
    defect_rate: float = _DEMO.defect_rate,
    seed: int = _DEMO.seed,
    loaded_at: str = _DEMO.loaded_at,
    source: str = _DEMO.source,
) -> pd.DataFrame:
    """Demo RAW_DATA rows (strings, as landed), deterministic for a given seed and size."""
    if n_customers < 1:
        raise InvalidParametersError(f"demo_data.n_customers must be at least 1, got {n_customers}")
    if not str(source).startswith(DEMO_SOURCE_PREFIX):
        raise InvalidParametersError(
            f"demo_data.source must start with {DEMO_SOURCE_PREFIX!r} (that marks demo rows), got {source!r}"
        )
    Faker.seed(seed)
    fake = Faker("fr_FR")
    rng = np.random.default_rng(seed)
    end = datetime.fromisoformat(end_date) + timedelta(days=1)
    start = end - timedelta(days=history_days)

    customer_ids = [fake.unique.bothify("C-########") for _ in range(n_customers)]
    products = [(fake.unique.ean8(), CATEGORIES[i % len(CATEGORIES)]) for i in range(120)]
    product_price = rng.lognormal(mean=0.0, sigma=0.35, size=len(products))

    shares = np.array([p.share for p in PERSONAS])
    persona_idx = rng.choice(len(PERSONAS), size=n_customers, p=shares / shares.sum())

    rows: list[tuple] = []
    order_seq = 0
    span = history_days * 86400.0
    for c_idx, customer in enumerate(customer_ids):
        persona = PERSONAS[persona_idx[c_idx]]
        n_orders = max(1, int(rng.poisson(persona.orders)))
        lo, hi = persona.active_from * span, persona.active_to * span
        offsets = np.sort(rng.uniform(lo, hi, size=n_orders))
        favourite = rng.choice(len(products), size=3, replace=False)
        for off in offsets:
            order_seq += 1
            order_id = f"O-{order_seq:08d}"
            ts = start + timedelta(seconds=float(off))
            channel = CHANNELS[rng.choice(4, p=np.array(persona.channels))]
            if rng.random() < 0.5:
                rows.append(
                    (
                        "PAGE_VIEW",
                        ts - timedelta(minutes=int(rng.integers(1, 90))),
                        customer,
                        None,
                        products[int(favourite[0])][0],
                        products[int(favourite[0])][1],
                        None,
                        None,
                        channel,
                    )
                )
            n_lines = int(rng.integers(1, 4))
            order_total = 0.0
            line_rows = []
            for _ in range(n_lines):
                p = (
                    int(favourite[int(rng.integers(0, 3))])
                    if rng.random() < 0.6
                    else int(rng.integers(0, len(products)))
                )
                qty = int(rng.integers(1, 4))
                amount = round(
                    qty * persona.basket * float(product_price[p]) * float(rng.uniform(0.8, 1.2)), 2
                )
                order_total += amount
                line = (
                    "ORDER_CREATED",
                    ts,
                    customer,
                    order_id,
                    products[p][0],
                    products[p][1],
                    qty,
                    amount,
                    channel,
                )
                rows.append(line)
                line_rows.append(line)
            if rng.random() < 0.03:
                rows.append(
                    (
                        "ORDER_CANCELLED",
                        # within the history, as returns are: no event after the day it is loaded
                        min(ts + timedelta(hours=int(rng.integers(1, 48))), end - timedelta(seconds=1)),
                        customer,
                        order_id,
                        None,
                        None,
                        None,
                        round(order_total, 2),
                        channel,
                    )
                )
                continue
            for line in line_rows:
                if rng.random() < 0.05:
                    ret_ts = min(ts + timedelta(days=int(rng.integers(3, 25))), end - timedelta(seconds=1))
                    rows.append(
                        (
                            "ORDER_RETURNED",
                            ret_ts,
                            customer,
                            order_id,
                            line[4],
                            line[5],
                            line[6],
                            line[7],
                            channel,
                        )
                    )

    frame = pd.DataFrame(rows, columns=EVENT_ROW_COLUMNS)
    frame = frame.sort_values("TS", kind="stable").reset_index(drop=True)
    frame.insert(0, "EVENT_ID", [f"E-{i:09d}" for i in range(1, len(frame) + 1)])
    frame = as_landed_text(frame)
    frame = _inject_defects(frame, rng, defect_rate)
    frame["LOADED_AT"] = pd.Timestamp(loaded_at)
    frame["SOURCE_FILE"] = source
    frame["SOURCE_ROW"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame[list(RAW_COLUMNS)]


def _inject_defects(frame: pd.DataFrame, rng: np.random.Generator, rate: float) -> pd.DataFrame:
    """Spoil about ``rate`` of the rows, cycling through every defect kind."""
    n_defects = int(round(len(frame) * rate))
    if n_defects == 0:
        return frame
    frame = frame.copy()
    targets = rng.choice(len(frame), size=n_defects, replace=False)
    duplicates = []
    for i, row_idx in enumerate(sorted(targets)):
        kind = DEFECT_KINDS[i % len(DEFECT_KINDS)]
        if kind == "duplicate":
            duplicates.append(frame.iloc[[row_idx]])
        elif kind == "missing_customer":
            frame.at[row_idx, "CUSTOMER_ID"] = None
        elif kind == "negative_amount":
            frame.at[row_idx, "EVENT_TYPE"] = "ORDER_CREATED"
            frame.at[row_idx, "AMOUNT"] = "-" + (frame.at[row_idx, "AMOUNT"] or "10.00")
            frame.at[row_idx, "ORDER_ID"] = frame.at[row_idx, "ORDER_ID"] or f"O-X{row_idx:07d}"
        elif kind == "non_numeric_amount":
            frame.at[row_idx, "EVENT_TYPE"] = "ORDER_CREATED"
            frame.at[row_idx, "AMOUNT"] = "12,50 EUR"
            frame.at[row_idx, "ORDER_ID"] = frame.at[row_idx, "ORDER_ID"] or f"O-X{row_idx:07d}"
        elif kind == "bad_timestamp":
            frame.at[row_idx, "EVENT_TS"] = "31/02/2025 25:61"
        elif kind == "future_timestamp":
            frame.at[row_idx, "EVENT_TS"] = "2099-01-01 00:00:00"
        elif kind == "unknown_event_type":
            frame.at[row_idx, "EVENT_TYPE"] = "ORDER_TELEPORTED"
    if duplicates:
        frame = pd.concat([frame, *duplicates], ignore_index=True)
    return frame
