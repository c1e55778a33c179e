"""The project's errors: each tells the user what went wrong and how to fix it (every layer may import this)."""

from __future__ import annotations


class SegmentationError(Exception):
    """Base class of the project's own, actionable errors."""


class MissingCredentialsError(SegmentationError):
    """Real Snowflake was asked for (``SNOWFLAKE_ACCOUNT`` set) but a credential is missing."""


class WarehouseConnectionError(SegmentationError):
    """The warehouse could not be reached or refused the login."""


class EmbeddedWarehouseBusyError(SegmentationError):
    """Another process holds the embedded warehouse's files."""


class MissingTableError(SegmentationError):
    """A table the pipeline reads does not exist."""


class MissingColumnsError(SegmentationError):
    """A table or file lacks columns the pipeline needs."""


class InvalidIdentifierError(SegmentationError, ValueError):
    """A configured database, schema or table name is not a plain Snowflake identifier."""


class InvalidParametersError(SegmentationError, ValueError):
    """A parameter value is out of range or of the wrong kind."""


class MissingModelError(SegmentationError):
    """Scoring was asked for but no model version is stored in the warehouse."""


class UnknownModelVersionError(SegmentationError):
    """``prediction.model_version`` names a version that is not in the warehouse."""


class TransactionStateError(SegmentationError):
    """A write needed a transaction in a state the session is not in (nested, or possibly still open)."""
