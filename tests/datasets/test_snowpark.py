"""SnowparkTableDataset on the embedded warehouse: table kinds, grants, MERGE, metadata cache."""

from __future__ import annotations

from typing import Any

import pytest
from kedro.io.core import DatasetError

from customer_segmentation.datasets import REBUILD_MARKER, ScopedMerge, SnowparkTableDataset
from customer_segmentation.errors import MissingTableError


def _dataset(table: str, **save_args: Any) -> SnowparkTableDataset:
    return SnowparkTableDataset(table_name=table, credentials={}, save_args=save_args or None)


def _sent(session: Any, action: Any) -> list[str]:
    with session.query_history() as history:
        action()
    return [q.sql_text for q in history.queries]


def test_overwrite_keeps_grants_and_uses_the_configured_kind(warehouse_session: Any) -> None:
    """Snowflake drops grants on CREATE OR REPLACE without COPY GRANTS: the statement must say it.

    (Grants themselves are checked on a live account in tests/snowflake/.)
    """
    data = warehouse_session.sql("SELECT 1 AS A, 'x' AS B")
    transient = _dataset("FEATS", mode="overwrite", table_type="transient", copy_grants=True)
    for _ in range(2):  # the rerun is the case that matters
        sent = " ".join(_sent(warehouse_session, lambda: transient.save(data))).upper()
        assert "CREATE  OR  REPLACE  TRANSIENT  TABLE" in sent and "COPY GRANTS" in sent
    permanent = _dataset("PROCESSED", mode="overwrite")  # copy_grants defaults to true
    sent = " ".join(_sent(warehouse_session, lambda: permanent.save(data))).upper()
    assert "COPY GRANTS" in sent and "TRANSIENT" not in sent and "TEMPORARY" not in sent
    no_grants = _dataset("PLAIN", mode="overwrite", copy_grants=False)
    assert "COPY GRANTS" not in " ".join(_sent(warehouse_session, lambda: no_grants.save(data))).upper()
    assert [tuple(r) for r in transient.load().collect()] == [(1, "x")]


def test_temporary_table_is_per_session_scratch(warehouse_session: Any) -> None:
    batch = _dataset("SCRATCH", mode="overwrite", table_type="temporary")
    sent = " ".join(
        _sent(warehouse_session, lambda: batch.save(warehouse_session.sql("SELECT 7 AS N")))
    ).upper()
    assert "TEMPORARY" in sent and "COPY GRANTS" not in sent
    assert [tuple(r) for r in batch.load().collect()] == [(7,)]


def test_temporary_table_is_gone_in_a_new_session(tmp_path: Any) -> None:
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "wh"))
    try:
        batch = _dataset("SCRATCH", mode="overwrite", table_type="temporary")
        batch.save(warehouse.get_session().sql("SELECT 7 AS N"))
        warehouse.close()
        with pytest.raises(DatasetError, match="SCRATCH does not exist") as excinfo:
            batch.load()
        assert isinstance(excinfo.value.__cause__, MissingTableError)
    finally:
        warehouse.close()


