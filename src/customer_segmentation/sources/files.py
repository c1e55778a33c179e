"""Reading files as people have them: any of , ; tab | as delimiter, UTF-8 (with or without BOM),
cp1252 / latin-1, decimal commas, Excel .xlsx (optional extra). Pure Python/pandas, no warehouse.

A file is read whole into columns of its own names; values stay as written (text), only an empty
value becomes None. ``load_events`` checks the columns against the contract (or maps them with a
declared source's ``columns:``), ``check_source`` previews them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from customer_segmentation.errors import SegmentationError

DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab ('\\t')", "|": "'|'"}
#: A number written with a decimal comma, optionally with '.', ' ' or a no-break space between thousands.
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}([. \u00a0\u202f]\d{3})+|\d+)(,\d+)?$")


class FileReadError(SegmentationError, ValueError):
    """A file cannot be read as asked (encoding, delimiter, format); the message says what to set."""


@dataclass(frozen=True)
class FileOptions:
    """How to read one file; None = detect (delimiter from the header, decimal comma for ';' files)."""

    delimiter: str | None = None
    encoding: str = "utf-8-sig"
    decimal: str | None = None
    sheet: str | int | None = None
    #: how the user sets each option, for error messages (``--params=load_events.encoding=...``)
    setting: str = "--params=load_events.{option}=..."

    def how_to_set(self, option: str, value: str) -> str:
        return self.setting.format(option=option).replace("...", value)


def to_text(value: Any) -> str | None:
    """A file value as RAW_DATA text; ``None`` (SQL NULL) for empty or missing values."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return None if value.is_nan() else format(value, "f")
    if isinstance(value, datetime):  # includes pandas.Timestamp
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f" if value.microsecond else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace") or None
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if hasattr(value, "item"):  # numpy scalars
        return to_text(value.item())
    if hasattr(value, "tolist"):  # numpy arrays (Parquet lists)
        return to_text(value.tolist())
    return str(value)


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes: the identity of a load (same content = same file)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_text(path: Path, encoding: str) -> Any:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return path.open("r", encoding=encoding, newline="")


def read_text(path: Path, options: FileOptions) -> str:
    """The whole text of a CSV / JSON file; a decoding error says which encoding to set."""
    try:
        with _open_text(path, options.encoding) as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex() if isinstance(exc.object, bytes) else "?"
        raise FileReadError(
            f"File {path.name!r} is not valid {options.encoding} text (byte 0x{byte} at position {exc.start}). "
            "Files saved by Excel or Windows in Western Europe are usually cp1252: set "
            f"{options.how_to_set('encoding', 'cp1252')} (latin-1 reads any byte). Nothing was loaded."
        ) from None
    except LookupError:
        raise FileReadError(
            f"Unknown encoding {options.encoding!r} for {path.name!r}: use utf-8, utf-8-sig, cp1252 or latin-1."
        ) from None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip("\r")


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def detect_delimiter(text: str) -> str:
    """The delimiter of a CSV text: the candidate that splits the header most, confirmed by csv.Sniffer."""
    header = _first_line(text)
    counts = {d: _count_outside_quotes(header, d) for d in DELIMITERS}
    best = max(counts.values())
    if best == 0:
        return ","  # one column (or an empty file): the delimiter does not matter
    leaders = [d for d, n in counts.items() if n == best]
    if len(leaders) == 1:
        return leaders[0]
    try:  # a tie in the header: let the sniffer look at a few lines
        return csv.Sniffer().sniff(text[:65536], delimiters="".join(leaders)).delimiter
    except csv.Error:
        return leaders[0]


def _check_delimiter(path: Path, text: str, delimiter: str, options: FileOptions) -> None:
    """A delimiter given by the user that leaves the header in one piece while another splits it: say so."""
    header = _first_line(text)
    if _count_outside_quotes(header, delimiter) > 0:
        return
    found = detect_delimiter(text)
    if found != delimiter and _count_outside_quotes(header, found) > 0:
        raise FileReadError(
            f"File {path.name!r} is not delimited by {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}: with it, "
            f"the header is one column ({header[:120]!r}). It looks delimited by "
            f"{_DELIMITER_NAMES.get(found, repr(found))}: set {options.how_to_set('csv_delimiter', repr(found))}, "
            "or leave the delimiter unset to detect it. Nothing was loaded."
        )


