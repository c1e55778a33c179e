"""Atomic writes under Snowflake's transaction rules: interrupts, failing ROLLBACKs, no DDL inside.

Every transactional write of the project is interrupted here with ``KeyboardInterrupt`` (what
Ctrl-C and, through the run's signal handling, SIGTERM raise) inside its transaction, on the
embedded warehouse made to behave like Snowflake (``snowflake_semantics``: a DDL statement commits
an open transaction). Each table must then hold the state before the write or after it, never a
mix, and no DDL may have been sent while a transaction was open.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest
from snowflake.snowpark import functions as F

from customer_segmentation import warehouse
from customer_segmentation.datasets.customer_aggregates import (
    AggregatesState,
    AggregatesUpdate,
    CustomerAggregatesDataset,
)
from customer_segmentation.datasets.model_table import (
    EvidenceTableDataset,
    SegmentationModelTableDataset,
)
from customer_segmentation.datasets.monitoring import (
    ActivationFeedDataset,
    FeedPublication,
    SnapshotWrite,
    WarehouseTableDataset,
)
from customer_segmentation.errors import TransactionStateError
from customer_segmentation.warehouse.tables import transaction, transaction_may_be_open
from tests.warehouse.snowflake_semantics import kind_of, snowflake_semantics


class Interrupt:
    """``session.sql`` that raises KeyboardInterrupt at the first statement matching ``pattern``.

    ``rollback_fails``: the ROLLBACK that follows raises too (a second Ctrl-C, a lost connection).
    """

    def __init__(self, session: Any, pattern: str, rollback_fails: bool = False) -> None:
        self.session, self.pattern, self.rollback_fails = (
            session,
            re.compile(pattern, re.I | re.S),
            rollback_fails,
        )
        self.original = session.sql
        self.fired = False
        self.after_rollback_failure: list[str] = []
        self._rollback_failed = False

    def __call__(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if self._rollback_failed:
            self.after_rollback_failure.append(query)
        if not self.fired and self.pattern.search(query):
            self.fired = True
            raise KeyboardInterrupt
        if self.fired and self.rollback_fails and query.strip().upper() == "ROLLBACK":
            self._rollback_failed = True
            raise KeyboardInterrupt
        return self.original(query, *args, **kwargs)


def interrupted(
    monkeypatch: pytest.MonkeyPatch, session: Any, pattern: str, write: Callable[[], Any], **kw: Any
) -> Interrupt:
    """Run ``write`` with ``session.sql`` interrupted at ``pattern``; the interrupt must reach the caller."""
    interrupt = Interrupt(session, pattern, **kw)
    with monkeypatch.context() as m:
        m.setattr(session, "sql", interrupt)
        with pytest.raises(KeyboardInterrupt):
            write()
    assert interrupt.fired, f"no statement matched {pattern!r}: the test did not interrupt anything"
    return interrupt


def table_of(session: Any, name: str, frame: pd.DataFrame) -> Any:
    """A Snowpark DataFrame of ``frame``'s rows, through a table (the emulator cannot bind a VALUES list)."""
    WarehouseTableDataset(table_name=name, save_args={"mode": "overwrite"}).save(frame)
    return session.table(name)


def rows(session: Any, sql: str) -> list[tuple]:
    return sorted(tuple(r) for r in session.sql(sql).collect())


# --- the double itself: it must reproduce what Snowflake does, or the tests below prove nothing ---


def test_statement_kinds() -> None:
    assert kind_of("BEGIN TRANSACTION") == "BEGIN" and kind_of(" commit") == "COMMIT"
    assert kind_of("/* c */ CREATE OR REPLACE TABLE T AS SELECT 1") == "DDL"
    assert kind_of("DROP TABLE IF EXISTS T") == "DDL" and kind_of("ALTER TABLE T RENAME TO U") == "DDL"
    assert kind_of("ALTER SESSION SET AUTOCOMMIT = TRUE") == "SESSION"
    assert kind_of("INSERT INTO T SELECT 1") == "DML" and kind_of("MERGE INTO T USING S ON 1=1") == "DML"
    assert kind_of("SELECT 1") == "QUERY" and kind_of("(SELECT 1) UNION ALL (SELECT 2)") == "QUERY"


