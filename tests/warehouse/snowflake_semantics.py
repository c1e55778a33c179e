"""Snowflake's transaction semantics on the embedded warehouse, and a log of every statement sent.

The emulator (fakesnow over DuckDB) rolls a DDL statement back with the transaction it runs in
and is always in autocommit mode. Snowflake differs on both counts
(https://docs.snowflake.com/en/sql-reference/transactions):

- a DDL statement (CREATE, DROP, ALTER, CTAS, ...) inside an open transaction first COMMITS it,
  then runs in its own;
- with the AUTOCOMMIT parameter FALSE (settable per account or user) the first DML statement
  outside a transaction opens one implicitly; it lasts until COMMIT, ROLLBACK or a DDL, and a
  session closed before that rolls it back; changing AUTOCOMMIT inside a transaction commits it.

``snowflake_semantics()`` wraps the connector's ``SnowflakeCursor.execute`` (every statement of
Snowpark, ``session.sql`` and ``write_pandas`` goes through it) to log each statement with the
transaction state it ran in and, on the embedded warehouse, to send the statements Snowflake would
run implicitly (a COMMIT before such a DDL, a BEGIN before such a DML). The emulator then ends in
the state Snowflake would: a write sequence that is only atomic thanks to DuckDB's transactional
DDL fails the tests here as it would fail on an account. On a live account (``emulate=False``)
the statements are only logged: Snowflake applies its own rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

_COMMENTS = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*", re.S)
_DDL = ("CREATE", "DROP", "ALTER", "UNDROP", "GRANT", "REVOKE", "COMMENT", "RENAME")
_DML = ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY")
_AUTOCOMMIT = re.compile(r"\bAUTOCOMMIT\s*=\s*(TRUE|FALSE|'TRUE'|'FALSE'|1|0)\b", re.I)


def kind_of(sql: str) -> str:
    """BEGIN, COMMIT, ROLLBACK, SESSION (ALTER SESSION / USE), DDL, DML or QUERY."""
    text = _COMMENTS.sub("", sql).lstrip("(").upper()
    word = text.split(None, 1)[0] if text.split() else ""
    if word in ("BEGIN", "START"):
        return "BEGIN"
    if word in ("COMMIT", "ROLLBACK"):
        return word
    if text.startswith("ALTER SESSION") or word == "USE":
        return "SESSION"
    if word in _DDL:
        return "DDL"
    if word in _DML:
        return "DML"
    return "QUERY"


@dataclass
class Statement:
    sql: str
    kind: str
    in_transaction: bool
    implicit: bool = False  # sent by this double, as Snowflake would run it implicitly


@dataclass
class StatementLog:
    """Every statement, per connection, with the transaction state Snowflake would have been in."""

    autocommit_default: bool = True
    statements: list[Statement] = field(default_factory=list)
    open: dict[int, bool] = field(default_factory=dict)
    autocommit: dict[int, bool] = field(default_factory=dict)

    def ddl_in_transaction(self) -> list[Statement]:
        """DDL sent while a transaction was open: on Snowflake each committed that transaction."""
        return [s for s in self.statements if s.kind == "DDL" and s.in_transaction and not s.implicit]

    def implicit_commits(self) -> list[Statement]:
        return [s for s in self.statements if s.implicit and s.kind == "COMMIT"]

    def texts(self, kind: str | None = None) -> list[str]:
        return [s.sql for s in self.statements if kind is None or s.kind == kind]


@contextmanager
def snowflake_semantics(
    monkeypatch: pytest.MonkeyPatch, emulate: bool = True, autocommit: bool = True
) -> Iterator[StatementLog]:
    """Log every statement; with ``emulate``, also apply Snowflake's implicit COMMIT/BEGIN rules.

    ``autocommit``: the AUTOCOMMIT value a new session starts with (FALSE: as for a user or an
    account that set it), until the session sends ``ALTER SESSION SET AUTOCOMMIT = ...``.
    """
    from snowflake.connector.cursor import SnowflakeCursor

    log = StatementLog(autocommit_default=autocommit)
    original = SnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_describe_only") or not isinstance(command, str):
            return original(self, command, *args, **kwargs)
        connection = id(self.connection)
        is_open = log.open.get(connection, False)
        auto = log.autocommit.setdefault(connection, log.autocommit_default)
        kind = kind_of(command)

        def implicit(sql: str, what: str) -> None:
            log.statements.append(Statement(sql, what, True, implicit=True))
            if emulate:
                original(self, sql)

        if kind == "DDL" and is_open:
            implicit("COMMIT", "COMMIT")  # Snowflake: the open transaction is committed first
            log.open[connection] = is_open = False
            log.statements.append(Statement(command, kind, True))
        elif kind == "SESSION" and (match := _AUTOCOMMIT.search(command)):
            value = match.group(1).strip("'").upper() in ("TRUE", "1")
            if is_open and value != auto:
                implicit("COMMIT", "COMMIT")  # changing AUTOCOMMIT commits the open transaction
                log.open[connection] = is_open = False
            log.autocommit[connection] = value
            log.statements.append(Statement(command, kind, is_open))
        elif kind == "DML" and not is_open and not auto:
            implicit("BEGIN TRANSACTION", "BEGIN")  # AUTOCOMMIT off: the DML opens a transaction
            log.open[connection] = is_open = True
            log.statements.append(Statement(command, kind, True))
        else:
            log.statements.append(Statement(command, kind, is_open))
        result = original(self, command, *args, **kwargs)
        if kind == "BEGIN":
            log.open[connection] = True
        elif kind in ("COMMIT", "ROLLBACK"):
            log.open[connection] = False
        return result

    monkeypatch.setattr(SnowflakeCursor, "execute", execute)
    yield log
