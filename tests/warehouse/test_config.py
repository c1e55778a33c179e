"""Choosing the warehouse from credentials; errors name the variables and never show a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from customer_segmentation.errors import (
    InvalidIdentifierError,
    MissingCredentialsError,
    WarehouseConnectionError,
)
from customer_segmentation.warehouse import session as wh_session
from customer_segmentation.warehouse.config import WarehouseSettings, redact

SECRET = "s3cr3t-Pa55word-for-tests"


def test_no_account_means_embedded(tmp_path: Path) -> None:
    settings = WarehouseSettings.from_credentials({"account": "  ", "password": SECRET}, tmp_path)
    assert settings.is_embedded and settings.connection == {}
    assert str(tmp_path.resolve()) in settings.target
    assert (settings.database, settings.schema) == ("SEGMENTATION", "PUBLIC")


def test_account_with_everything_means_snowflake(tmp_path: Path) -> None:
    creds = {
        "account": "xy12345.eu-central-1",
        "user": "SVC",
        "password": SECRET,
        "database": "retail",
        "schema": "seg",
    }
    settings = WarehouseSettings.from_credentials(creds, tmp_path)
    assert not settings.is_embedded
    assert settings.target == "Snowflake account xy12345.eu-central-1"
    assert (settings.database, settings.schema) == ("RETAIL", "SEG")
    assert settings.connection["password"] == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings.key) and SECRET not in settings.target


@pytest.mark.parametrize(
    ("creds", "named"),
    [
        ({"account": "acct"}, ["SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD (or SNOWFLAKE_PRIVATE_KEY_FILE)"]),
        ({"account": "acct", "password": SECRET}, ["SNOWFLAKE_USER"]),
        ({"account": "acct", "user": "SVC"}, ["SNOWFLAKE_PASSWORD (or SNOWFLAKE_PRIVATE_KEY_FILE)"]),
    ],
)
def test_missing_credentials_are_named(tmp_path: Path, creds: dict[str, Any], named: list[str]) -> None:
    with pytest.raises(MissingCredentialsError) as excinfo:
        WarehouseSettings.from_credentials(creds, tmp_path)
    message = str(excinfo.value)
    assert f"these are missing: {', '.join(named)}" in message
    assert "Unset SNOWFLAKE_ACCOUNT to use the embedded warehouse" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "account",
    ["https://xy12345.snowflakecomputing.com", "xy12345.eu-central-1.snowflakecomputing.com", "xy 123"],
)
def test_account_url_instead_of_identifier_is_explained(tmp_path: Path, account: str) -> None:
    with pytest.raises(MissingCredentialsError) as excinfo:
        WarehouseSettings.from_credentials({"account": account, "user": "u", "password": SECRET}, tmp_path)
    assert "give the account identifier only" in str(excinfo.value) and SECRET not in str(excinfo.value)


def test_missing_private_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingCredentialsError, match="SNOWFLAKE_PRIVATE_KEY_FILE points to"):
        WarehouseSettings.from_credentials(
            {"account": "a", "user": "u", "private_key_file": str(tmp_path / "nope.p8")}, tmp_path
        )


@pytest.mark.parametrize(
    ("key", "value"), [("database", "RETAIL; DROP TABLE X"), ("schema", 'PUBLIC"."X'), ("database", "1DB")]
)
def test_database_and_schema_are_identifiers(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(InvalidIdentifierError) as excinfo:
        WarehouseSettings.from_credentials({key: value}, tmp_path)
    assert f"Invalid {key} name {value!r}" in str(excinfo.value)


def test_redact_removes_secrets_from_settings_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_FILE_PWD", "key-passphrase-123")
    settings = WarehouseSettings.from_credentials({"account": "a", "user": "u", "password": SECRET}, tmp_path)
    text = redact(f"login failed for u with {SECRET} and key-passphrase-123", settings)
    assert text == "login failed for u with *** and ***"


class _Refused(Exception):
    errno = 390100


class _Unreachable(Exception):
    errno = 250001


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (_Refused(f"Incorrect username or password was specified ({SECRET})"), "Snowflake refused the login"),
        (
            _Unreachable(f"Could not connect to Snowflake backend with {SECRET}"),
            "The account could not be reached",
        ),
    ],
)
def test_connection_errors_are_redacted_and_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, hint: str
) -> None:
    from snowflake.snowpark import Session

    class Builder:
        def configs(self, params: dict[str, Any]) -> Builder:
            assert params["login_timeout"] == 60 and params["password"] == SECRET
            return self

        def create(self) -> Any:
            raise error

    monkeypatch.setattr(Session, "builder", Builder())
    settings = WarehouseSettings.from_credentials(
        {"account": "acct", "user": "SVC", "password": SECRET}, tmp_path
    )
    with pytest.raises(WarehouseConnectionError) as excinfo:
        wh_session._open(settings)
    message = str(excinfo.value)
    assert SECRET not in message and "***" in message
    assert hint in message
    assert "Snowflake account acct as user 'SVC'" in message
    for variable in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD"):
        assert variable in message
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def test_log_records_never_carry_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Even third-party messages (e.g. Kedro tracing hook arguments at DEBUG) are redacted."""
    import logging

    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "env-secret-42")
    WarehouseSettings.from_credentials({"password": "file-secret-43"}, tmp_path)  # installs the redaction
    logger = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG, logger="some.library"):
        logger.debug("conf_creds: %s", {"password": "env-secret-42"})
        logger.info("plain %s", "file-secret-43")
        try:
            raise RuntimeError("login with env-secret-42 failed")
        except RuntimeError:
            logger.exception("failed")
        logger.info("nothing secret here: %d rows", 3)
    assert "env-secret-42" not in caplog.text and "file-secret-43" not in caplog.text
    assert "conf_creds: {'password': '***'}" in caplog.text and "plain ***" in caplog.text
    assert "login with *** failed" in caplog.text
    assert "nothing secret here: 3 rows" in caplog.text