def test_the_double_commits_an_open_transaction_on_ddl_as_snowflake_does(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = warehouse_session
    s.sql("CREATE TABLE T (X INT)").collect()
    s.sql("INSERT INTO T VALUES (1), (2)").collect()
    with snowflake_semantics(monkeypatch) as log:
        s.sql("BEGIN TRANSACTION").collect()
        s.sql("DELETE FROM T").collect()
        s.sql("CREATE TABLE U (Y INT)").collect()  # Snowflake: commits the DELETE first
        s.sql("ROLLBACK").collect()
    assert rows(s, "SELECT X FROM T") == []  # the DELETE survived the ROLLBACK, as on Snowflake
    assert len(log.ddl_in_transaction()) == 1 and len(log.implicit_commits()) == 1


def test_autocommit_off_loses_unfinished_writes_unless_the_session_pins_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowflake.snowpark import Session

    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.config import WarehouseSettings

    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "warehouse"))
    try:
        warehouse.get_session().sql("CREATE TABLE T (X INT)").collect()
        warehouse.close()
        params = embedded.server_connection_parameters(
            embedded.ensure_server(tmp_path / "warehouse"), "SEGMENTATION", "PUBLIC"
        )
        with snowflake_semantics(monkeypatch, autocommit=False) as log:
            # a session opened without the project's parameters (as with AUTOCOMMIT = FALSE set
            # for the user): the INSERT opens a transaction that dies with the session
            bare = Session.builder.configs(params).create()
            bare.sql("INSERT INTO T VALUES (1)").collect()
            bare.close()
            # the project's session pins AUTOCOMMIT = TRUE before anything else
            session = warehouse.get_session()
            session.sql("INSERT INTO T VALUES (2)").collect()
            warehouse.close()
        assert rows(warehouse.get_session(), "SELECT X FROM T") == [(2,)]  # the unpinned write was lost
        assert log.texts("SESSION")[0].startswith("ALTER SESSION SET AUTOCOMMIT = TRUE")
    finally:
        warehouse.close()
        embedded.stop_server(tmp_path / "warehouse", wait=False)


# --- the transaction helper ----------------------------------------------------------------------


def test_transactions_do_not_nest(warehouse_session: Any) -> None:
    with transaction(warehouse_session):
        with pytest.raises(TransactionStateError, match="cannot be nested"):
            with transaction(warehouse_session):
                pass
    assert not transaction_may_be_open(warehouse_session)


def test_a_failing_rollback_ends_the_session_instead_of_reusing_it(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = warehouse_session
    s.sql("CREATE TABLE T (X INT)").collect()
    s.sql("INSERT INTO T VALUES (1)").collect()

    def write() -> None:
        with transaction(s):
            s.sql("DELETE FROM T").collect()
            s.sql("INSERT INTO T VALUES (2)").collect()

    with snowflake_semantics(monkeypatch) as log:
        interrupt = interrupted(monkeypatch, s, r"^INSERT", write, rollback_fails=True)
    assert interrupt.after_rollback_failure == []  # not one statement more on that session
    assert not log.ddl_in_transaction()
    assert transaction_may_be_open(s)  # and it stays marked: nothing may issue DDL on it
    fresh = warehouse.get_session()  # the process's session was discarded: a new one opens
    assert fresh is not s
    assert rows(fresh, "SELECT X FROM T") == [(1,)]  # the closed session's transaction was rolled back


# --- every transactional write, interrupted --------------------------------------------------------


def snapshot_dataset(table: str) -> WarehouseTableDataset:
    """A SEGMENT_HISTORY-like table: each save replaces the snapshots (SNAPSHOT_DATE) its rows hold."""
    return WarehouseTableDataset(
        table_name=table, save_args={"mode": "replace_snapshot", "snapshot_column": "SNAPSHOT_DATE"}
    )


def history_rows(day: date, n: int, label: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "SNAPSHOT_DATE": [day] * n,
            "CUSTOMER_ID": [f"C{i:03d}" for i in range(n)],
            "SEGMENT_LABEL": [label] * n,
            "MONETARY": [float(i) for i in range(n)],
        }
    )


