"""Reading event files (CSV, JSON Lines, Parquet, Excel) into RAW_DATA rows, as text.

Everything here is pure Python/pandas (no warehouse): a file is read whole, its columns are
checked against the RAW_DATA contract, and every value is turned into text (RAW_DATA columns
are VARCHAR; ingestion parses them). Only an empty value becomes NULL: ``NA``, ``null`` and the
like are kept as landed, so that ingestion sees exactly what the source sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from customer_segmentation.errors import (
    InvalidParametersError,
    MissingColumnsError,
    SegmentationError,
)
from customer_segmentation.pipelines.load_events.params import LoadEventsParams
from customer_segmentation.sources.files import FileOptions, FileReadError, read_columns, to_text
from customer_segmentation.sources.files import (
    file_sha256 as file_sha256,  # re-exported: part of this module's API
)
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS, RAW_LOAD_COLUMNS

#: Format name -> file name endings that select it (a ``.gz`` variant is accepted for text formats).
FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv", ".csv.gz"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz"),
    "parquet": (".parquet", ".pq"),
    "xlsx": (".xlsx",),
}
ACCEPTED_FORMATS = (
    "CSV (.csv, .csv.gz), JSON Lines (.jsonl, .ndjson, .json, optionally .gz), Parquet (.parquet, .pq) "
    "or Excel (.xlsx, with the excel extra)"
)
HOW_TO_PASS = "kedro run --pipelines load_events --params=events_file=<path>"


class EventFileError(SegmentationError, ValueError):
    """An events file cannot be loaded (missing, unknown format, unreadable, wrong columns)."""


def resolve_events_file(events_file: Any) -> Path:
    """The file to load, checked to exist; a missing parameter says how to pass it."""
    if events_file is None or (isinstance(events_file, str) and not events_file.strip()):
        raise InvalidParametersError(
            "No events file given: the load_events pipeline needs the parameter events_file. Run "
            f"`{HOW_TO_PASS}` (a {ACCEPTED_FORMATS} file)."
        )
    if not isinstance(events_file, (str, Path)):
        raise InvalidParametersError(
            f"Parameter events_file must be one file path, got {events_file!r}. Run `{HOW_TO_PASS}`."
        )
    path = Path(str(events_file).strip()).expanduser()
    if not path.exists():
        raise EventFileError(
            f"Events file {str(path)!r} does not exist (parameter events_file). Run `{HOW_TO_PASS}`."
        )
    if not path.is_file():
        raise EventFileError(f"Events file {str(path)!r} is not a file: pass one {ACCEPTED_FORMATS} file.")
    return path.resolve()


def detect_format(path: Path, requested: str | None = None) -> str:
    """``csv``, ``jsonl``, ``parquet`` or ``xlsx``: from ``requested`` (parameter load_events.format) or the name."""
    fmt = LoadEventsParams.of(format=requested).format  # the parameter's one definition of the names
    if fmt is not None:
        return fmt
    name = path.name.lower()
    for fmt, endings in FORMATS.items():
        if name.endswith(endings):
            return fmt
    raise EventFileError(
        f"Unknown format for events file {path.name!r}: accepted formats are {ACCEPTED_FORMATS}. "
        "Rename the file, or force a format with --params=load_events.format=csv|jsonl|parquet|xlsx."
    )


_FORMAT_LABEL = {"csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet", "xlsx": "Excel"}


def file_options(options: LoadEventsParams) -> FileOptions:
    """The reading options of the load_events parameters."""
    return FileOptions(
        delimiter=options.csv_delimiter,
        encoding=options.encoding,
        decimal=options.decimal,
        sheet=options.sheet,
    )


def read_file_columns(path: Path, fmt: str, options: FileOptions) -> tuple[list[str], dict[str, list[Any]]]:
    """The file's columns as written (refused as a whole, with the reason, when it cannot be read)."""
    try:
        return read_columns(path, fmt, options)
    except pd.errors.EmptyDataError:
        return [], {}
    except FileReadError as exc:
        raise EventFileError(str(exc)) from None
    except Exception as exc:  # every parser raises its own kind: report them the same way
        raise EventFileError(
            f"Could not read events file {path.name!r} as {_FORMAT_LABEL[fmt]}: {type(exc).__name__}: {exc}. "
            f"Accepted formats are {ACCEPTED_FORMATS}; nothing was loaded."
        ) from None


def read_events(
    path: Path, fmt: str, options: LoadEventsParams | dict[str, Any] | None = None
) -> pd.DataFrame:
    """The file's events as a frame of the RAW_DATA event columns (text or None), in file order.

    Refuses the whole file when it cannot be read or lacks a contract column.
    """
    options = LoadEventsParams.of(options)
    names, values = read_file_columns(path, fmt, file_options(options))

    normalised: dict[str, str] = {}
    for name in names:
        key = str(name).strip().upper()
        if key in normalised:
            raise EventFileError(
                f"Events file {path.name!r} has column {key} twice ({normalised[key]!r} and {name!r}); nothing was loaded."
            )
        normalised[key] = name
    missing = [c for c in RAW_EVENT_COLUMNS if c not in normalised]
    if missing:
        hint = ""
        if fmt != "parquet" and not any(c in normalised for c in RAW_EVENT_COLUMNS):
            hint = (
                " None of its columns is a contract column: if your file has its own column names, declare it "
                "as a source with a `columns:` mapping (docs/sources.md) and load it with "
                "--params=source=<name>."
            )
        raise MissingColumnsError(
            f"Events file {path.name!r} is missing required column(s) {', '.join(missing)}; nothing was loaded. "
            f"It has: {', '.join(str(n) for n in names) or 'no column'}. The RAW_DATA contract needs "
            f"{', '.join(RAW_EVENT_COLUMNS)} (see the README).{hint}"
        )
    frame = pd.DataFrame(
        {column: [to_text(v) for v in values[normalised[column]]] for column in RAW_EVENT_COLUMNS},
        dtype=object,
    )
    frame.attrs["ignored_columns"] = [
        n for k, n in normalised.items() if k not in RAW_EVENT_COLUMNS and k not in RAW_LOAD_COLUMNS
    ]
    frame.attrs["stamp_columns_in_file"] = [n for k, n in normalised.items() if k in RAW_LOAD_COLUMNS]
    return frame
