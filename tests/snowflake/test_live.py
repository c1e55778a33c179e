"""`python -m pytest -m snowflake`: the project on a live account, or on the embedded warehouse.

With SNOWFLAKE_ACCOUNT set (key-pair or password; see docs/snowflake.md) every test runs against
that account in a throw-away schema; without it, the same tests run on the embedded warehouse in
the default test run. Steps that need something the emulator lacks (grants, logins, warehouses)
skip with the reason, after everything before them has run. Where the emulator's transactions
differ from Snowflake's (DDL inside a transaction, AUTOCOMMIT), the embedded run applies
Snowflake's rules through tests/warehouse/snowflake_semantics.py, so those steps mean the same
on both targets.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.snowflake.conftest import GRANTEE_ROLE, Target, needs_account

pytestmark = [pytest.mark.snowflake, pytest.mark.integration]


def _history(path: Path, n_customers: int = 200) -> pd.DataFrame:
    """A small generated history (no defects), written as a user's events file."""
    from customer_segmentation.demo.generator import generate_events
    from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS

    events = generate_events(n_customers=n_customers, seed=23, defect_rate=0.0, history_days=400)[
        list(RAW_EVENT_COLUMNS)
    ]
    events.to_csv(path, index=False)
    return events


def _expected(events: pd.DataFrame) -> tuple[set[str], int]:
    """Independent pandas answer: customers with an order, and their kept (not cancelled) orders."""
    created = events[events["EVENT_TYPE"] == "ORDER_CREATED"]
    cancelled = set(events.loc[events["EVENT_TYPE"] == "ORDER_CANCELLED", "ORDER_ID"])
    kept = created[~created["ORDER_ID"].isin(cancelled)][["CUSTOMER_ID", "ORDER_ID"]].drop_duplicates()
    return set(created["CUSTOMER_ID"]), len(kept)


