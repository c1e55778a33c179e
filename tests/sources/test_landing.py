"""Landing a table source: once, incremental, crash-safe, never mixed with the demo."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from customer_segmentation.datasets.sources import SourcePullDataset, SourceReader
from customer_segmentation.sources.declarations import parse_sources
from customer_segmentation.sources.pull import plan_table_pull
from customer_segmentation.warehouse.tables import RAW_COLUMNS, create_table_sql

pytestmark = pytest.mark.integration

COLUMNS = {
    "EVENT_ID": "SALE_ID",
    "EVENT_TYPE": {"constant": "ORDER_CREATED"},
    "EVENT_TS": "SALE_DATE",
    "CUSTOMER_ID": "CUSTOMER_ID",
    "ORDER_ID": "SALE_ID",
    "AMOUNT": "TOTAL_PRICE",
}


class Setup:
    def __init__(self, session: Any, incremental_by: str = "SALE_ID") -> None:
        self.session = session
        tag = uuid.uuid4().hex[:8].upper()
        self.schema, self.raw, self.state = f"SRC_{tag}", f"RAW_{tag}", f"STATE_{tag}"
        session.sql(f"CREATE SCHEMA IF NOT EXISTS SEGMENTATION.{self.schema}").collect()
        session.use_schema("SEGMENTATION.PUBLIC")  # CREATE SCHEMA makes the new schema current
        session.sql(
            f"CREATE TABLE SEGMENTATION.{self.schema}.SALES (SALE_ID NUMBER(38,0), SALE_DATE TIMESTAMP_NTZ, "
            "CUSTOMER_ID VARCHAR, TOTAL_PRICE NUMBER(10,2))"
        ).collect()
        self.source = parse_sources(
            {"caves": {"table": f"{self.schema}.SALES", "incremental_by": incremental_by, "columns": COLUMNS}}
        )["caves"]
        self.reader = SourceReader(session, "SEGMENTATION", "PUBLIC", self.raw, self.state)
        self.dataset = SourcePullDataset(
            table_name=self.raw, history_table=f"HIST_{tag}", state_table=self.state, credentials={}
        )

    def add(self, *rows: tuple[int, str]) -> None:
        values = ", ".join(f"({i}, '{ts}', 'C{i % 3}', {i}.25)" for i, ts in rows)
        self.session.sql(f"INSERT INTO SEGMENTATION.{self.schema}.SALES VALUES {values}").collect()

    def pull(self) -> tuple[Any, dict]:
        pull = plan_table_pull(self.reader, self.source, {"run_id": "r", "demo_derived_tables": []})
        self.dataset.save([pull])
        return pull, self.dataset.load()[0]

    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.session.sql(sql).collect()]


def test_each_pull_reads_only_the_new_rows_and_lands_them_once(session: Any) -> None:
    s = Setup(session)
    s.add(*[(i, f"2024-01-0{i} 10:00:00") for i in range(1, 6)])
    pull, report = s.pull()
    assert (pull.rows_read, report["rows_landed"], report["status"]) == (5, 5, "landed")
    s.add((6, "2024-01-06 10:00:00"), (7, "2024-01-06 10:00:00"))
    pull, report = s.pull()
    assert (pull.rows_read, pull.rows_new, report["rows_landed"]) == (2, 2, 2)
    assert (report["watermark_from"], report["watermark_to"]) == ("5", "7")
    pull, report = s.pull()  # nothing new: nothing read, nothing written
    assert (pull.rows_read, report["status"]) == (0, "up_to_date")
    landed = s.rows(f"SELECT EVENT_ID, SOURCE_FILE, SOURCE_ROW FROM {s.raw} ORDER BY LOADED_AT, SOURCE_ROW")
    assert [r[0] for r in landed] == ["1", "2", "3", "4", "5", "6", "7"]
    assert {r[1] for r in landed} == {"source://caves"} and [r[2] for r in landed] == [1, 2, 3, 4, 5, 1, 2]
    assert s.rows(f"SELECT PULL_NO, WATERMARK, ROWS_READ, ROWS_LANDED FROM {s.state} ORDER BY PULL_NO") == [
        (1, "5", 5, 5),
        (2, "7", 2, 2),
    ]


def test_a_timestamp_watermark_reads_its_boundary_again(session: Any) -> None:
    s = Setup(session, incremental_by="SALE_DATE")
    s.add((1, "2024-01-01 10:00:00"), (2, "2024-01-02 10:00:00"))
    s.pull()
    s.add((3, "2024-01-02 10:00:00"), (4, "2024-01-03 09:00:00"))  # 3 shares the watermark's timestamp
    pull, report = s.pull()
    assert (pull.rows_read, pull.rows_new, report["rows_landed"]) == (3, 2, 2)
    events = [r[0] for r in s.rows(f"SELECT EVENT_ID FROM {s.raw} ORDER BY EVENT_ID")]
    assert events == ["1", "2", "3", "4"]


def test_a_pull_stopped_before_commit_leaves_nothing_and_the_next_one_lands_it(
    session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Setup(session)
    s.add(*[(i, "2024-01-01 10:00:00") for i in range(1, 4)])

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed after the rows, before the commit")

    with monkeypatch.context() as m:
        m.setattr(SourcePullDataset, "mark_loaded", crash)
        with pytest.raises(KeyboardInterrupt):
            s.pull()
    assert s.rows(f"SELECT COUNT(*) FROM {s.raw}") == [(0,)]  # rolled back with the transaction
    assert s.rows(f"SELECT COUNT(*) FROM {s.state}") == [(0,)]  # the watermark did not move
    history = f"HIST_{s.raw.removeprefix('RAW_')}"
    assert s.rows(f"SELECT STATUS FROM {history}") == [("loading",)]
    pull, report = s.pull()
    assert (pull.rows_read, report["rows_landed"]) == (3, 3)
    assert s.rows(f"SELECT STATUS, ROW_COUNT FROM {history}") == [("loaded", 3)]
    assert s.rows(f"SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM {s.raw}") == [(3, 3)]


def test_the_first_pull_removes_a_demo_only_raw_data(session: Any) -> None:
    s = Setup(session)
    session.sql(create_table_sql("SEGMENTATION", "PUBLIC", s.raw, RAW_COLUMNS)).collect()
    session.sql(
        f"INSERT INTO {s.raw} (EVENT_ID, SOURCE_FILE) VALUES ('D1', 'demo://faker'), ('D2', 'demo://faker')"
    ).collect()
    pull, report = s.pull()  # an empty source lands nothing and removes nothing
    assert report["status"] == "up_to_date" and s.rows(f"SELECT COUNT(*) FROM {s.raw}") == [(2,)]
    s.add((1, "2024-01-01 10:00:00"))
    s.pull()
    assert s.rows(f"SELECT EVENT_ID, SOURCE_FILE FROM {s.raw}") == [("1", "source://caves")]


def test_a_declared_file_is_pulled_once_per_content_and_skipped_when_absent(
    session: Any, tmp_path: Any
) -> None:
    from customer_segmentation.sources.pull import plan_pulls

    s = Setup(session)
    path = tmp_path / "caisse.csv"
    path.write_bytes(
        "Ticket;Jour;Client;Montant\r\nT1;2024-01-02;Zoé;12,50\r\nT2;2024-01-03;Loïc;3\r\n".encode("cp1252")
    )
    declared = {
        "caisse": {
            "file": str(path),
            "encoding": "cp1252",
            "columns": {
                "EVENT_ID": "Ticket",
                "EVENT_TYPE": {"constant": "ORDER_CREATED"},
                "EVENT_TS": "Jour",
                "CUSTOMER_ID": "Client",
                "ORDER_ID": "Ticket",
                "AMOUNT": "Montant",
            },
        },
        "absent": {
            "file": str(tmp_path / "missing.csv"),
            "columns": {
                "EVENT_ID": "A",
                "EVENT_TYPE": "B",
                "EVENT_TS": "C",
                "CUSTOMER_ID": "D",
                "ORDER_ID": "E",
                "AMOUNT": "F",
            },
        },
    }
    sources = parse_sources(declared)
    s.dataset.save(plan_pulls(s.reader, sources, "r", []))
    first, skipped = s.dataset.load()
    assert (first["status"], first["rows_added"], skipped["status"]) == ("loaded", 2, "skipped")
    rows = s.rows(f"SELECT EVENT_ID, CUSTOMER_ID, AMOUNT, SOURCE_ROW FROM {s.raw} ORDER BY SOURCE_ROW")
    assert rows == [("T1", "Zoé", "12.50", 1), ("T2", "Loïc", "3", 2)]
    s.dataset.save(plan_pulls(s.reader, sources, "r", []))
    assert s.dataset.load()[0]["status"] == "already_loaded"
    assert s.rows(f"SELECT COUNT(*) FROM {s.raw}") == [(2,)]
