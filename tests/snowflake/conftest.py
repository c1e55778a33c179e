"""The live-Snowflake suite's target: a real account when SNOWFLAKE_ACCOUNT is set, else the embedded warehouse.

The SNOWFLAKE_* variables are read here, at import (collection) time: tests/conftest.py's autouse
fixture removes them from the environment of every test so that other tests never reach an
account by accident. They are handed to the project explicitly (settings, or the environment of
one `kedro run`), never left set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_project_copy, run_pipeline

#: Captured before any fixture deletes them.
LIVE_ENV: dict[str, str] = {k: v for k, v in os.environ.items() if k.startswith("SNOWFLAKE_") and v}
IS_LIVE = bool(LIVE_ENV.get("SNOWFLAKE_ACCOUNT"))
#: Role that the grants test grants SELECT to (must exist; PUBLIC always does).
GRANTEE_ROLE = LIVE_ENV.get("SNOWFLAKE_TEST_GRANTEE_ROLE", "PUBLIC")


def needs_account(reason: str) -> None:
    """Skip the rest of a test on the embedded warehouse, saying which capability it lacks."""
    if not IS_LIVE:
        pytest.skip(f"needs a Snowflake account (SNOWFLAKE_ACCOUNT): {reason}")


@dataclass
class Target:
    """Where the suite runs: a throw-away schema on the account, or in an embedded warehouse."""

    project: Path
    schema: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return IS_LIVE

    def credentials(self, **overrides: Any) -> dict[str, Any]:
        from customer_segmentation.warehouse.config import ENV_VARIABLES

        creds = {key: self.env.get(var) for key, var in ENV_VARIABLES.items() if self.env.get(var)}
        creds["schema"] = self.schema
        creds.update(overrides)
        return creds

    def settings(self, create_schema: bool = False, **overrides: Any) -> Any:
        from customer_segmentation.warehouse.config import WarehouseSettings

        settings = WarehouseSettings.from_credentials(
            self.credentials(**overrides), self.project / "data" / "warehouse", create_schema=create_schema
        )
        return replace(settings, create_schema=create_schema)

    def open(self, **overrides: Any) -> Any:
        from customer_segmentation import warehouse

        warehouse.configure(self.settings(**overrides))
        return warehouse.get_session()

    def sql(self, text: str) -> list[tuple[Any, ...]]:
        """Run one query on the target (own session, closed afterwards)."""
        from customer_segmentation import warehouse

        try:
            return [tuple(r) for r in self.open().sql(text).collect()]
        finally:
            warehouse.close()

    def table(self, name: str) -> str:
        database = self.env.get("SNOWFLAKE_DATABASE", "SEGMENTATION")
        return f"{database}.{self.schema}.{name}"

    def run(self, monkeypatch: pytest.MonkeyPatch, pipeline: str | None = None, **params: Any) -> Any:
        """`kedro run` on the target: its variables are set for this run only."""
        with monkeypatch.context() as m:
            for name, value in {**self.env, "SNOWFLAKE_SCHEMA": self.schema}.items():
                m.setenv(name, value)
            return run_pipeline(self.project, pipeline, {"demo_data.enabled": False, **params})


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """A throw-away schema, created at the start and dropped at the end, even when the test fails."""
    from customer_segmentation import warehouse

    target = Target(
        make_project_copy(tmp_path / "project"), f"SEG_TEST_{uuid.uuid4().hex[:10].upper()}", dict(LIVE_ENV)
    )
    target.open(create_schema=True)  # on an account: the project's own warehouse.create_schema path
    warehouse.close()
    try:
        yield target
    finally:
        warehouse.close()
        database = target.env.get("SNOWFLAKE_DATABASE", "SEGMENTATION")
        try:
            session = target.open(create_schema=True)
            session.sql(f"DROP SCHEMA IF EXISTS {database}.{target.schema} CASCADE").collect()
        finally:
            warehouse.close()


@pytest.fixture
def live_session(target: Target) -> Iterator[Any]:
    """A session on the target's throw-away schema."""
    from customer_segmentation import warehouse

    try:
        yield target.open()
    finally:
        warehouse.close()
