"""Validation of identifiers that come from configuration, before they reach SQL."""

from __future__ import annotations

import re

from customer_segmentation.errors import InvalidIdentifierError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


def validate_identifier(value: object, what: str = "identifier") -> str:
    """Return ``value`` upper-cased if it is a plain (unquoted) Snowflake identifier, else raise."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise InvalidIdentifierError(
            f"Invalid {what} {value!r}: use letters, digits, '_' or '$', starting with a letter or '_' "
            "(no quotes, dots, spaces or SQL). Fix it in conf/base/catalog.yml, the SNOWFLAKE_* "
            "variables or conf/local/credentials.yml."
        )
    return value.upper()


def qualified_name(database: str, schema: str, table: str) -> str:
    """``DATABASE.SCHEMA.TABLE`` from validated parts."""
    return ".".join(
        (
            validate_identifier(database, "database name"),
            validate_identifier(schema, "schema name"),
            validate_identifier(table, "table name"),
        )
    )
