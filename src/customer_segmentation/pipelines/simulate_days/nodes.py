"""Append N further days of demo events, after the latest demo load, to a demo-only warehouse."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.demo.clock import DemoClock, as_datetime
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.demo.simulation import (
    NEW_CUSTOMER_PREFIX,
    SIMULATION_SOURCE_PREFIX,
    batch_loaded_at,
    demo_population,
    simulate_events,
)
from customer_segmentation.errors import SegmentationError
from customer_segmentation.pipelines.simulate_days.params import SimulateDaysParams

logger = logging.getLogger(__name__)

DEMO_SOURCE_PREFIX = "demo://"


class SimulationRefusedError(SegmentationError):
    """simulate_days was asked to write into a warehouse that is not a demo."""


def check_demo_only(raw_data: DataFrame, run_metadata: dict[str, Any]) -> None:
    """Refuse real Snowflake and any RAW_DATA that holds rows not written by the demo."""
    if not run_metadata.get("embedded_warehouse", False):
        raise SimulationRefusedError(
            "simulate_days only writes to the embedded demo warehouse; this run targets real Snowflake "
            "(SNOWFLAKE_ACCOUNT is set). Unset the SNOWFLAKE_* variables to simulate days on the demo."
        )
    if "SOURCE_FILE" not in raw_data.columns:
        raise SimulationRefusedError(
            "RAW_DATA has no SOURCE_FILE column, so it was not written by the demo: simulate_days refuses to "
            "add invented events to it. Use a fresh project folder (or delete data/warehouse) for the demo."
        )
    foreign = raw_data.filter(
        F.col("SOURCE_FILE").is_null() | ~F.col("SOURCE_FILE").startswith(F.lit(DEMO_SOURCE_PREFIX))
    ).count()
    if foreign:
        raise SimulationRefusedError(
            f"RAW_DATA holds {foreign} row(s) that the demo did not write (SOURCE_FILE not 'demo://...'): "
            "simulate_days refuses to mix invented events with your data. Use a fresh project folder "
            "(or delete data/warehouse) for the demo."
        )


def simulate_demo_days(
    raw_data: DataFrame,
    params: SimulateDaysParams,
    demo_params: DemoDataParams,
    run_metadata: dict[str, Any],
    demo_clock: DemoClock | None = None,
) -> tuple[pd.DataFrame, DemoClock]:
    """N more days of demo events from the demo's today (appended to RAW_DATA), and the clock moved N days on.

    The demo's today is the demo clock (demo/clock.py), never behind the latest demo load. The
    events are saved first, then the clock (the node's two outputs, in that order): a run stopped
    between the two leaves the clock behind the events it dates, which the clock's reader makes up
    for, and a rerun continues after them.
    """
    days = params.days
    check_demo_only(raw_data, run_metadata)
    latest = as_datetime(raw_data.agg(F.max("LOADED_AT").alias("L")).collect()[0][0])
    if latest is None:
        raise SimulationRefusedError(
            "RAW_DATA holds no demo events to continue: enable the demo (demo_data.enabled: true) and run "
            "`kedro run` once first."
        )
    today = max(latest, demo_clock.today) if demo_clock is not None and demo_clock.today else latest
    # Every batch is stamped the morning after its last day, and the seeded demo the morning after
    # end_date: the day of the demo's today is the first day without events.
    start = today.date()
    newcomers = [
        r[0]
        for r in raw_data.filter(
            F.col("SOURCE_FILE").startswith(F.lit(SIMULATION_SOURCE_PREFIX))
            & F.col("CUSTOMER_ID").startswith(F.lit(NEW_CUSTOMER_PREFIX))
        )
        .select("CUSTOMER_ID")
        .distinct()
        .collect()
    ]
    seed = params.seed if params.seed is not None else demo_params.seed
    population = demo_population(demo_params.n_customers, demo_params.seed)
    events = simulate_events(
        start,
        days,
        population,
        known_customers=newcomers,
        seed=seed,
        history_end=demo_params.end_date,
        silent_personas=params.silent_personas,
        arrival_multiplier=params.arrival_multiplier,
    )
    logger.info(
        "Simulated %s day(s) from %s: %s events of %s customers (%s new), loaded at %s",
        days,
        start,
        len(events),
        events["CUSTOMER_ID"].nunique(),
        events.loc[events["CUSTOMER_ID"].str.startswith(NEW_CUSTOMER_PREFIX), "CUSTOMER_ID"].nunique(),
        events["LOADED_AT"].iloc[0] if len(events) else None,
    )
    # the morning after the last simulated day, as the batch is stamped (also when it holds no event)
    moved = batch_loaded_at(start, days)
    clock = DemoClock(
        today=moved, set_by=f"simulate_days ({days} day(s))", run_id=str(run_metadata.get("run_id") or "")
    )
    return events, clock
