"""Session open: context checks (database, schema, warehouse) and the ALTER SESSION statements.

The messages are tested with a fake session (Snowflake answers NULL from CURRENT_DATABASE() /
CURRENT_SCHEMA() / CURRENT_WAREHOUSE() when the object is missing or not granted to the role);
tests/snowflake/ checks the same messages against a live account.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from customer_segmentation.errors import WarehouseConnectionError
from customer_segmentation.warehouse import session as wh_session
from customer_segmentation.warehouse.config import WarehouseSettings

LIVE = WarehouseSettings(
    database="ANALYTICS",
    schema="SEGMENTS",
    connection={"account": "xy12345", "user": "svc", "warehouse": "WH_S", "role": "SEG_ROLE"},
)


class FakeSession:
    """Answers the context query with fixed values and records every statement."""

    def __init__(
        self,
        database: str | None,
        schema: str | None,
        warehouse: str | None = "WH_S",
        role: str | None = "SEG_ROLE",
    ) -> None:
        self.context = [database, schema, warehouse, role]
        self.statements: list[str] = []

    def sql(self, text: str, params: Any = None) -> FakeSession:
        self.statements.append(text)
        self._last = text
        if text.startswith("USE SCHEMA"):
            self.context[1] = text.rsplit(".", 1)[-1]
        return self

    def collect(self) -> list[list[Any]]:
        if self._last.startswith("SELECT CURRENT_DATABASE()"):
            n = 2 if "CURRENT_WAREHOUSE" not in self._last else 4
            return [self.context[:n]]
        return [["ok"]]


def test_a_usable_context_passes_and_sends_one_query() -> None:
    fake = FakeSession("ANALYTICS", "SEGMENTS")
    wh_session.check_session_context(fake, LIVE)
    assert fake.statements == [
        "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA(), CURRENT_WAREHOUSE(), CURRENT_ROLE()"
    ]


@pytest.mark.parametrize(
    ("context", "fragments"),
    [
        (
            (None, None),
            [
                "Database ANALYTICS does not exist",
                "role SEG_ROLE",
                "SNOWFLAKE_DATABASE",
                "GRANT USAGE ON DATABASE",
            ],
        ),
        (
            ("ANALYTICS", None),
            ["Schema ANALYTICS.SEGMENTS does not exist", "SNOWFLAKE_SCHEMA", "warehouse.create_schema=true"],
        ),
        (
            ("ANALYTICS", "SEGMENTS", None),
            ["Warehouse WH_S does not exist", "SNOWFLAKE_WAREHOUSE", "GRANT USAGE ON WAREHOUSE"],
        ),
    ],
)
def test_a_missing_object_is_named_with_the_variable_to_set(
    context: tuple[Any, ...], fragments: list[str]
) -> None:
    fake = FakeSession(*context)
    with pytest.raises(WarehouseConnectionError) as excinfo:
        wh_session.check_session_context(fake, LIVE)
    for fragment in fragments:
        assert fragment in str(excinfo.value)
    assert not any(
        s.startswith("CREATE") for s in fake.statements
    )  # nothing is created without the parameter


def test_no_warehouse_configured_says_so() -> None:
    settings = WarehouseSettings(
        database="ANALYTICS", schema="SEGMENTS", connection={"account": "xy12345", "user": "svc"}
    )
    with pytest.raises(WarehouseConnectionError, match="No warehouse is set.*SNOWFLAKE_WAREHOUSE"):
        wh_session.check_session_context(FakeSession("ANALYTICS", "SEGMENTS", None, None), settings)


def test_the_schema_is_created_only_when_allowed() -> None:
    fake = FakeSession("ANALYTICS", None)
    wh_session.check_session_context(fake, LIVE, create_schema=True)
    assert "CREATE SCHEMA IF NOT EXISTS ANALYTICS.SEGMENTS" in fake.statements
    assert "USE SCHEMA ANALYTICS.SEGMENTS" in fake.statements


def test_embedded_target_skips_only_the_warehouse_check(tmp_path: Any) -> None:
    embedded = WarehouseSettings.from_credentials({}, tmp_path)
    fake = FakeSession("SEGMENTATION", "PUBLIC", None, None)
    wh_session.check_session_context(fake, embedded)  # CURRENT_WAREHOUSE() does not exist there
    assert fake.statements == ["SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()"]
    with pytest.raises(WarehouseConnectionError, match="Schema SEGMENTATION.PUBLIC"):
        wh_session.check_session_context(FakeSession("SEGMENTATION", None), embedded)


def test_alter_session_sets_formats_and_a_json_query_tag() -> None:
    statements = wh_session.session_parameter_statements(
        {"project": "p", "pipeline": "daily", "run_id": "it's-1"}
    )
    # AUTOCOMMIT first, unquoted (a boolean), then the formats
    assert statements[0].startswith("ALTER SESSION SET AUTOCOMMIT = TRUE, TIMESTAMP_INPUT_FORMAT = 'AUTO'")
    assert "TIMESTAMP_NTZ_OUTPUT_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF9'" in statements[0]
    assert "TIMEZONE = 'UTC'" in statements[0]
    tag = statements[1].removeprefix("ALTER SESSION SET QUERY_TAG = ")
    assert tag.startswith("'") and tag.endswith("'")
    assert json.loads(tag[1:-1].replace("\\'", "'")) == {
        "pipeline": "daily",
        "project": "p",
        "run_id": "it's-1",
    }
    assert len(wh_session.query_tag_text({"x": "y" * 5000})) == 2000


def test_session_open_runs_the_checks_and_tags(warehouse_session: Any) -> None:
    """On the embedded warehouse: the statements are sent (and accepted as no-ops), the checks pass."""
    wh_session.set_query_tag(pipeline="unit", run_id="r-1")
    with warehouse_session.query_history() as history:
        wh_session.prepare_session(warehouse_session, wh_session.current_settings())
    sent = [q.sql_text for q in history.queries]
    assert sent[0].startswith("ALTER SESSION SET AUTOCOMMIT = TRUE, TIMESTAMP_INPUT_FORMAT")
    assert sent[1].startswith("ALTER SESSION SET QUERY_TAG") and '"run_id":"r-1"' in sent[1]
    assert sent[2] == "SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()"


def test_a_run_tags_its_statements_with_pipeline_and_run_id(tmp_path: Any) -> None:
    from customer_segmentation import warehouse
    from customer_segmentation.hooks import WarehouseHooks

    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "wh"))
    catalog: dict[str, Any] = {}
    try:
        WarehouseHooks().before_pipeline_run(
            {"session_id": "2026-11-25T10.00.00.000Z", "pipeline_names": ["daily"]}, None, catalog
        )
        session = warehouse.get_session()
        with session.query_history() as history:
            warehouse.set_query_tag(team="crm")  # applied at once to the open session
    finally:
        warehouse.close()
    tag = json.loads(history.queries[0].sql_text.split(" = ", 1)[1][1:-1])
    assert tag == {
        "project": "customer_segmentation",
        "pipeline": "daily",
        "run_id": "2026-11-25T10.00.00.000Z",
        "team": "crm",
    }
    assert catalog["run_metadata"]["run_id"] == "2026-11-25T10.00.00.000Z"