@pytest.mark.parametrize("pandas_frame", [True, False], ids=["pandas", "snowpark"])
def test_interrupted_snapshot_write_keeps_the_old_day(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch, pandas_frame: bool
) -> None:
    s = warehouse_session
    history = snapshot_dataset("T_HISTORY")
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    history.save(history_rows(d1, 5, "A"))
    history.save(history_rows(d2, 5, "A"))
    before = rows(s, "SELECT * FROM T_HISTORY")
    rerun = history_rows(d2, 6, "B")  # the day again, replaced
    data = rerun if pandas_frame else table_of(s, "T_RERUN", rerun)
    with snowflake_semantics(monkeypatch) as log:
        interrupted(
            monkeypatch,
            s,
            r"^INSERT INTO .*T_HISTORY ",
            lambda: history.save(SnapshotWrite(data, keep_after=d2)),
        )
    assert not log.ddl_in_transaction()
    assert rows(s, "SELECT * FROM T_HISTORY") == before  # the old day 2 (and day 1), not neither
    assert not s.sql("SHOW TABLES LIKE 'T_HISTORY__STAGE%'").collect()  # dropped after the ROLLBACK
    with snowflake_semantics(monkeypatch) as log:
        history.save(SnapshotWrite(data, keep_after=d2))  # the next run finishes the job
    assert not log.ddl_in_transaction()
    assert rows(s, "SELECT SNAPSHOT_DATE, COUNT(*) FROM T_HISTORY GROUP BY 1") == [(d2, 6)]


