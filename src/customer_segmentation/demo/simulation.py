"""Living through days on the demo: more events from the same personas, after the seeded history.

The seeded demo (``demo_data.generate_events``) covers ``history_days`` up to ``end_date``. This
module appends further days: every demo customer keeps its persona (re-derived from the same
seed, so nothing about it is stored), buys at its persona's daily rate until it lapses (a lapse
date drawn once per customer from a hash of its id, so it never changes between calls), and a
few new customers arrive each day. A batch is deterministic for a given seed, start date and
number of days, and is stamped like a load: ``LOADED_AT`` after every event of the batch and
``SOURCE_FILE = demo://simulate/...``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from faker import Faker

from customer_segmentation.demo.generator import (
    CATEGORIES,
    CHANNELS,
    EVENT_ROW_COLUMNS,
    PERSONAS,
    Persona,
    as_landed_text,
)
from customer_segmentation.warehouse.tables import RAW_COLUMNS

SIMULATION_SOURCE_PREFIX = "demo://simulate/"
#: Orders per day of each persona after the seeded history (churned customers rarely come back).
DAILY_ORDER_RATE = {
    "champion": 26.0 / 730,
    "loyal": 11.0 / 730,
    "occasional": 2.5 / 730,
    "churned": 0.2 / 730,
    "new": 4.0 / 365,
}
#: Mean days before an active customer lapses for good (stops ordering).
MEAN_DAYS_TO_LAPSE = {"champion": 1500.0, "loyal": 900.0, "occasional": 600.0, "churned": 1.0e9, "new": 300.0}
#: New customers per day, as a share of the seeded population.
DAILY_ARRIVAL_RATE = 0.0025
NEW_CUSTOMER_PREFIX = "C-N"


@dataclass(frozen=True)
class DemoPopulation:
    """The seeded demo's customers, personas and catalogue, re-derived from its seed."""

    customer_ids: list[str]
    personas: list[str]
    products: list[tuple[str, str]]
    product_price: np.ndarray


def demo_population(n_customers: int, seed: int) -> DemoPopulation:
    """The same customers, products and personas as ``generate_events(n_customers, seed=seed)``.

    It repeats the first random draws of ``generate_events`` in the same order (a test checks
    that the ids agree), so personas need not be stored anywhere.
    """
    Faker.seed(seed)
    fake = Faker("fr_FR")
    rng = np.random.default_rng(seed)
    customer_ids = [fake.unique.bothify("C-########") for _ in range(n_customers)]
    products = [(fake.unique.ean8(), CATEGORIES[i % len(CATEGORIES)]) for i in range(120)]
    product_price = rng.lognormal(mean=0.0, sigma=0.35, size=len(products))
    shares = np.array([p.share for p in PERSONAS])
    persona_idx = rng.choice(len(PERSONAS), size=n_customers, p=shares / shares.sum())
    return DemoPopulation(customer_ids, [PERSONAS[i].name for i in persona_idx], products, product_price)


def _unit(seed: int, salt: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, salt, key): same customer, same draw, every call."""
    digest = hashlib.md5(f"{seed}:{salt}:{key}".encode()).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def _persona_of_newcomer(seed: int, customer_id: str) -> str:
    """Customers who arrive during the simulation become champions, regulars or occasional buyers."""
    u = _unit(seed, "persona", customer_id)
    return "champion" if u < 0.1 else "loyal" if u < 0.4 else "occasional"


def _lapse_date(seed: int, customer_id: str, persona: str, since: date) -> date:
    """The day the customer stops ordering (exponential wait from ``since``, fixed per customer)."""
    u = _unit(seed, "lapse", customer_id)
    wait = -np.log1p(-u) * MEAN_DAYS_TO_LAPSE[persona]
    return since + timedelta(days=float(min(wait, 36500.0)))


def _arrival_date(customer_id: str) -> date | None:
    """Arrival day encoded in a simulated newcomer's id (``C-NYYYYMMDD-nnnn``)."""
    if not customer_id.startswith(NEW_CUSTOMER_PREFIX):
        return None
    try:
        return datetime.strptime(customer_id[len(NEW_CUSTOMER_PREFIX) :].split("-")[0], "%Y%m%d").date()
    except ValueError:
        return None


def batch_loaded_at(start: date, days: int) -> datetime:
    """The stamp of a batch of ``days`` days from ``start``: 06:00 the morning after its last day."""
    return datetime.combine(start + timedelta(days=days), datetime.min.time()) + timedelta(hours=6)