@pytest.mark.slow
def test_every_pipeline_in_a_throwaway_schema(
    target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    events = _history(tmp_path / "history.csv")
    customers, kept_orders = _expected(events)
    target.run(monkeypatch, "load_events", events_file=str(tmp_path / "history.csv"))
    target.run(monkeypatch)  # every pipeline of `kedro run`

    t = target.table
    raw, accepted, rejected = target.sql(
        f"SELECT (SELECT COUNT(*) FROM {t('RAW_DATA')}), (SELECT COUNT(*) FROM {t('TRANSFORMED_DATA')}), "
        f"(SELECT COUNT(*) FROM {t('REJECTED_EVENTS')})"
    )[0]
    assert raw == len(events) == accepted + rejected and rejected == 0
    processed = {r[0] for r in target.sql(f"SELECT CUSTOMER_ID FROM {t('PROCESSED_DATA')}")}
    assert processed == customers
    (frequency,) = target.sql(f"SELECT SUM(FREQUENCY) FROM {t('CUSTOMER_FEATURES')}")[0]
    assert int(frequency) == kept_orders
    (segments,) = target.sql(f"SELECT COUNT(DISTINCT SEGMENT_LABEL) FROM {t('PROCESSED_DATA')}")[0]
    assert segments >= 2
    # customer value (issue 21), with the same SQL on Snowflake: every customer, no NULL, in range
    value = target.sql(
        f"SELECT COUNT(*), COUNT(DISTINCT CUSTOMER_ID), COUNT(P_ALIVE), COUNT(CLV), MIN(P_ALIVE), MAX(P_ALIVE), "
        f"MIN(CLV), SUM(X + 1) FROM {t('CUSTOMER_VALUE')}"
    )[0]
    assert value[0] == value[1] == value[2] == value[3] == len(customers)
    assert 0 <= float(value[4]) <= float(value[5]) <= 1 and float(value[6]) >= 0
    processed_value = target.sql(
        f"SELECT COUNT(P_ALIVE), COUNT(EXPECTED_PURCHASES), COUNT(EXPECTED_ORDER_VALUE), COUNT(CLV) "
        f"FROM {t('PROCESSED_DATA')}"
    )[0]
    assert processed_value == (len(customers),) * 4
    (metrics,) = target.sql(
        f"SELECT METRICS FROM {t('CUSTOMER_VALUE_MODELS')} ORDER BY TRAINED_AT DESC LIMIT 1"
    )[0]
    assert "holdout" in json.loads(metrics)
    (outcomes,) = target.sql(f"SELECT COUNT(*) FROM {t('SEGMENT_OUTCOMES')}")[0]  # the table exists
    assert outcomes >= 0
    (profiles,) = target.sql(f"SELECT COUNT(MEDIAN_CLV) FROM {t('SEGMENT_PROFILES')}")[0]
    assert profiles == segments

    # reruns: the same file adds nothing, a second run neither doubles nor loses rows
    target.run(monkeypatch, "load_events", events_file=str(tmp_path / "history.csv"))
    target.run(monkeypatch)
    again = target.sql(
        f"SELECT (SELECT COUNT(*) FROM {t('RAW_DATA')}), (SELECT COUNT(*) FROM {t('TRANSFORMED_DATA')}), "
        f"(SELECT COUNT(*) FROM {t('PROCESSED_DATA')}), (SELECT COUNT(DISTINCT RECORD_ID) FROM {t('TRANSFORMED_DATA')})"
    )[0]
    assert again == (raw, accepted, len(customers), accepted)
    # one load recorded: the second attempt found the same content already loaded
    statuses = target.sql(f"SELECT STATUS, COUNT(*) FROM {t('LOAD_HISTORY')} GROUP BY STATUS")
    assert statuses == [("loaded", 1)]


def test_grants_survive_a_rerun(target: Target, live_session: Any) -> None:
    from customer_segmentation.datasets import SnowparkTableDataset

    dataset = SnowparkTableDataset(
        table_name="GRANTED",
        credentials={"schema": target.schema, "database": target.env.get("SNOWFLAKE_DATABASE")},
        save_args={"mode": "overwrite", "table_type": "transient", "copy_grants": True},
    )
    data = live_session.sql("SELECT 1 AS A")
    dataset.save(data)
    with live_session.query_history() as history:
        dataset.save(data)  # the rerun: CREATE OR REPLACE ... COPY GRANTS
    sent = " ".join(q.sql_text for q in history.queries).upper()
    assert "COPY GRANTS" in sent and "TRANSIENT" in sent
    needs_account("the embedded warehouse has no grants (GRANT is not SQL it runs)")
    live_session.sql(f"GRANT SELECT ON TABLE {dataset.fqn} TO ROLE {GRANTEE_ROLE}").collect()
    dataset.save(data)
    grants = {
        (r["privilege"], r["grantee_name"])
        for r in live_session.sql(f"SHOW GRANTS ON TABLE {dataset.fqn}").collect()
    }
    assert ("SELECT", GRANTEE_ROLE.upper()) in grants
    # and the table is transient: no Fail-safe copy of each replaced version
    tables = live_session.sql(
        f"SHOW TABLES LIKE 'GRANTED' IN SCHEMA {dataset.fqn.rsplit('.', 1)[0]}"
    ).collect()
    assert [r["kind"] for r in tables] == ["TRANSIENT"]


def test_record_ids_ignore_session_timestamp_formats(target: Target, live_session: Any) -> None:
    from tests.pipelines.ingestion.test_semantics import record_ids

    live_session.sql(
        f"CREATE TABLE {target.table('RAW_T')} (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS TIMESTAMP_NTZ, "
        "CUSTOMER_ID VARCHAR, ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY VARCHAR, AMOUNT VARCHAR, "
        "CHANNEL VARCHAR, LOADED_AT TIMESTAMP_NTZ, SOURCE_FILE VARCHAR, SOURCE_ROW NUMBER(38,0))"
    ).collect()
    for i, stamp in enumerate(["2026-11-01 05:00:00", "2026-11-01 05:00:00.5", "2026-11-01 05:00:00.123456"]):
        live_session.sql(
            f"INSERT INTO {target.table('RAW_T')} (EVENT_ID, EVENT_TS, LOADED_AT) "
            "SELECT ?, CAST(? AS TIMESTAMP_NTZ), CAST(? AS TIMESTAMP_NTZ)",
            params=[f"E{i}", stamp, stamp],
        ).collect()
    raw = live_session.table(target.table("RAW_T"))
    before = sorted(r["RECORD_ID"] for r in record_ids(raw).collect())
    live_session.sql(
        "ALTER SESSION SET TIMESTAMP_OUTPUT_FORMAT = 'DY, DD MON YYYY HH24:MI', TIMESTAMP_NTZ_OUTPUT_FORMAT = 'MM/DD/YY'"
    ).collect()
    after = sorted(r["RECORD_ID"] for r in record_ids(raw).collect())
    assert before == after and len(set(after)) == 3


def test_divisions_in_features_on_the_target(live_session: Any) -> None:
    from tests.pipelines.rfm_features import test_divisions

    features = test_divisions.build_features(live_session)
    test_divisions.check_full_precision(features)
    test_divisions.check_zero_denominators(features)


def test_wrong_password_is_named(target: Target) -> None:
    from customer_segmentation import warehouse
    from customer_segmentation.errors import WarehouseConnectionError

    target.open().sql("SELECT 1").collect()  # the right credentials work
    warehouse.close()
    needs_account("the embedded warehouse accepts any password")
    wrong = {
        "password": f"not-the-password-{uuid.uuid4().hex}",
        "private_key_file": None,
        "private_key_file_pwd": None,
        "authenticator": None,
    }
    with pytest.raises(WarehouseConnectionError, match="refused the login") as excinfo:
        target.open(**wrong)
    assert wrong["password"] not in str(excinfo.value)
    warehouse.close()


def test_missing_warehouse_is_named(target: Target) -> None:
    from customer_segmentation import warehouse
    from customer_segmentation.errors import WarehouseConnectionError

    needs_account("the embedded warehouse has no virtual warehouses (CURRENT_WAREHOUSE() is skipped there)")
    name = f"NO_SUCH_WH_{uuid.uuid4().hex[:8].upper()}"
    with pytest.raises(
        WarehouseConnectionError, match=f"Warehouse {name} does not exist.*SNOWFLAKE_WAREHOUSE"
    ):
        target.open(warehouse=name)
    warehouse.close()


def test_missing_schema_is_named_and_not_created(target: Target) -> None:
    from customer_segmentation import warehouse
    from customer_segmentation.errors import WarehouseConnectionError

    needs_account("the embedded warehouse creates any schema it is asked for at login")
    name = f"NO_SUCH_SCHEMA_{uuid.uuid4().hex[:8].upper()}"
    with pytest.raises(WarehouseConnectionError, match=f"Schema .*{name} does not exist.*SNOWFLAKE_SCHEMA"):
        target.open(schema=name)
    warehouse.close()
    assert not target.sql(f"SHOW SCHEMAS LIKE '{name}'")


def test_declared_source_in_a_throwaway_schema(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sales table of the target declared as a source: dry run, pull + ingestion, then only new rows."""
    import json

    import yaml

    from customer_segmentation import warehouse

    sales = target.table("SRC_SALES")
    session = target.open()
    try:
        session.sql(
            f"CREATE TABLE {sales} (SALE_ID NUMBER(38,0), SALE_DATE TIMESTAMP_NTZ, CUSTOMER_ID VARCHAR, "
            "TOTAL_PRICE NUMBER(10,2), STATUS VARCHAR)"
        ).collect()
        # ROW_NUMBER, not SEQ4: SEQ4 is unique but not gap-free on Snowflake
        session.sql(
            f"INSERT INTO {sales} SELECT N, DATEADD('day', N, '2025-01-01'::TIMESTAMP_NTZ), 'Cliente-' || (N % 7), "
            "10 + N, IFF(N % 5 = 0, 'remboursée', 'payée') "
            "FROM (SELECT ROW_NUMBER() OVER (ORDER BY SEQ4()) AS N FROM TABLE(GENERATOR(ROWCOUNT => 40)))"
        ).collect()
    finally:
        warehouse.close()
    declaration = {
        "live_sales": {
            "table": f"{target.schema}.SRC_SALES",
            "incremental_by": "SALE_ID",
            "columns": {
                "EVENT_ID": "SALE_ID",
                "EVENT_TYPE": {
                    "map": {
                        "column": "STATUS",
                        "values": {"payée": "ORDER_CREATED", "remboursée": "ORDER_RETURNED"},
                    }
                },
                "EVENT_TS": "SALE_DATE",
                "CUSTOMER_ID": "CUSTOMER_ID",
                "ORDER_ID": "SALE_ID",
                "AMOUNT": "TOTAL_PRICE",
            },
        }
    }
    (target.project / "conf" / "local" / "sources.yml").write_text(
        yaml.safe_dump(declaration, allow_unicode=True)
    )

    def report(name: str) -> dict[str, Any]:
        folder = target.project / "data" / "08_reporting" / name
        return json.loads(sorted(folder.glob(f"*/{name}"))[-1].read_text())

    target.run(monkeypatch, "check_source", source="live_sales")
    checked = report("source_check.json")
    assert (checked["rows_new"], checked["would_reject"]) == (40, 0)
    assert not target.sql(f"SHOW TABLES LIKE 'RAW_DATA' IN SCHEMA {target.table('X').rsplit('.', 1)[0]}")

    target.run(monkeypatch, "ingestion")
    t = target.table
    assert target.sql(f"SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM {t('TRANSFORMED_DATA')}") == [(40, 40)]
    types = dict(target.sql(f"SELECT EVENT_TYPE, COUNT(*) FROM {t('TRANSFORMED_DATA')} GROUP BY 1"))
    assert types == {"ORDER_CREATED": 32, "ORDER_RETURNED": 8}

    target.sql(
        f"INSERT INTO {sales} SELECT 40 + N, '2025-03-01'::TIMESTAMP_NTZ, 'Cliente-9', 5, 'payée' "
        "FROM (SELECT ROW_NUMBER() OVER (ORDER BY SEQ4()) AS N FROM TABLE(GENERATOR(ROWCOUNT => 3)))"
    )
    target.run(monkeypatch, "ingestion")
    (pull,) = report("source_pull_report.json")["sources"]
    assert (pull["rows_read"], pull["rows_landed"]) == (3, 3)
    assert target.sql(f"SELECT COUNT(*) FROM {t('RAW_DATA')}") == [(43,)]
    assert target.sql(f"SELECT MAX(PULL_NO), MAX(WATERMARK) FROM {t('SOURCE_STATE')}") == [(2, "43")]


def test_interrupted_snapshot_write_keeps_the_old_day(
    target: Target, live_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside the snapshot transaction: the day stays as it was (on Snowflake a DDL would commit half)."""
    from datetime import date

    from customer_segmentation.datasets import SnapshotWrite, WarehouseTableDataset
    from tests.warehouse.snowflake_semantics import snowflake_semantics
    from tests.warehouse.test_transactions import history_rows, interrupted

    history = WarehouseTableDataset(
        table_name="LIVE_HISTORY",
        credentials={"schema": target.schema, "database": target.env.get("SNOWFLAKE_DATABASE")},
        save_args={"mode": "replace_snapshot", "snapshot_column": "SNAPSHOT_DATE"},
    )
    day = date(2026, 1, 2)
    history.save(history_rows(day, 4, "A"))
    table = target.table("LIVE_HISTORY")
    before = sorted(tuple(r) for r in live_session.sql(f"SELECT * FROM {table}").collect())
    # on the embedded warehouse the double applies Snowflake's rule (DDL commits the open
    # transaction); on an account, Snowflake applies it itself and the double only logs
    with snowflake_semantics(monkeypatch, emulate=not target.live) as log:
        interrupted(
            monkeypatch,
            live_session,
            r"^INSERT INTO \S*LIVE_HISTORY ",
            lambda: history.save(SnapshotWrite(history_rows(day, 5, "B"))),
        )
    assert log.ddl_in_transaction() == []
    after = sorted(tuple(r) for r in live_session.sql(f"SELECT * FROM {table}").collect())
    assert after == before  # the old day, not the DELETE without its INSERT
    history.save(SnapshotWrite(history_rows(day, 5, "B")))
    assert live_session.sql(f"SELECT COUNT(*) FROM {table}").collect()[0][0] == 5


def test_writes_commit_when_autocommit_is_off_for_the_user(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUTOCOMMIT = FALSE as a user default: the session pins it TRUE, so every write still commits."""
    from customer_segmentation import warehouse
    from customer_segmentation.datasets import WarehouseTableDataset
    from tests.warehouse.snowflake_semantics import snowflake_semantics

    table = target.table("LIVE_AUTOCOMMIT")
    user = None
    with snowflake_semantics(monkeypatch, emulate=not target.live, autocommit=False) as log:
        try:
            session = target.open()
            if target.live:
                # a user default, as an administrator (or the user) may set it; it applies to new sessions
                user = session.sql("SELECT CURRENT_USER()").collect()[0][0]
                session.sql(f'ALTER USER "{user}" SET AUTOCOMMIT = FALSE').collect()
                warehouse.close()
                session = target.open()
            session.sql(f"CREATE TABLE {table} (X INT)").collect()
            session.sql(f"INSERT INTO {table} VALUES (1)").collect()  # a standalone DML (e.g. mark_loaded)
            WarehouseTableDataset(
                table_name="LIVE_AUTOCOMMIT",
                credentials={"schema": target.schema, "database": target.env.get("SNOWFLAKE_DATABASE")},
                save_args={"mode": "append"},
            ).save(pd.DataFrame({"X": [2]}))
            pinned = (
                session.sql("SHOW PARAMETERS LIKE 'AUTOCOMMIT' IN SESSION").collect() if target.live else None
            )
            warehouse.close()  # a session closed with an open transaction rolls it back
        finally:
            warehouse.close()
            if user is not None:
                target.sql(f'ALTER USER "{user}" UNSET AUTOCOMMIT')
    assert sorted(r[0] for r in target.sql(f"SELECT X FROM {table}")) == [1, 2]  # both writes committed
    assert log.texts("SESSION")[0].startswith("ALTER SESSION SET AUTOCOMMIT = TRUE")
    if pinned is not None:
        assert str(pinned[0]["value"]).lower() == "true"