def test_snapshot_of_a_snowpark_query_goes_straight_into_the_table_without_a_scratch_table(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows from a query over other tables: DELETE + INSERT ... SELECT in one transaction, no DDL at all."""
    s = warehouse_session
    history = snapshot_dataset("T_DIRECT")
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    history.save(history_rows(d1, 5, "A"))
    history.save(history_rows(d2, 5, "A"))
    data = table_of(s, "T_DIRECT_SOURCE", history_rows(d2, 6, "B")).filter("MONETARY >= 1")
    with snowflake_semantics(monkeypatch) as log:
        history.save(SnapshotWrite(data, keep_after=d2))
    assert log.texts("DDL") == []  # no scratch table created or dropped
    assert not log.ddl_in_transaction()
    assert rows(s, "SELECT SNAPSHOT_DATE, SEGMENT_LABEL, COUNT(*) FROM T_DIRECT GROUP BY 1, 2") == [
        (d2, "B", 5)
    ]


def test_first_snapshot_of_a_snowpark_query_creates_the_table_in_one_statement(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing table is created from the query itself: one CTAS, no scratch table, Snowpark's column types."""
    s = warehouse_session
    history = snapshot_dataset("T_FIRST")
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    source = table_of(s, "T_FIRST_SOURCE", history_rows(d1, 6, "B"))
    data = source.filter("MONETARY >= 1")
    with snowflake_semantics(monkeypatch) as log:
        history.save(SnapshotWrite(data, keep_after=d1))
    ddl = log.texts("DDL")
    assert len(ddl) == 1 and "T_FIRST" in ddl[0].upper() and "__STAGE" not in ddl[0].upper(), ddl
    assert not log.ddl_in_transaction()
    assert not s.sql("SHOW TABLES LIKE 'T_FIRST__STAGE%'").collect()
    expected = rows(
        s,
        "SELECT SNAPSHOT_DATE, SEGMENT_LABEL, COUNT(*) FROM T_FIRST_SOURCE WHERE MONETARY >= 1 GROUP BY 1, 2",
    )
    assert rows(s, "SELECT SNAPSHOT_DATE, SEGMENT_LABEL, COUNT(*) FROM T_FIRST GROUP BY 1, 2") == expected
    # the same column types as the staged path gives (Snowpark's schema of the query)
    assert [(f.name, str(f.datatype)) for f in s.table("T_FIRST").schema.fields] == [
        (f.name, str(f.datatype)) for f in data.schema.fields
    ]
    # the next day goes in by DELETE + INSERT
    day2 = table_of(s, "T_FIRST_SOURCE2", history_rows(d2, 4, "A"))
    history.save(SnapshotWrite(day2, keep_after=d1))
    assert rows(s, "SELECT SNAPSHOT_DATE, COUNT(*) FROM T_FIRST GROUP BY 1") == [(d1, 5), (d2, 4)]
    # a table that appears between the existence check and the CREATE (another writer) is not replaced
    import customer_segmentation.datasets.monitoring as monitoring

    monkeypatch.setattr(monitoring, "table_columns", lambda *args: [])
    with pytest.raises(Exception, match="(?i)already exists"):
        history.save(SnapshotWrite(day2))
    assert rows(s, "SELECT SNAPSHOT_DATE, COUNT(*) FROM T_FIRST GROUP BY 1") == [(d1, 5), (d2, 4)]


def test_snapshot_computed_from_the_table_itself_is_staged_first(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query reading the target (its own day 1, restated as day 2 and day 1) must not see the DELETE."""
    from snowflake.snowpark import functions as F

    s = warehouse_session
    history = snapshot_dataset("T_SELF")
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    history.save(history_rows(d1, 4, "A"))
    history.save(history_rows(d2, 3, "A"))
    day1 = s.table("T_SELF").filter(F.col("SNAPSHOT_DATE") == F.lit(d1.isoformat()).cast("date"))
    restated = day1.select(
        F.lit(d2.isoformat()).cast("date").alias("SNAPSHOT_DATE"), "CUSTOMER_ID", "SEGMENT_LABEL", "MONETARY"
    ).union_all(day1.select("SNAPSHOT_DATE", "CUSTOMER_ID", F.lit("C").alias("SEGMENT_LABEL"), "MONETARY"))
    with snowflake_semantics(monkeypatch) as log:
        history.save(SnapshotWrite(restated))
    assert any("T_SELF__STAGE_" in t for t in log.texts("DDL"))  # staged: the query reads T_SELF
    assert not log.ddl_in_transaction()
    assert rows(s, "SELECT SNAPSHOT_DATE, SEGMENT_LABEL, COUNT(*) FROM T_SELF GROUP BY 1, 2") == [
        (d1, "C", 4),
        (d2, "A", 4),
    ]


def publication(session: Any, day: date, labels: dict[str, str], run: str) -> FeedPublication:
    segments = table_of(
        session,
        f"SEGMENTS_{run.upper()}",
        pd.DataFrame(
            {
                "CUSTOMER_ID": list(labels),
                "SEGMENT_ID": [ord(label[0]) - 64 for label in labels.values()],
                "SEGMENT_LABEL": list(labels.values()),
                "RFM_SEGMENT": ["Champions"] * len(labels),
                "MODEL_VERSION": ["v1"] * len(labels),
            }
        ),
    )
    return FeedPublication(
        segments=segments,
        snapshot_date=day,
        run_id=run,
        published_at=datetime(day.year, day.month, day.day, 7),
    )


def test_interrupted_feed_publication_sends_nothing_and_the_rerun_sends_it_once(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = warehouse_session
    feed = ActivationFeedDataset(table_name="FEED", state_table="PUBLISHED", history_table="NO_HISTORY")
    feed.save(publication(s, date(2026, 1, 1), {"A": "X", "B": "Y"}, "r1"))
    state = rows(s, "SELECT * FROM PUBLISHED")
    today = publication(s, date(2026, 1, 2), {"A": "Y", "B": "Y", "C": "X"}, "r2")
    with snowflake_semantics(monkeypatch) as log:
        interrupted(monkeypatch, s, r"^INSERT INTO \S*PUBLISHED ", lambda: feed.save(today))
    assert not log.ddl_in_transaction()
    assert rows(s, "SELECT * FROM PUBLISHED") == state and rows(s, "SELECT * FROM FEED") == []
    feed.save(today)
    feed.save(today)
    assert rows(s, "SELECT CUSTOMER_ID, FROM_SEGMENT, TO_SEGMENT FROM FEED") == [("A", "X", "Y")]


def test_interrupted_aggregates_update_keeps_the_previous_rows_and_watermark(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = warehouse_session
    aggregates = CustomerAggregatesDataset(
        table_name="AGG", daily_table="AGG_DAILY", state_table="AGG_STATE", credentials={}
    )

    def update(mode: str, spend: dict[str, float], watermark: str) -> AggregatesUpdate:
        daily = table_of(
            s,
            f"DAILY_{mode.upper()}",
            pd.DataFrame(
                {
                    "CUSTOMER_ID": list(spend),
                    "ORDER_DAY": [date(2026, 1, 1)] * len(spend),
                    "NET": list(spend.values()),
                }
            ),
        )
        return AggregatesUpdate(
            mode=mode,  # type: ignore[arg-type]
            state=AggregatesState(
                watermark=datetime.fromisoformat(watermark),
                events=len(spend),
                min_run_id="r",
                max_run_id="r",
                max_event_ts=None,
                channels="web",
                mode=mode,
            ),
            customers=lambda daily_rows: daily_rows.group_by("CUSTOMER_ID").agg(F.sum("NET").alias("NET")),
            daily_spend=daily,
            touched=daily.select("CUSTOMER_ID"),
        )

    aggregates.save(update("rebuild", {"A": 1.0, "B": 2.0}, "2026-01-01 06:00:00"))
    before = [rows(s, f"SELECT * FROM {t}") for t in ("AGG", "AGG_DAILY", "AGG_STATE")]
    with snowflake_semantics(monkeypatch) as log:
        interrupted(
            monkeypatch,
            s,
            r"^INSERT INTO \S*AGG_DAILY ",
            lambda: aggregates.save(update("incremental", {"B": 5.0}, "2026-01-02 06:00:00")),
        )
    assert not log.ddl_in_transaction()
    assert [rows(s, f"SELECT * FROM {t}") for t in ("AGG", "AGG_DAILY", "AGG_STATE")] == before


def test_interrupted_model_version_and_evidence_writes_keep_the_previous_ones(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
    from tests.datasets.test_model_table import counts, write_for
    from tests.datasets.test_model_table import dataset as models_dataset
    from tests.pipelines.training.test_nodes import PARAMS, planted_customers

    s = warehouse_session
    model = fit_segmentation_model(planted_customers(40), {"k": 3, "source": "test"}, PARAMS, {"run_id": "v"})
    models: SegmentationModelTableDataset = models_dataset()
    models.save(write_for(model, pd.DataFrame(), "v1", 1))
    before = counts(lambda sql: s.sql(sql).collect())
    evidence = EvidenceTableDataset(table_name="EVIDENCE", save_args={"key_columns": ["RUN_ID"]})
    evidence.save(pd.DataFrame({"RUN_ID": ["r1", "r1"], "N": [1, 2]}))
    with snowflake_semantics(monkeypatch) as log:
        interrupted(
            monkeypatch,
            s,
            r"^INSERT INTO \S*MODEL_SEGMENTS",
            lambda: models.save(write_for(model, pd.DataFrame(), "v2", 2)),
        )
        interrupted(
            monkeypatch,
            s,
            r"^INSERT INTO \S*EVIDENCE",
            lambda: evidence.save(pd.DataFrame({"RUN_ID": ["r1"], "N": [3]})),
        )
    assert not log.ddl_in_transaction()
    assert counts(lambda sql: s.sql(sql).collect()) == before
    assert rows(s, "SELECT VERSION FROM SEGMENTATION_MODELS") == [("v1",)]
    assert rows(s, "SELECT RUN_ID, N FROM EVIDENCE") == [("r1", 1), ("r1", 2)]


def test_interrupted_source_landing_lands_nothing_and_sends_no_ddl_inside(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A declared source's rows, history update and watermark: one transaction, DML only inside."""
    from tests.sources.test_landing import Setup

    s = Setup(warehouse_session)
    s.add(*[(i, "2024-01-01 10:00:00") for i in range(1, 4)])
    with snowflake_semantics(monkeypatch) as log:
        interrupted(monkeypatch, warehouse_session, r"^UPDATE \S*HIST_", s.pull)
        assert log.ddl_in_transaction() == []
        assert s.rows(f"SELECT COUNT(*) FROM {s.raw}") == [(0,)]  # the rows went with the ROLLBACK
        assert s.rows(f"SELECT COUNT(*) FROM {s.state}") == [(0,)]  # and the watermark did not move
        pull, report = s.pull()
        assert (pull.rows_read, report["rows_landed"]) == (3, 3)
    assert log.ddl_in_transaction() == []
    assert log.texts("BEGIN")  # the landing did run in a transaction
