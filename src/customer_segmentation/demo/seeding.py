"""The demo seed: the first node of the ingestion pipeline, so that `kedro run` on a new clone has data.

It returns demo events for the ``raw_data`` dataset to append only when all of these hold:

- ``demo_data.enabled`` is true (the default);
- the warehouse is the embedded one, or ``demo_data.seed_snowflake`` is true (real Snowflake is
  never written to without that explicit opt-in);
- RAW_DATA is missing or holds no row (a RAW_DATA with any row, the user's or the demo's, is never
  seeded).

Otherwise it returns no row and the dataset writes nothing. The node is not part of the
``load_events`` pipeline: loading a file never seeds. With the events, it sets the demo clock
(``demo/clock.py``) to ``demo_data.loaded_at``, the morning the seeded history was "loaded";
the clock is saved after the events (the node's second output).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from customer_segmentation.demo.clock import DemoClock, as_datetime
from customer_segmentation.demo.generator import DEMO_SOURCE_PREFIX, generate_events
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.warehouse.tables import RAW_COLUMNS

logger = logging.getLogger(__name__)


def no_events() -> pd.DataFrame:
    """An empty frame with the RAW_DATA columns (saving it appends nothing)."""
    return pd.DataFrame({name: pd.Series(dtype="object") for name in RAW_COLUMNS})


def should_seed(raw_data: Any, demo: DemoDataParams, run_metadata: Mapping[str, Any]) -> bool:
    """True when demo events may go into this RAW_DATA (enabled, allowed target, no row yet)."""
    if not demo.enabled:
        return False
    if not run_metadata.get("embedded_warehouse", False) and not demo.seed_snowflake:
        return False
    # Checked last: the only question that costs a query (RAW_DATA is an empty frame when missing).
    return raw_data.limit(1).count() == 0


def seed_demo_events(
    raw_data: Any,
    demo: DemoDataParams,
    run_metadata: dict[str, Any],
    source_pulls: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, DemoClock]:
    """Demo events to append to an empty RAW_DATA (embedded warehouse by default), and the demo clock.

    No row and no clock (``DemoClock()``, which writes nothing) when the demo is not seeded.
    ``source_pulls`` (the report of the declared sources' pull) only orders this node after the
    pull: RAW_DATA is read when the node runs, so rows a source just landed prevent the seed.
    """
    if not should_seed(raw_data, demo, dict(run_metadata or {})):
        return no_events(), DemoClock()
    events = generate_events(**demo.generator_args())
    logger.info(
        "RAW_DATA is empty: seeding %s demo events of %s customers (SOURCE_FILE %s...; they are removed when "
        "you load your first file, or skip them with --params=demo_data.enabled=false)",
        f"{len(events):,}",
        f"{events['CUSTOMER_ID'].nunique():,}",
        DEMO_SOURCE_PREFIX,
    )
    today = as_datetime(demo.loaded_at)
    return events, DemoClock(
        today=today, set_by="demo seed", run_id=str((run_metadata or {}).get("run_id") or "")
    )