@pytest.mark.parametrize(
    ("save_args", "message"),
    [
        ({"table_type": "external"}, "table_type"),
        ({"copy_grants": "yes"}, "copy_grants"),
        ({"mode": "append", "table_type": "temporary"}, "temporary"),
        ({"mode": "overwrite", "rebuild_marker": True}, "rebuild_marker"),
        ({"mode": "merge", "merge_keys": ["K"], "rebuild_marker": "yes"}, "rebuild_marker"),
    ],
)
def test_bad_save_args_are_refused(save_args: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        _dataset("T", **save_args)


def test_merge_of_one_select_inserts_only_new_keys_without_a_staged_copy(warehouse_session: Any) -> None:
    target = _dataset("EVENTS", mode="merge", merge_keys=["K"])
    first = warehouse_session.sql("SELECT 'a' AS K, 1 AS V UNION ALL SELECT 'b', 2")
    target.save(first)
    sent = _sent(
        warehouse_session,
        lambda: target.save(warehouse_session.sql("SELECT 'b' AS K, 20 AS V UNION ALL SELECT 'c', 3")),
    )
    merge = [s for s in sent if s.upper().startswith("MERGE INTO")]
    assert len(merge) == 1 and " USING (SELECT" in merge[0].upper()  # the plan's one SELECT as a subquery
    assert not any("_STAGE_" in s.upper() for s in sent)  # no second copy of the rows
    target.save(first)  # rerun: nothing new
    rows = sorted(tuple(r) for r in warehouse_session.table("SEGMENTATION.PUBLIC.EVENTS").collect())
    assert rows == [("a", 1), ("b", 2), ("c", 3)]


def test_scoped_merge_compares_only_the_target_rows_in_its_range(warehouse_session: Any) -> None:
    """ScopedMerge: the MERGE compares the source with the target rows whose column is NULL or in
    (after, up_to] only, with the bounds bound as values; every other row is left out of the comparison
    (here, on purpose, a key outside the range that the source repeats is inserted again: the scope is a
    promise of the caller that such a match cannot exist). Plain and staged sources, open bounds, errors."""
    warehouse_session.sql(
        "CREATE OR REPLACE TABLE SCOPED (K VARCHAR, LOADED_AT TIMESTAMP_NTZ, V INT) AS SELECT * FROM VALUES "
        "('old', '2026-01-01 00:00:00'::TIMESTAMP_NTZ, 1), ('in', '2026-02-01 12:00:00.5'::TIMESTAMP_NTZ, 2), "
        "('null', NULL, 3), ('edge', '2026-02-01 00:00:00'::TIMESTAMP_NTZ, 4) AS t(K, LOADED_AT, V)"
    ).collect()
    source = warehouse_session.sql(
        "SELECT K, CAST(NULL AS TIMESTAMP_NTZ) AS LOADED_AT, V FROM VALUES ('old', 10), ('in', 20), ('null', 30), "
        "('edge', 40), ('new', 50) AS s(K, V)"
    )
    target = _dataset("SCOPED", mode="merge", merge_keys=["K"])
    scope = ScopedMerge(source, "LOADED_AT", after="2026-02-01 00:00:00", up_to="2026-02-01 12:00:00.5")
    sent = _sent(warehouse_session, lambda: target.save(scope))
    (merge,) = [s for s in sent if s.upper().startswith("MERGE INTO")]
    assert "2026-02-01" not in merge  # the bounds are bound values, not text in the statement
    rows = sorted(tuple(r)[::2] for r in warehouse_session.table("SEGMENTATION.PUBLIC.SCOPED").collect())
    # 'in' (inside the range) and 'null' (NULL LOADED_AT) matched; 'old' and 'edge' (at the excluded lower
    # bound) were outside the comparison and came in again; 'new' is new
    assert rows == [("edge", 4), ("edge", 40), ("in", 2), ("new", 50), ("null", 3), ("old", 1), ("old", 10)]
    # open bounds: no range, an unscoped merge (nothing new now); a staged source takes the scope too
    target.save(ScopedMerge(source, "LOADED_AT"))
    target.save(ScopedMerge(_SeveralStatements(source), "LOADED_AT", up_to="2026-02-01 12:00:00.5"))
    assert warehouse_session.sql("SELECT COUNT(*) FROM SCOPED").collect()[0][0] == 7
    with pytest.raises(DatasetError, match="no column MISSING"):
        target.save(ScopedMerge(source, "MISSING", after="2026-01-01 00:00:00"))
    with pytest.raises(DatasetError, match="scoped merge"):
        _dataset("SCOPED_OVER", mode="overwrite").save(ScopedMerge(source, "LOADED_AT"))


class _SeveralStatements:
    """A DataFrame whose plan reports a statement before its SELECT, as Snowpark's temp objects make on Snowflake."""

    def __init__(self, frame: Any) -> None:
        self._frame = frame
        self.columns = frame.columns
        self.write = frame.write
        self.limit = frame.limit

    @property
    def queries(self) -> dict[str, list[str]]:
        return {"queries": ["SELECT 1", *self._frame.queries["queries"]], "post_actions": []}


def test_merge_of_a_multi_statement_plan(warehouse_session: Any) -> None:
    """A source whose plan is several statements (here: a temp table first) still merges right."""
    warehouse_session.sql("CREATE TEMPORARY TABLE SRC_TMP (K VARCHAR, V INT)").collect()
    warehouse_session.sql("INSERT INTO SRC_TMP VALUES ('x', 1), ('y', 2)").collect()
    source = warehouse_session.table("SRC_TMP").filter("V > 0")
    target = _dataset("EV2", mode="merge", merge_keys=["K"])
    sent = _sent(warehouse_session, lambda: target.save(_SeveralStatements(source)))
    merge = [s for s in sent if s.upper().startswith("MERGE INTO")]
    assert len(merge) == 1 and " USING EV2_STAGE_" in merge[0].upper()  # staged, not pasted
    assert any(s.upper().startswith("DROP TABLE IF EXISTS EV2_STAGE_") for s in sent)
    target.save(source)
    assert sorted(tuple(r) for r in warehouse_session.table("SEGMENTATION.PUBLIC.EV2").collect()) == [
        ("x", 1),
        ("y", 2),
    ]


def test_rebuild_marker_replaces_a_merge_table_and_is_not_written(warehouse_session: Any) -> None:
    """A complete rebuild (marker column) replaces the content, keeps grants; without it the frame merges."""
    target = _dataset("REBUILT", mode="merge", merge_keys=["K"], rebuild_marker=True, copy_grants=True)
    target.save(warehouse_session.sql("SELECT 'old' AS K, 1 AS V UNION ALL SELECT 'kept' AS K, 2 AS V"))
    rebuild = warehouse_session.sql(f"SELECT 'kept' AS K, 20 AS V, TRUE AS {REBUILD_MARKER}")
    sent = " ".join(_sent(warehouse_session, lambda: target.save(rebuild))).upper()
    assert "CREATE  OR  REPLACE" in sent and "COPY GRANTS" in sent and "MERGE INTO" not in sent
    table = warehouse_session.table("SEGMENTATION.PUBLIC.REBUILT")
    assert table.columns == ["K", "V"]  # the marker is never stored
    assert sorted(tuple(r) for r in table.collect()) == [("kept", 20)]  # 'old' is gone, 'kept' replaced
    # an empty rebuild empties the table (the marker is in the schema, not in the rows)
    target.save(warehouse_session.sql(f"SELECT 'x' AS K, 1 AS V, TRUE AS {REBUILD_MARKER} WHERE 1 = 0"))
    assert table.count() == 0
    target.save(warehouse_session.sql("SELECT 'a' AS K, 1 AS V"))  # no marker: the catalog's merge
    target.save(warehouse_session.sql("SELECT 'a' AS K, 9 AS V UNION ALL SELECT 'b' AS K, 2 AS V"))
    assert sorted(tuple(r) for r in table.collect()) == [("a", 1), ("b", 2)]


def test_rebuild_without_the_catalogs_consent_is_refused(warehouse_session: Any) -> None:
    target = _dataset("NOREBUILD", mode="merge", merge_keys=["K"])
    with pytest.raises(DatasetError, match="rebuild_marker: true"):
        target.save(warehouse_session.sql(f"SELECT 'a' AS K, TRUE AS {REBUILD_MARKER}"))
    assert not target.exists()


def test_columns_are_looked_up_once_per_session_and_refreshed_on_write(warehouse_session: Any) -> None:
    data = warehouse_session.sql("SELECT 1 AS A")
    dataset = _dataset("CACHED", mode="overwrite")
    dataset.save(data)
    lookups = lambda sent: sum("INFORMATION_SCHEMA.COLUMNS" in s.upper() for s in sent)  # noqa: E731
    assert (
        lookups(_sent(warehouse_session, lambda: [dataset.load() for _ in range(3)])) == 0
    )  # learned by the save
    dataset.save(warehouse_session.sql("SELECT 1 AS A, 2 AS B"))
    assert dataset.load().columns == ["A", "B"]  # the rewrite refreshed the cached columns
    other = _dataset("MADE_ELSEWHERE")
    warehouse_session.sql("CREATE TABLE MADE_ELSEWHERE (X INT)").collect()
    assert lookups(_sent(warehouse_session, lambda: [other.load() for _ in range(3)])) == 1
    missing = _dataset("NOT_YET")
    assert (
        lookups(_sent(warehouse_session, lambda: [missing.exists() for _ in range(2)])) == 2
    )  # absence is not cached


def test_the_first_look_up_lists_the_whole_schema_in_one_query(warehouse_session: Any) -> None:
    """One INFORMATION_SCHEMA query for a schema's tables, not one per table; later changes still seen."""
    from customer_segmentation.warehouse.tables import forget_table_columns, table_columns

    for name, cols in (("LISTED_A", "A INT, B INT"), ("LISTED_B", "C INT"), ("LISTED_C", "D INT, E INT")):
        warehouse_session.sql(f"CREATE OR REPLACE TABLE {name} ({cols})").collect()
    warehouse_session.sql('CREATE OR REPLACE TABLE "Listed_Mixed" (M INT)').collect()
    forget_table_columns(warehouse_session)  # as at the start of a run: nothing known yet
    lookups = lambda sent: sum("INFORMATION_SCHEMA.COLUMNS" in s.upper() for s in sent)  # noqa: E731
    found: dict[str, list[str]] = {}

    def look(*names: str) -> None:
        for name in names:
            found[name] = table_columns(warehouse_session, "SEGMENTATION", "PUBLIC", name)

    assert lookups(_sent(warehouse_session, lambda: look("LISTED_A", "LISTED_B", "LISTED_C"))) == 1
    assert found == {"LISTED_A": ["A", "B"], "LISTED_B": ["C"], "LISTED_C": ["D", "E"]}
    # a table missing from the listing is asked for again (another step may have made it since)
    assert lookups(_sent(warehouse_session, lambda: look("NOT_THERE"))) == 1
    assert found["NOT_THERE"] == []
    warehouse_session.sql("CREATE TABLE NOT_THERE (X INT)").collect()
    assert lookups(_sent(warehouse_session, lambda: look("NOT_THERE"))) == 1
    assert found["NOT_THERE"] == ["X"]
    # a quoted mixed-case name is not the upper-case name a look-up asks for: not taken from the listing
    assert lookups(_sent(warehouse_session, lambda: look("LISTED_MIXED"))) == 1
    assert found["LISTED_MIXED"] == []
    forget_table_columns(warehouse_session)  # forgetting everything lists the schema again
    assert lookups(_sent(warehouse_session, lambda: look("LISTED_A", "LISTED_B"))) == 1
    for name in ("LISTED_A", "LISTED_B", "LISTED_C", "NOT_THERE", '"Listed_Mixed"'):
        warehouse_session.sql(f"DROP TABLE IF EXISTS {name}").collect()
    forget_table_columns(warehouse_session)


def test_preview_of_a_table_that_is_not_there_is_empty(warehouse_session: Any) -> None:
    scratch = _dataset("SCRATCH_ELSEWHERE", mode="overwrite", table_type="temporary")
    assert scratch.preview() == {"index": [], "columns": [], "data": []}
    scratch.save(warehouse_session.sql("SELECT 1 AS A"))
    assert scratch.preview()["data"] == [[1]]
