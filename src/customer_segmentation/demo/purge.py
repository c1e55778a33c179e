"""Removing the demo when the user loads their first file, so demo and user data never mix.

Called by ``load_events`` before it appends a file. When RAW_DATA holds demo rows (``SOURCE_FILE``
starting with ``demo://``) and no other row, the tables derived from them (parameter
``demo_data.derived_tables``) are dropped first and the demo rows deleted last: a run that stops
half-way leaves the demo rows in place, so the next load finds them and finishes the job. The
next ``kedro run`` rebuilds every derived table from the user's rows alone.

A RAW_DATA that already mixes both (written by an older version) is left as it is, with a warning
that says how to clean it: the user's rows and the history built on them are not dropped
automatically.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from customer_segmentation.demo.marker import DEMO_SOURCE_PREFIX
from customer_segmentation.demo.params import DEFAULT_DERIVED_TABLES
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import forget_table_columns, table_columns

logger = logging.getLogger(__name__)


def count_demo_rows(session: Any, raw_fqn: str) -> tuple[int, int]:
    """(demo rows, other rows) in RAW_DATA; a NULL SOURCE_FILE counts as the user's."""
    row = session.sql(
        "SELECT COALESCE(SUM(CASE WHEN SOURCE_FILE LIKE ? THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN SOURCE_FILE LIKE ? THEN 0 ELSE 1 END), 0) FROM {raw_fqn}",
        params=[DEMO_SOURCE_PREFIX + "%", DEMO_SOURCE_PREFIX + "%"],
    ).collect()[0]
    return int(row[0]), int(row[1])


def remove_demo_before_first_load(
    session: Any, database: str, schema: str, raw_table: str, derived_tables: Sequence[str] | None = None
) -> int:
    """Drop the demo and everything derived from it when RAW_DATA holds only demo rows; rows removed."""
    tables = [
        validate_identifier(t, "table name (demo_data.derived_tables)")
        for t in (DEFAULT_DERIVED_TABLES if derived_tables is None else derived_tables)
    ]
    columns = table_columns(session, database, schema, raw_table)
    if "SOURCE_FILE" not in columns:  # no RAW_DATA yet, or a user's own table without load stamps
        return 0
    raw_fqn = qualified_name(database, schema, raw_table)
    demo_rows, user_rows = count_demo_rows(session, raw_fqn)
    if demo_rows == 0:
        return 0
    if user_rows > 0:
        logger.warning(
            "%s holds %s demo events (SOURCE_FILE '%s...') next to %s of your own, so segments mix both. "
            "To keep only yours: DELETE FROM %s WHERE SOURCE_FILE LIKE '%s%%', then "
            "`kedro run --params=ingestion.full_refresh=true`.",
            raw_fqn,
            f"{demo_rows:,}",
            DEMO_SOURCE_PREFIX,
            f"{user_rows:,}",
            raw_fqn,
            DEMO_SOURCE_PREFIX,
        )
        return 0
    # No single transaction is possible: on Snowflake each DDL (DROP) commits on its own and commits
    # any open transaction (docs.snowflake.com/en/sql-reference/transactions), hence the order below.
    # A dropped table stays in Time Travel for the retention period and can be restored with UNDROP
    # TABLE (docs.snowflake.com/en/sql-reference/sql/drop-table).
    dropped = []
    for table in tables:
        if table_columns(session, database, schema, table):
            # DROP rather than DELETE: the next run rebuilds each table, as on a fresh warehouse.
            session.sql(f"DROP TABLE IF EXISTS {qualified_name(database, schema, table)}").collect()
            forget_table_columns(session, database, schema, table)  # the run's column cache must not see it
            dropped.append(table)
    # Last, so that an interrupted purge is found and finished by the next load.
    session.sql(
        f"DELETE FROM {raw_fqn} WHERE SOURCE_FILE LIKE ?", params=[DEMO_SOURCE_PREFIX + "%"]
    ).collect()
    logger.info(
        "Removed the demo before your first load: %s demo events from %s and the tables built from them (%s); "
        "the next `kedro run` segments your customers only",
        f"{demo_rows:,}",
        raw_fqn,
        ", ".join(dropped) or "none yet",
    )
    return demo_rows
