"""Secrets never leak; credential and configuration errors are clear and fail fast."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from pathlib import Path

import kedro.framework.project  # noqa: F401  (configures logging now, not in the middle of a test's capture)
import pytest

from tests.conftest import make_project_copy
from tests.integration.test_ingestion import event, run, write_events

pytestmark = pytest.mark.integration


def _files_containing(root: Path, needle: str) -> list[str]:
    """Files under root whose bytes contain needle (as UTF-8 or UTF-16, the encodings a leak would use)."""
    patterns = [needle.encode("utf-8"), needle.encode("utf-16-le")]
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(p in data for p in patterns):
                hits.append(str(path.relative_to(root)))
    return hits


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def _record_every_log_record(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """Every record any logger emits, whatever handlers a logging (re)configuration installs."""
    records: list[logging.LogRecord] = []
    original = logging.Logger.handle

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        records.append(record)
        original(self, record)

    monkeypatch.setattr(logging.Logger, "handle", handle)
    return records


@pytest.mark.slow
def test_password_in_environment_appears_nowhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    password = "pw-" + secrets.token_urlsafe(24)
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", password)
    monkeypatch.setenv("SNOWFLAKE_USER", "SEGMENTATION_SVC")
    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)  # stays on the embedded warehouse
    caplog.set_level(logging.DEBUG)
    for name in ("customer_segmentation", "kedro", "snowflake", "fakesnow"):
        caplog.set_level(logging.DEBUG, logger=name)
    records = _record_every_log_record(monkeypatch)
    project = make_project_copy(tmp_path / "p")

    run(project)  # the full default pipeline: every pipeline's connection and writes (daily adds none)
    # last: the first user file removes the demo and everything built on it (model included)
    run(project, "load_events", events_file=str(write_events(tmp_path / "e.csv", [event("S-1")])))

    out, err = capfd.readouterr()
    assert "Pipeline execution completed" in out + err + caplog.text  # the capture did see the runs
    assert len(records) > 100 and any(r.name.startswith("snowflake") for r in records)
    assert [r for r in records if password in r.getMessage() or password in str(r.exc_info or "")] == []
    assert password not in caplog.text
    assert password not in out and password not in err
    assert _files_containing(project / "data", password) == []
    assert _files_containing(project / "conf", password) == []


def test_wrong_credentials_fail_fast_and_show_no_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    password = "pw-" + secrets.token_urlsafe(24)
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", password)
    caplog.set_level(logging.DEBUG)
    for name in ("customer_segmentation", "kedro", "snowflake"):
        caplog.set_level(logging.DEBUG, logger=name)
    records = _record_every_log_record(monkeypatch)
    project = make_project_copy(tmp_path / "p")
    # an "account" that is a closed local port: the connector fails at once instead of resolving a host
    (project / "conf" / "local" / "credentials.yml").write_text(
        "snowflake:\n"
        "  account: wrong-account\n"
        "  user: SEGMENTATION_SVC\n"
        "  password: ${oc.env:SNOWFLAKE_PASSWORD}\n"
        "  host: 127.0.0.1\n"
        f"  port: {_closed_port()}\n"
        "  protocol: http\n"
        "  login_timeout: 5\n"
    )
    started = time.monotonic()
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion")
    assert time.monotonic() - started < 60
    message = str(excinfo.value)
    assert type(excinfo.value).__name__ == "WarehouseConnectionError"
    assert "Could not connect to Snowflake account wrong-account as user 'SEGMENTATION_SVC'" in message
    assert "The account could not be reached" in message
    for variable in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD"):
        assert variable in message
    out, err = capfd.readouterr()
    for text in (message, repr(excinfo.value), caplog.text, out, err):
        assert password not in text
    assert any(r.name.startswith("snowflake.connector") for r in records)
    assert [r for r in records if password in r.getMessage()] == []
    assert _files_containing(project / "data", password) == []


def test_missing_credentials_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password = "pw-" + secrets.token_urlsafe(24)
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "xy12345.eu-central-1")
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", password)
    project = make_project_copy(tmp_path / "p")
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion")
    message = str(excinfo.value)
    assert "SNOWFLAKE_ACCOUNT is set to 'xy12345.eu-central-1'" in message
    assert "these are missing: SNOWFLAKE_USER." in message
    assert password not in message
    assert not (project / "data" / "warehouse" / "SEGMENTATION.db").exists()  # never fell back silently


def test_bad_table_name_in_a_catalog_override_never_reaches_sql(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    (project / "conf" / "local" / "catalog.yml").write_text(
        "transformed_data:\n"
        "  type: customer_segmentation.datasets.SnowparkTableDataset\n"
        '  table_name: "TRANSFORMED_DATA; DROP TABLE RAW_DATA"\n'
        "  credentials: snowflake\n"
        "  save_args: {mode: merge, merge_keys: [RECORD_ID]}\n"
    )
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion")
    message = str(excinfo.value)
    assert "Invalid table name 'TRANSFORMED_DATA; DROP TABLE RAW_DATA'" in message
    assert "no quotes, dots, spaces or SQL" in message


def test_bad_database_name_in_the_environment_never_reaches_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOWFLAKE_DATABASE", "SEGMENTATION.PUBLIC")
    project = make_project_copy(tmp_path / "p")
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion")
    assert "Invalid database name 'SEGMENTATION.PUBLIC'" in str(excinfo.value)


def test_bad_history_table_of_load_events(tmp_path: Path) -> None:
    """The file-load tables are named by the catalog only (no parameter): a bad name there is refused."""
    project = make_project_copy(tmp_path / "p")
    (project / "conf" / "local" / "catalog.yml").write_text(
        "raw_event_files:\n"
        "  type: customer_segmentation.datasets.EventFileLoadDataset\n"
        "  table_name: RAW_DATA\n"
        "  history_table: LOAD HISTORY\n"
        "  credentials: snowflake\n"
    )
    path = write_events(tmp_path / "e.csv", [event("S-1")])
    with pytest.raises(Exception) as excinfo:
        run(project, "load_events", events_file=str(path))
    assert "Invalid table name (history_table) 'LOAD HISTORY'" in str(excinfo.value)
