"""What happens when a session opens: the embedded warehouse gets its RAW_DATA and demo events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from customer_segmentation.warehouse.config import WarehouseSettings
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import RAW_COLUMNS, append_pandas, create_table_sql, table_exists

logger = logging.getLogger(__name__)

DEMO_ARGS = ("n_customers", "end_date", "history_days", "defect_rate", "seed", "loaded_at", "source")


def prepare_warehouse(
    session: Any, settings: WarehouseSettings, raw_table: str = "RAW_DATA", demo: Mapping[str, Any] | None = None
) -> int:
    """Create RAW_DATA and seed demo events when empty; returns the number of rows seeded.

    The embedded warehouse is always prepared. Real Snowflake is never written to unless the
    parameter ``demo_data.seed_snowflake`` is explicitly true.
    """
    demo = dict(demo or {})
    raw_table = validate_identifier(raw_table, "table name")
    if not settings.is_embedded and not demo.get("seed_snowflake", False):
        return 0
    if not demo.get("enabled", True):
        return 0
    if not table_exists(session, settings.database, settings.schema, raw_table):
        session.sql(create_table_sql(settings.database, settings.schema, raw_table, RAW_COLUMNS)).collect()
    fqn = qualified_name(settings.database, settings.schema, raw_table)
    if session.table(fqn).limit(1).count() > 0:
        return 0
    return seed_demo_events(session, settings, raw_table, demo)


def seed_demo_events(session: Any, settings: WarehouseSettings, raw_table: str, demo: Mapping[str, Any]) -> int:
    """Append the deterministic demo events to ``raw_table`` (bulk load, not row by row)."""
    from customer_segmentation.demo_data import generate_events

    events = generate_events(**{k: v for k, v in demo.items() if k in DEMO_ARGS})
    append_pandas(session, raw_table, events)
    logger.info("Seeded %s demo events into %s.%s.%s", len(events), settings.database, settings.schema, raw_table)
    return len(events)