def simulate_events(  # noqa: PLR0913
    start: date,
    days: int,
    population: DemoPopulation,
    known_customers: Iterable[str] = (),
    seed: int = 11,
    history_end: date | None = None,
    silent_personas: Sequence[str] = (),
    arrival_multiplier: float = 1.0,
) -> pd.DataFrame:
    """RAW_DATA rows (strings, as landed) for ``days`` days from ``start``, deterministic per seed.

    ``known_customers`` are ids already in RAW_DATA beyond the seeded population (newcomers of
    earlier simulated days, whose persona and lapse follow from their id). ``history_end`` is the
    last day of the seeded history (lapse dates count from the day after). Customers whose
    persona is in ``silent_personas`` place no order, and ``arrival_multiplier`` scales the number
    of newcomers per day (both simulate a shift in the customer base).
    """
    if days < 1:
        raise ValueError(f"simulate_days.days must be at least 1, got {days}.")
    if not 0 <= arrival_multiplier <= 1000:
        raise ValueError(
            f"simulate_days.arrival_multiplier must be between 0 and 1000, got {arrival_multiplier}."
        )
    unknown = sorted(set(silent_personas) - {p.name for p in PERSONAS})
    if unknown:
        raise ValueError(
            f"simulate_days.silent_personas names unknown persona(s) {unknown}; known: {[p.name for p in PERSONAS]}."
        )
    rates = {p.name: p for p in PERSONAS}
    since = (history_end + timedelta(days=1)) if history_end else start
    rng = np.random.default_rng([seed, start.toordinal(), days])
    customers: list[tuple[str, str, date]] = []  # (id, persona, lapse date)
    seen = set()
    for cid, persona in zip(population.customer_ids, population.personas):
        customers.append((cid, persona, _lapse_date(seed, cid, persona, since)))
        seen.add(cid)
    for cid in sorted(set(known_customers) - seen):
        arrival = _arrival_date(cid) or since
        persona = _persona_of_newcomer(seed, cid)
        customers.append((cid, persona, _lapse_date(seed, cid, persona, arrival)))

    end = start + timedelta(days=days)
    last_moment = datetime.combine(end, datetime.min.time()) - timedelta(seconds=1)
    rows: list[tuple] = []
    order_seq = 0
    arrivals_per_day = DAILY_ARRIVAL_RATE * max(len(population.customer_ids), 1) * float(arrival_multiplier)
    n_products = len(population.products)
    silent = set(silent_personas)

    def order(cid: str, persona: Persona, day: date) -> None:
        nonlocal order_seq
        order_seq += 1
        order_id = f"O-S{start:%Y%m%d}-{order_seq:06d}"
        ts = datetime.combine(day, datetime.min.time()) + timedelta(
            seconds=float(rng.uniform(8 * 3600, 22 * 3600))
        )
        channel = CHANNELS[int(rng.choice(4, p=np.array(persona.channels)))]
        favourite = int(_unit(seed, "favourite", cid) * n_products)
        if rng.random() < 0.5:
            product = population.products[favourite]
            rows.append(
                (
                    "PAGE_VIEW",
                    ts - timedelta(minutes=int(rng.integers(1, 90))),
                    cid,
                    None,
                    product[0],
                    product[1],
                    None,
                    None,
                    channel,
                )
            )
        lines = []
        for _ in range(int(rng.integers(1, 4))):
            p = favourite if rng.random() < 0.5 else int(rng.integers(0, n_products))
            qty = int(rng.integers(1, 4))
            amount = round(
                qty * persona.basket * float(population.product_price[p]) * float(rng.uniform(0.8, 1.2)), 2
            )
            line = ("ORDER_CREATED", ts, cid, order_id, *population.products[p], qty, amount, channel)
            rows.append(line)
            lines.append(line)
        if rng.random() < 0.03:
            total = round(sum(line[7] for line in lines), 2)
            rows.append(
                (
                    "ORDER_CANCELLED",
                    # within the batch, as returns are: no event after the day the batch is loaded
                    min(ts + timedelta(hours=int(rng.integers(1, 48))), last_moment),
                    cid,
                    order_id,
                    None,
                    None,
                    None,
                    total,
                    channel,
                )
            )
            return
        for line in lines:
            if rng.random() < 0.05:
                ret_ts = min(ts + timedelta(days=int(rng.integers(3, 25))), last_moment)
                rows.append(
                    ("ORDER_RETURNED", ret_ts, cid, order_id, line[4], line[5], line[6], line[7], channel)
                )

    for offset in range(days):
        day = start + timedelta(days=offset)
        draws = rng.random(len(customers))
        for (cid, persona_name, lapse), u in zip(customers, draws):
            if persona_name in silent or day >= lapse:
                continue
            if _arrival_date(cid) is not None and day < _arrival_date(cid):  # type: ignore[operator]
                continue
            if u < DAILY_ORDER_RATE[persona_name]:
                order(cid, rates[persona_name], day)
        for i in range(int(rng.poisson(arrivals_per_day))):
            cid = f"{NEW_CUSTOMER_PREFIX}{day:%Y%m%d}-{i + 1:04d}"
            persona_name = _persona_of_newcomer(seed, cid)
            customers.append((cid, persona_name, _lapse_date(seed, cid, persona_name, day)))
            if persona_name not in silent:
                order(cid, rates[persona_name], day)  # a newcomer arrives with a first order

    frame = pd.DataFrame(rows, columns=EVENT_ROW_COLUMNS)
    frame = frame.sort_values(["TS", "ORDER_ID", "EVENT_TYPE"], kind="stable").reset_index(drop=True)
    frame.insert(0, "EVENT_ID", [f"E-S{start:%Y%m%d}-{i:07d}" for i in range(1, len(frame) + 1)])
    frame = as_landed_text(frame)
    # Stamped as one load, the morning after the last simulated day (after every event of the batch).
    frame["LOADED_AT"] = pd.Timestamp(batch_loaded_at(start, days))
    frame["SOURCE_FILE"] = f"{SIMULATION_SOURCE_PREFIX}seed-{seed}/{start.isoformat()}/{days}d"
    frame["SOURCE_ROW"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame[list(RAW_COLUMNS)]
