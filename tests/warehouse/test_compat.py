"""One test per emulator patch (warehouse/compat.py): upgrades of fakesnow show what changed."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from snowflake.snowpark import functions as F
from snowflake.snowpark.exceptions import SnowparkSQLException

from customer_segmentation.warehouse import compat


def test_patches_are_applied_once(warehouse_session: Any) -> None:
    import fakesnow.arrow
    import fakesnow.copy_into
    import fakesnow.cursor
    import fakesnow.server
    import fakesnow.transforms

    compat.apply()
    for patched in (
        fakesnow.transforms.create_table_as,
        fakesnow.arrow.timestamp_to_sf_struct,
        fakesnow.copy_into._from_source,
        fakesnow.cursor.FakeSnowflakeCursor.execute,
        fakesnow.transforms.trim_cast_varchar,
        fakesnow.cursor.FakeSnowflakeCursor._describe_last_sql,
        fakesnow.cursor.FakeSnowflakeCursor._transform_explode,
        fakesnow.cursor.FakeSnowflakeCursor._transform,
        fakesnow.cursor.FakeSnowflakeCursor._execute,
        fakesnow.server.sessions,
    ):
        assert getattr(patched, "_segmentation_patch", False)
    assert any(
        getattr(f, "_segmentation_patch", False) for f in __import__("logging").getLogger("sqlglot").filters
    )


def test_1_save_as_table_of_snowflake_only_syntax(warehouse_session: Any) -> None:
    frame = warehouse_session.sql("SELECT '2026-01-01'::TIMESTAMP_NTZ AS TS, 5 AS V").select(
        F.datediff("day", F.col("TS"), F.lit("2026-02-01").cast("timestamp_ntz")).alias("D"),
        F.iff(F.col("V") > 3, F.lit("big"), F.lit("small")).alias("SIZE"),
    )
    frame.write.save_as_table("CTAS_TARGET", mode="overwrite")
    frame.write.save_as_table("CTAS_TARGET", mode="overwrite")  # reruns replace
    assert [tuple(r) for r in warehouse_session.table("CTAS_TARGET").collect()] == [(31, "big")]


def test_2_null_timestamps_come_back_as_null(warehouse_session: Any) -> None:
    rows = warehouse_session.sql(
        "SELECT * FROM (SELECT NULL::TIMESTAMP_NTZ AS TS UNION ALL SELECT '2026-01-02 03:04:05'::TIMESTAMP_NTZ) ORDER BY TS"
    ).collect()
    values = sorted((r[0] for r in rows), key=lambda v: (v is not None, v))
    assert values[0] is None
    assert str(values[1]) == "2026-01-02 03:04:05"
    frame = warehouse_session.sql("SELECT NULL::TIMESTAMP_NTZ AS TS").to_pandas()
    assert pd.isna(frame.loc[0, "TS"])


def test_3_write_pandas_into_existing_table(warehouse_session: Any) -> None:
    warehouse_session.sql("CREATE TABLE WP (A VARCHAR, B NUMBER(10,2), C TIMESTAMP_NTZ)").collect()
    frame = pd.DataFrame({"A": ["x", "y"], "B": [1.5, 2.25], "C": pd.to_datetime(["2024-01-01", None])})
    warehouse_session.write_pandas(frame, "WP", auto_create_table=False, use_logical_type=True)
    rows = sorted(warehouse_session.table("WP").collect(), key=lambda r: r["A"])
    assert [(r["A"], float(r["B"])) for r in rows] == [("x", 1.5), ("y", 2.25)]
    assert rows[1]["C"] is None


def test_4_unsupported_statement_fails_fast_with_the_engine_message(warehouse_session: Any) -> None:
    import time

    start = time.monotonic()
    with pytest.raises(
        SnowparkSQLException, match="embedded warehouse \\(fakesnow\\) cannot run this statement"
    ):
        warehouse_session.sql(
            "SELECT $1 FROM VALUES (1), (2)"
        ).collect()  # a DuckDB error fakesnow does not map
    assert time.monotonic() - start < 30


def test_5_session_close_logs_out_so_the_process_can_exit(warehouse_session: Any) -> None:
    connection = warehouse_session._conn._conn
    assert connection.rest.master_token, "login must return a master token"
    from customer_segmentation import warehouse

    warehouse.close()
    assert connection.is_closed()


def test_try_to_timestamp_with_formats_rejects_garbage(warehouse_session: Any) -> None:
    """Not a patch: the formulation ingestion uses because plain TRY_TO_TIMESTAMP is unsupported."""
    rows = warehouse_session.sql(
        "SELECT TRY_TO_TIMESTAMP_NTZ('31/02/2025 25:61', 'YYYY-MM-DD HH24:MI:SS') AS BAD, "
        "TRY_TO_TIMESTAMP_NTZ('2025-02-03 04:05:06', 'YYYY-MM-DD HH24:MI:SS') AS GOOD, "
        "TRY_TO_DECIMAL('12,50 EUR', 12, 2) AS AMOUNT"
    ).collect()[0]
    assert rows["BAD"] is None and str(rows["GOOD"]) == "2025-02-03 04:05:06" and rows["AMOUNT"] is None


def test_6_alter_session_is_accepted_as_a_no_op(warehouse_session: Any) -> None:
    warehouse_session.sql('ALTER SESSION SET QUERY_TAG = \'{"project":"x"}\'').collect()
    warehouse_session.sql("ALTER SESSION SET TIMESTAMP_NTZ_OUTPUT_FORMAT = 'MM/DD/YY'").collect()
    # ignored: the emulator keeps its own text (the code never depends on it)
    text = warehouse_session.sql("SELECT CAST('2026-01-02 03:04:05'::TIMESTAMP_NTZ AS STRING)").collect()[0][
        0
    ]
    assert text == "2026-01-02 03:04:05"


def test_7_transient_and_copy_grants_run_without_warnings(warehouse_session: Any, caplog: Any) -> None:
    frame = warehouse_session.sql("SELECT 1 AS A")
    with caplog.at_level("WARNING", logger="sqlglot"):
        frame.write.save_as_table("TR", mode="overwrite", table_type="transient", copy_grants=True)
        frame.write.save_as_table("TR", mode="overwrite", table_type="transient", copy_grants=True)
    assert [tuple(r) for r in warehouse_session.table("TR").collect()] == [(1,)]
    assert "Unsupported property" not in caplog.text


def test_8_trim_keeps_its_characters(warehouse_session: Any) -> None:
    row = warehouse_session.sql(
        "SELECT RTRIM(TO_VARCHAR(CAST('2026-01-02 03:04:05.1' AS TIMESTAMP_NTZ), 'YYYY-MM-DD HH24:MI:SS.FF9'), '0'), "
        "LTRIM(CAST(00120 AS VARCHAR), '0'), RTRIM(CAST(1200 AS INT), '0'), TRIM('xxaxx', 'x')"
    ).collect()[0]
    assert tuple(row) == ("2026-01-02 03:04:05.1", "120", "12", "a")


def test_9_union_all_of_snowpark_frames_runs(warehouse_session: Any) -> None:
    """Snowpark writes ``(SELECT ...) UNION ALL (SELECT ...)``; the emulator must describe it too."""
    first = warehouse_session.sql("SELECT 1 AS A, 'x' AS B")
    second = warehouse_session.sql("SELECT 2 AS A, 'y' AS B")
    union = first.union_all(second)
    assert union.queries["queries"][-1].lstrip().startswith("(")
    assert sorted(tuple(r) for r in union.collect()) == [(1, "x"), (2, "y")]


def test_10_insert_only_merge_runs_as_insert_where_not_exists(warehouse_session: Any) -> None:
    """Same rows and result as MERGE; no FULL OUTER JOIN staging table (merge_candidates) is made."""
    q = lambda sql: warehouse_session.sql(sql).collect()  # noqa: E731
    q("CREATE OR REPLACE TABLE MT (K VARCHAR, V INT)")
    q("INSERT INTO MT VALUES ('a', 1), ('b', 2)")
    merge = (
        "MERGE INTO MT t USING (SELECT * FROM VALUES ('b', 20), ('c', 3), ('c', 30), (NULL, 4) AS v (K, V)) s "
        "ON t.K = s.K WHEN NOT MATCHED THEN INSERT (K, V) VALUES (s.K, s.V)"
    )
    result = q(merge)
    assert result[0].as_dict() == {"number of rows inserted": 3}
    # a source row is checked against the target only (as MERGE does): both 'c' rows and the NULL key go in
    assert sorted([tuple(r) for r in q("SELECT K, V FROM MT")], key=str) == sorted(
        [("a", 1), ("b", 2), ("c", 3), ("c", 30), (None, 4)], key=str
    )
    with pytest.raises(SnowparkSQLException):
        q("SELECT COUNT(*) FROM merge_candidates")
    # any other MERGE keeps fakesnow's translation
    q(
        "MERGE INTO MT t USING (SELECT 'a' AS K, 10 AS V) s ON t.K = s.K WHEN MATCHED THEN UPDATE SET t.V = s.V"
    )
    assert q("SELECT V FROM MT WHERE K = 'a'")[0][0] == 10


def _table_rows(session: Any, name: str) -> list[Any]:
    """Rows of duckdb_tables() for ``name`` (the emulator's own catalog, outside the Snowflake views)."""
    import fakesnow.server

    cur = fakesnow.server.shared_fs.duck_conn.cursor()
    try:
        return cur.execute(
            "SELECT schema_name, temporary, comment FROM duckdb_tables() WHERE table_name = ?", [name]
        ).fetchall()
    finally:
        cur.close()


@pytest.fixture
def in_process_warehouse(tmp_path: Any, monkeypatch: Any) -> Any:
    """The emulator in this process (its DuckDB catalog can be inspected), on a fresh warehouse."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import IN_PROCESS_ENV, WarehouseSettings

    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "warehouse"))
    try:
        yield warehouse
    finally:
        warehouse.close()


def test_11_temporary_tables_are_stored_in_the_warehouse_file(in_process_warehouse: Any) -> None:
    """A temporary table is a table of its session's own schema (not DuckDB memory), dropped at logout."""
    session = in_process_warehouse.get_session()
    frame = session.sql("SELECT * FROM VALUES (1, 'a'), (2, 'b') AS v (N, S)")
    frame.write.save_as_table("SCRATCH_T", mode="overwrite", table_type="temporary")
    assert sorted(tuple(r) for r in session.table("SCRATCH_T").collect()) == [(1, "a"), (2, "b")]
    ((schema, temporary, _),) = _table_rows(session, "SCRATCH_T")
    assert schema.startswith(compat.TEMPORARY_SCHEMA_PREFIX) and schema.endswith("_PUBLIC")
    assert temporary is False  # in the warehouse file: compressed, evictable
    # replaced by the same session, as CREATE OR REPLACE TEMPORARY TABLE does on Snowflake
    frame.limit(1).write.save_as_table("SCRATCH_T", mode="overwrite", table_type="temporary")
    assert session.table("SCRATCH_T").count() == 1
    # a temporary table shadows a permanent table of the same name, for its session only
    session.sql("CREATE TABLE KEEP_ME (N INT)").collect()
    session.sql("INSERT INTO KEEP_ME VALUES (7)").collect()
    session.sql("SELECT 8 AS N").write.save_as_table("KEEP_ME", mode="overwrite", table_type="temporary")
    assert [tuple(r) for r in session.table("KEEP_ME").collect()] == [(8,)]
    assert [tuple(r) for r in session.sql("SELECT KEEP_ME.N FROM SEGMENTATION.PUBLIC.KEEP_ME").collect()] == [
        (8,)
    ]
    # a CTE of that name is the CTE; DROP TABLE drops the temporary table, then the permanent one shows
    assert session.sql("WITH KEEP_ME AS (SELECT 9 AS N) SELECT N FROM KEEP_ME").collect()[0][0] == 9
    session.sql("DROP TABLE KEEP_ME").collect()
    assert [tuple(r) for r in session.table("KEEP_ME").collect()] == [(7,)]
    in_process_warehouse.close()  # logout: the session's temporary tables go
    session = in_process_warehouse.get_session()
    assert _table_rows(session, "SCRATCH_T") == []
    assert [r[0] for r in _table_rows(session, "KEEP_ME")] == ["PUBLIC"]


def test_11_two_sessions_hold_temporary_tables_of_the_same_name(in_process_warehouse: Any) -> None:
    """Each session sees its own; at one's logout only its table goes (Snowflake's session scope)."""
    from snowflake.snowpark import Session

    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.tables import append_pandas

    first = in_process_warehouse.get_session()
    settings = in_process_warehouse.current_settings()
    server = embedded.ensure_running(settings.embedded_dir, settings.database)
    second = Session.builder.configs(
        server.connection_parameters(settings.database, settings.schema)
    ).create()
    try:
        first.sql("SELECT 1 AS N").write.save_as_table("SAME", mode="overwrite", table_type="temporary")
        second.sql("SELECT 2 AS N").write.save_as_table("SAME", mode="overwrite", table_type="temporary")
        # write_pandas (PUT + COPY INTO) into a session's temporary table, fully qualified reads
        second.sql("CREATE TEMPORARY TABLE STAGED (A VARCHAR, B NUMBER(38,0))").collect()
        append_pandas(second, "STAGED", pd.DataFrame({"A": ["x", "y"], "B": [1, 2]}))
        assert [tuple(r) for r in first.table("SAME").collect()] == [(1,)]
        assert [tuple(r) for r in second.sql("SELECT N FROM SEGMENTATION.PUBLIC.SAME").collect()] == [(2,)]
        assert [
            tuple(r) for r in second.sql("SELECT STAGED.A, B FROM PUBLIC.STAGED ORDER BY B").collect()
        ] == [
            ("x", 1),
            ("y", 2),
        ]
        with pytest.raises(SnowparkSQLException):
            first.table("STAGED").collect()  # another session's temporary table is not visible
        assert len(_table_rows(first, "SAME")) == 2
    finally:
        second.close()
    assert [tuple(r) for r in first.table("SAME").collect()] == [(1,)]
    assert len(_table_rows(first, "SAME")) == 1 and _table_rows(first, "STAGED") == []


def test_11_a_crashed_sessions_temporary_tables_go_at_the_next_login(in_process_warehouse: Any) -> None:
    """Temporary schemas of sessions that no longer exist (a server crash), and tables an older
    server marked as temporary, are dropped when a session logs in; nothing else is."""
    import fakesnow.server

    warehouse_session = in_process_warehouse.get_session()
    warehouse_session.sql("CREATE TABLE LEFT_OVER (N INT)").collect()
    warehouse_session.sql("CREATE TABLE NOT_MINE (N INT)").collect()
    marker = compat.TEMPORARY_TABLE_MARKER + "0123456789abcdef"
    stale = compat.temporary_schema("f" * 32, "PUBLIC")
    duck = fakesnow.server.shared_fs.duck_conn
    duck.execute(f"COMMENT ON TABLE SEGMENTATION.PUBLIC.LEFT_OVER IS '{marker}'")
    duck.execute(f'CREATE SCHEMA SEGMENTATION."{stale}"')
    duck.execute(f'CREATE TABLE SEGMENTATION."{stale}".INGESTION_TYPED (N INT)')
    in_process_warehouse.close()
    session = in_process_warehouse.get_session()
    assert _table_rows(session, "LEFT_OVER") == []
    assert _table_rows(session, "INGESTION_TYPED") == []
    assert len(_table_rows(session, "NOT_MINE")) == 1


def test_12_the_stage_folder_goes_when_the_process_ends(tmp_path: Any) -> None:
    """fakesnow's folder for staged files (created at import) is removed at a normal exit, content included."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from customer_segmentation.warehouse import compat; compat.apply(); "
        "from fakesnow.transforms import stage; from pathlib import Path; "
        "(Path(stage.LOCAL_BUCKET_PATH) / 'staged.csv').write_text('a,b\\n'); print(stage.LOCAL_BUCKET_PATH)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("fakesnow_bucket_")
    assert not folder.exists()


def test_sqlglot_runs_compiled_at_the_version_fakesnow_pins() -> None:
    """The embedded warehouse's SQL rewriting runs on sqlglotc, sqlglot's compiled build of the same version.

    fakesnow parses, rewrites and regenerates every statement with sqlglot; requirements.txt pins
    ``sqlglotc`` to fakesnow's sqlglot version. A mismatch, or the pin gone, leaves pure Python here.
    """
    from importlib.metadata import requires, version

    import sqlglot.expressions.core
    import sqlglot.generator
    import sqlglot.parser

    assert version("sqlglotc") == version("sqlglot")
    assert any(
        r.replace(" ", "").startswith(f"sqlglot~={version('sqlglot')}") for r in requires("fakesnow") or []
    )
    for module in (sqlglot.parser, sqlglot.generator, sqlglot.expressions.core):
        assert not str(module.__file__).endswith(".py"), (
            f"{module.__name__} is not compiled: {module.__file__}"
        )