def comma_decimals(values: list[Any]) -> list[Any] | None:
    """The values with decimal commas turned into points, if every non-empty value is such a number.

    ``None`` when the column is not numeric with decimal commas (left as it is): at least one value
    must hold a comma, so ids and integers are never touched.
    """
    texts = [v for v in values if isinstance(v, str) and v.strip()]
    if not texts or any(not isinstance(v, str) for v in values if v not in (None, "")):
        return None
    if not any("," in v for v in texts) or not all(_DECIMAL_COMMA.match(v.strip()) for v in texts):
        return None
    out = []
    for value in values:
        if isinstance(value, str) and value.strip():
            digits = value.strip()
            for sep in (".", " ", "\u00a0", "\u202f"):
                digits = digits.replace(sep, "")
            out.append(digits.replace(",", "."))
        else:
            out.append(value)
    return out


def _read_csv(path: Path, options: FileOptions) -> tuple[list[str], dict[str, list[Any]]]:
    text = read_text(path, options)
    if options.delimiter is None:
        delimiter = detect_delimiter(text)
    else:
        delimiter = options.delimiter
        _check_delimiter(path, text, delimiter, options)
    frame = pd.read_csv(
        io.StringIO(text), dtype=str, keep_default_na=False, na_values=[], sep=delimiter, engine="c"
    )
    names = [str(c) for c in frame.columns]
    columns = {name: frame.iloc[:, i].tolist() for i, name in enumerate(names)}
    decimal = options.decimal if options.decimal is not None else ("," if delimiter == ";" else ".")
    if decimal == ",":
        for name in names:
            converted = comma_decimals(columns[name])
            if converted is not None:
                columns[name] = converted
    return names, columns


def _json_records(path: Path, options: FileOptions) -> Iterable[tuple[int, Any]]:
    text = read_text(path, options)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a plain JSON array of objects is accepted too
        try:
            records = json.loads(stripped, parse_float=str, parse_int=str)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        yield from enumerate(records, start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line, parse_float=str, parse_int=str)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number} is not valid JSON ({exc.msg})") from None


def _read_jsonl(path: Path, options: FileOptions) -> tuple[list[str], dict[str, list[Any]]]:
    names: list[str] = []
    columns: dict[str, list[Any]] = {}
    count = 0
    for number, record in _json_records(path, options):
        if not isinstance(record, dict):
            raise ValueError(f"record {number} is a JSON {type(record).__name__}, not an object")
        for key in record:
            if key not in columns:
                names.append(key)
                columns[key] = [None] * count
        for key in names:
            columns[key].append(record.get(key))
        count += 1
    return names, columns


def _read_parquet(path: Path, options: FileOptions) -> tuple[list[str], dict[str, list[Any]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    names = [str(n) for n in table.column_names]
    return names, {name: table.column(i).to_pylist() for i, name in enumerate(names)}


def _read_xlsx(path: Path, options: FileOptions) -> tuple[list[str], dict[str, list[Any]]]:
    try:
        import openpyxl  # noqa: F401 - pandas' reader for .xlsx, an optional extra
    except ImportError:
        raise FileReadError(
            f"Reading {path.name!r} (Excel) needs the optional reader openpyxl: pip install -e '.[excel]' "
            "(or pip install -r requirements-excel.txt), or save the sheet as CSV. Nothing was loaded."
        ) from None
    sheet = 0 if options.sheet is None else options.sheet
    try:
        frame = pd.read_excel(path, sheet_name=sheet, dtype=object, engine="openpyxl", keep_default_na=False)
    except ValueError as exc:
        if "Worksheet" in str(exc) or "sheet" in str(exc).lower():
            raise FileReadError(
                f"{path.name!r} has no sheet {sheet!r} ({exc}); set {options.how_to_set('sheet', '<name>')}."
            ) from None
        raise
    names = [str(c) for c in frame.columns]
    return names, {
        name: [None if v == "" else v for v in frame.iloc[:, i].tolist()] for i, name in enumerate(names)
    }


READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet, "xlsx": _read_xlsx}


def read_columns(path: Path, fmt: str, options: FileOptions) -> tuple[list[str], dict[str, list[Any]]]:
    """The file's column names (as written) and values, in file order; raises what the reader raises."""
    return READERS[fmt](path, options)


def sanitized_names(names: list[str]) -> list[str]:
    """Plain Snowflake identifiers for a file's column names ('Date de vente' -> DATE_DE_VENTE), unique."""
    out: list[str] = []
    for i, name in enumerate(names, start=1):
        ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
        clean = re.sub(r"[^A-Za-z0-9_]+", "_", ascii_name).strip("_").upper() or f"COLUMN_{i}"
        if clean[0].isdigit():
            clean = "_" + clean
        clean = clean[:200]
        candidate, n = clean, 2
        while candidate in out:
            candidate, n = f"{clean}_{n}", n + 1
        out.append(candidate)
    return out
