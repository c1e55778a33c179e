"""Declared sources (conf/<env>/sources.yml): parsed and checked before anything reaches the warehouse.

A declaration is data, never SQL. Each mapping expression is parsed into a small tree of the
kinds below; anything else is refused with the list of kinds. Table names are plain identifiers
(``DB.SCHEMA.TABLE``, ``SCHEMA.TABLE`` or ``TABLE``); column names are matched later against the
source's real columns (``sources/mapping.py``), and constants are only ever Snowpark literals.

Expressions (a bare string is a source column, or a VARIANT path when it holds ``:``):

==================  ==========================================================================
``SALE_ID``         a source column (any case; matched against the real columns)
``PAYLOAD:a.b[0]``  a path into a VARIANT (or JSON text) column; element names are case-sensitive
``{column: X}``     the same as the bare string
``{constant: v}``   a fixed value
``{map: {...}}``    ``column`` (an expression), ``values`` (source value -> value, matched trimmed
                    and case-insensitively), optional ``default`` (else unmatched values pass on)
``{lookup: {...}}`` ``table``, ``key`` (its key column), ``column`` (the value), optional ``on``
                    (the source expression matched to the key; default: the source column
                    named like the key)
``{multiply: [..]}`` the product of numeric expressions, rounded to 2 decimals
``{abs: x}``        the absolute value of a number
``{concat: [..]}``  the parts as text joined by ``separator`` (default ``-``); NULL parts as ''
``{remove_prefix: [x, "C"]}``  ``x`` without the leading literal text (when it starts with it)
``{when: [{if: cond, then: x}, ...], else: y}``  the first matching branch
==================  ==========================================================================

Conditions (inside ``when``): ``{starts_with: [x, "literal"]}``, ``{equals: [x, "literal"]}``
(trimmed, case-insensitive), ``{negative: x}``, ``{is_empty: x}``, ``{any: [conds]}``,
``{all: [conds]}``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from customer_segmentation.errors import SegmentationError
from customer_segmentation.warehouse.identifiers import validate_identifier
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS

#: Contract columns a declaration must map (the features need them); the others may be left out (NULL).
REQUIRED_COLUMNS = ("EVENT_ID", "EVENT_TYPE", "EVENT_TS", "CUSTOMER_ID", "ORDER_ID", "AMOUNT")
EXPRESSION_KINDS = (
    "column",
    "constant",
    "map",
    "lookup",
    "multiply",
    "abs",
    "concat",
    "remove_prefix",
    "when",
)
CONDITION_KINDS = ("starts_with", "equals", "negative", "is_empty", "any", "all")
FILE_FORMATS = ("csv", "jsonl", "parquet", "xlsx")
_SOURCE_KEYS = (
    "table",
    "file",
    "incremental_by",
    "flatten",
    "columns",
    "format",
    "encoding",
    "delimiter",
    "decimal",
    "sheet",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
#: One element of a VARIANT path: a key (``customer``) or an index (``[0]``).
_PATH_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$ -]{0,254}$")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
HOW_TO = "See docs/sources.md for the declaration format."


class SourceDeclarationError(SegmentationError, ValueError):
    """A declared source (conf/*/sources.yml) is not valid; nothing was read or written."""


# ---------------------------------------------------------------- expression tree


@dataclass(frozen=True)
class Column:
    """A source column, optionally followed by a VARIANT path (``PAYLOAD:customer.id``)."""

    name: str
    path: tuple[str | int, ...] = ()

    @property
    def text(self) -> str:
        if not self.path:
            return self.name
        parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"{self.name}:{parts.lstrip('.')}"


@dataclass(frozen=True)
class Constant:
    value: str | None


@dataclass(frozen=True)
class MapValues:
    column: Any
    values: tuple[tuple[str, str | None], ...]
    default: Constant | None = None  # None: an unmatched value passes on as it is


@dataclass(frozen=True)
class Lookup:
    table: TableRef
    key: str
    column: str
    on: Any


@dataclass(frozen=True)
class Multiply:
    factors: tuple[Any, ...]


@dataclass(frozen=True)
class Abs:
    value: Any


@dataclass(frozen=True)
class Concat:
    parts: tuple[Any, ...]
    separator: str = "-"


@dataclass(frozen=True)
class RemovePrefix:
    value: Any
    prefix: str


@dataclass(frozen=True)
class When:
    branches: tuple[tuple[Any, Any], ...]
    otherwise: Any = None


@dataclass(frozen=True)
class Condition:
    kind: str  # one of CONDITION_KINDS
    value: Any = None  # an expression (starts_with, equals, negative, is_empty)
    literal: str | None = None  # starts_with / equals
    parts: tuple[Condition, ...] = ()  # any / all


@dataclass(frozen=True)
class TableRef:
    """``DATABASE.SCHEMA.TABLE`` with validated parts (database/schema None: the session's)."""

    table: str
    schema: str | None = None
    database: str | None = None

    @classmethod
    def parse(cls, value: Any, what: str) -> TableRef:
        if not isinstance(value, str) or not value.strip():
            raise SourceDeclarationError(
                f"{what} must be a table name such as BATCH_DATA.SALES, got {value!r}."
            )
        parts = value.strip().split(".")
        if len(parts) > 3:
            raise SourceDeclarationError(
                f"{what} {value!r} has {len(parts)} parts: write TABLE, SCHEMA.TABLE or DATABASE.SCHEMA.TABLE."
            )
        try:
            names = [validate_identifier(p, "name") for p in parts]
        except SegmentationError:
            raise SourceDeclarationError(
                f"{what} {value!r} is not a plain table name: each part (DATABASE.SCHEMA.TABLE) must use "
                "letters, digits, '_' or '$' and start with a letter or '_' (no quotes, spaces or SQL). "
                "For a table whose name needs quotes, create a view with a plain name over it."
            ) from None
        names = [None] * (3 - len(names)) + names
        return cls(table=names[2], schema=names[1], database=names[0])

    def qualified(self, database: str, schema: str) -> str:
        """The full name, the session's database and schema filling the missing parts."""
        return ".".join(
            (
                self.database or validate_identifier(database, "database name"),
                self.schema or validate_identifier(schema, "schema name"),
                self.table,
            )
        )

    @property
    def text(self) -> str:
        return ".".join(p for p in (self.database, self.schema, self.table) if p)


@dataclass(frozen=True)
class Source:
    """One declared source: where its rows are and how they map onto the RAW_DATA contract."""

    name: str
    columns: dict[str, Any]
    table: TableRef | None = None
    file: Path | None = None
    incremental_by: str | None = None
    flatten: Column | None = None
    file_options: dict[str, Any] = field(default_factory=dict)

    @property
    def source_file(self) -> str:
        """What RAW_DATA.SOURCE_FILE holds for this source's rows (``source://<name>``)."""
        return f"source://{self.name}"

    @property
    def where(self) -> str:
        return self.table.text if self.table is not None else str(self.file)


# ---------------------------------------------------------------- parsing


def _closest(value: str, choices: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
    return f" Did you mean {match[0]}?" if match else ""


def parse_column(text: Any, where: str) -> Column:
    """A bare column name or ``COLUMN:path.to[0].field``."""
    if not isinstance(text, str) or not text.strip():
        raise SourceDeclarationError(f"{where}: expected a column name, got {text!r}. {HOW_TO}")
    name, sep, path_text = text.strip().partition(":")
    name = name.strip()
    if not name:
        raise SourceDeclarationError(f"{where}: {text!r} has no column before ':'. {HOW_TO}")
    if not sep:
        return Column(name)
    path: list[str | int] = []
    position = 0
    path_text = path_text.strip()
    for match in _PATH_PART.finditer(path_text):
        if match.start() != position and path_text[position : match.start()] != ".":
            break
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not _PATH_KEY.match(key):
                raise SourceDeclarationError(
                    f"{where}: path element {key!r} of {text!r} is not a plain JSON key (letters, digits, '_', "
                    f"'$', '-' or spaces). {HOW_TO}"
                )
            path.append(key)
        else:
            path.append(int(index))
        position = match.end()
    if not path or position != len(path_text):
        raise SourceDeclarationError(
            f"{where}: {text!r} is not a valid VARIANT path: write COLUMN:key.key[0].key. {HOW_TO}"
        )
    return Column(name, tuple(path))


def _literal(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SourceDeclarationError(f"{where}: expected a text or number, got {value!r}. {HOW_TO}")
    return str(value)


def _constant(value: Any, where: str) -> Constant:
    if value is None:
        return Constant(None)
    return Constant(_literal(value, where))


def parse_expression(spec: Any, where: str) -> Any:
    """One mapping expression (see the module docstring); refuses anything else."""
    if isinstance(spec, str):
        return parse_column(spec, where)
    if not isinstance(spec, dict) or not spec:
        raise SourceDeclarationError(
            f"{where}: {spec!r} is not a mapping expression. Use a source column name, or one of "
            f"{{{', '.join(EXPRESSION_KINDS)}: ...}}. {HOW_TO}"
        )
    kinds = [k for k in spec if k in EXPRESSION_KINDS]
    extra = [k for k in spec if k not in EXPRESSION_KINDS and not (k == "separator" and "concat" in spec)]
    extra = [k for k in extra if not (k == "else" and "when" in spec)]
    if len(kinds) != 1 or extra:
        unknown = [str(k) for k in spec if k not in EXPRESSION_KINDS]
        hint = _closest(unknown[0], EXPRESSION_KINDS) if unknown else ""
        raise SourceDeclarationError(
            f"{where}: {spec!r} is not a mapping expression: expected exactly one of "
            f"{', '.join(EXPRESSION_KINDS)}.{hint} {HOW_TO}"
        )
    kind = kinds[0]
    body = spec[kind]
    inner = f"{where}.{kind}"
    if kind == "column":
        return parse_column(body, inner)
    if kind == "constant":
        return _constant(body, inner)
    if kind == "map":
        return _parse_map(body, inner)
    if kind == "lookup":
        return _parse_lookup(body, inner)
    if kind in ("multiply", "concat"):
        if not isinstance(body, list) or len(body) < (2 if kind == "multiply" else 1):
            raise SourceDeclarationError(f"{inner}: expected a list of expressions, got {body!r}. {HOW_TO}")
        parts = tuple(parse_expression(p, f"{inner}[{i}]") for i, p in enumerate(body))
        if kind == "multiply":
            return Multiply(parts)
        separator = spec.get("separator", "-")
        return Concat(parts, "" if separator is None else _literal(separator, f"{where}.separator"))
    if kind == "abs":
        return Abs(parse_expression(body, inner))
    if kind == "remove_prefix":
        value, literal = _pair(body, inner)
        return RemovePrefix(value, literal)
    return _parse_when(body, spec.get("else"), inner)


def _pair(body: Any, where: str) -> tuple[Any, str]:
    """``[expression, "literal"]`` (starts_with, equals, remove_prefix)."""
    if not isinstance(body, list) or len(body) != 2:
        raise SourceDeclarationError(
            f'{where}: expected [expression, "text"] (e.g. [InvoiceNo, C]), got {body!r}. {HOW_TO}'
        )
    literal = _literal(body[1], f"{where}[1]")
    if not literal:
        raise SourceDeclarationError(f"{where}: the text to compare with is empty. {HOW_TO}")
    return parse_expression(body[0], f"{where}[0]"), literal


def _parse_map(body: Any, where: str) -> MapValues:
    if not isinstance(body, dict) or "column" not in body or "values" not in body:
        raise SourceDeclarationError(
            f"{where}: expected {{column: <source column>, values: {{source value: value, ...}}, default: ...}}, "
            f"got {body!r}. {HOW_TO}"
        )
    unknown = [k for k in body if k not in ("column", "values", "default")]
    if unknown:
        raise SourceDeclarationError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}. {HOW_TO}")
    values = body["values"]
    if not isinstance(values, dict) or not values:
        raise SourceDeclarationError(f"{where}.values: expected a mapping of source values, got {values!r}.")
    pairs: list[tuple[str, str | None]] = []
    seen: dict[str, str] = {}
    for key, value in values.items():
        text = _literal(key, f"{where}.values key").strip()
        folded = text.upper()
        if folded in seen:
            raise SourceDeclarationError(
                f"{where}.values: {seen[folded]!r} and {text!r} are the same value (matching ignores case and spaces)."
            )
        seen[folded] = text
        pairs.append((text, _constant(value, f"{where}.values[{text}]").value))
    default = _constant(body["default"], f"{where}.default") if "default" in body else None
    return MapValues(parse_expression(body["column"], f"{where}.column"), tuple(pairs), default)


def _parse_lookup(body: Any, where: str) -> Lookup:
    if not isinstance(body, dict) or not {"table", "key", "column"} <= set(body):
        raise SourceDeclarationError(
            f"{where}: expected {{table: SCHEMA.TABLE, key: <its key column>, column: <its value column>, "
            f"on: <source column, default: the key's name>}}, got {body!r}. {HOW_TO}"
        )
    unknown = [k for k in body if k not in ("table", "key", "column", "on")]
    if unknown:
        raise SourceDeclarationError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}. {HOW_TO}")
    key = parse_column(body["key"], f"{where}.key")
    column = parse_column(body["column"], f"{where}.column")
    if key.path or column.path:
        raise SourceDeclarationError(f"{where}: key and column must be plain columns of the lookup table.")
    on = parse_expression(body.get("on", key.name), f"{where}.on")
    return Lookup(TableRef.parse(body["table"], f"{where}.table"), key.name, column.name, on)


def _parse_when(body: Any, otherwise: Any, where: str) -> When:
    if not isinstance(body, list) or not body:
        raise SourceDeclarationError(
            f"{where}: expected a list of {{if: <condition>, then: <expression>}} and an `else:`, got {body!r}. {HOW_TO}"
        )
    branches = []
    for i, branch in enumerate(body):
        if not isinstance(branch, dict) or set(branch) != {"if", "then"}:
            raise SourceDeclarationError(
                f"{where}[{i}]: expected {{if: <condition>, then: <expression>}}, got {branch!r}. {HOW_TO}"
            )
        branches.append(
            (
                parse_condition(branch["if"], f"{where}[{i}].if"),
                parse_expression(branch["then"], f"{where}[{i}].then"),
            )
        )
    tail = None if otherwise is None else parse_expression(otherwise, f"{where}.else")
    return When(tuple(branches), tail)


def parse_condition(spec: Any, where: str) -> Condition:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in CONDITION_KINDS:
        first = next(iter(spec), "") if isinstance(spec, dict) else ""
        raise SourceDeclarationError(
            f"{where}: {spec!r} is not a condition: expected one of {', '.join(CONDITION_KINDS)}."
            f"{_closest(str(first), CONDITION_KINDS) if first else ''} {HOW_TO}"
        )
    kind, body = next(iter(spec.items()))
    inner = f"{where}.{kind}"
    if kind in ("starts_with", "equals"):
        value, literal = _pair(body, inner)
        return Condition(kind, value=value, literal=literal)
    if kind in ("negative", "is_empty"):
        return Condition(kind, value=parse_expression(body, inner))
    if not isinstance(body, list) or not body:
        raise SourceDeclarationError(f"{inner}: expected a list of conditions, got {body!r}. {HOW_TO}")
    return Condition(kind, parts=tuple(parse_condition(c, f"{inner}[{i}]") for i, c in enumerate(body)))


def parse_source(name: Any, spec: Any, project_path: Path | None = None) -> Source:
    """One entry of sources.yml, checked (structure, names, expressions); columns are checked later."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SourceDeclarationError(
            f"Source name {name!r} in sources.yml: use letters, digits and '_', starting with a letter or '_'."
        )
    where = f"sources.yml: {name}"
    if not isinstance(spec, dict):
        raise SourceDeclarationError(
            f"{where}: expected a mapping (table: or file:, columns: ...), got {spec!r}."
        )
    unknown = [str(k) for k in spec if k not in _SOURCE_KEYS]
    if unknown:
        raise SourceDeclarationError(
            f"{where}: unknown key {unknown[0]!r}.{_closest(unknown[0], _SOURCE_KEYS)} Keys: {', '.join(_SOURCE_KEYS)}."
        )
    if ("table" in spec) == ("file" in spec):
        raise SourceDeclarationError(
            f"{where}: give exactly one of `table:` (a table or view) or `file:` (a path)."
        )
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise SourceDeclarationError(
            f"{where}: `columns:` must map contract columns ({', '.join(RAW_EVENT_COLUMNS)}) to expressions."
        )
    mapping: dict[str, Any] = {}
    for key, expression in columns.items():
        contract = str(key).strip().upper()
        if contract not in RAW_EVENT_COLUMNS:
            raise SourceDeclarationError(
                f"{where}.columns: {key!r} is not a RAW_DATA contract column.{_closest(contract, tuple(RAW_EVENT_COLUMNS))} "
                f"The contract columns are {', '.join(RAW_EVENT_COLUMNS)}."
            )
        if contract in mapping:
            raise SourceDeclarationError(f"{where}.columns: {contract} is mapped twice.")
        mapping[contract] = parse_expression(expression, f"{where}.columns.{contract}")
    missing = [c for c in REQUIRED_COLUMNS if c not in mapping]
    if missing:
        raise SourceDeclarationError(
            f"{where}.columns: map {', '.join(missing)} too (a column, or {{constant: ...}}); "
            "PRODUCT_ID, CATEGORY, QUANTITY and CHANNEL may be left out (empty)."
        )
    incremental = spec.get("incremental_by")
    if incremental is not None:
        incremental = parse_column(incremental, f"{where}.incremental_by")
        if incremental.path:
            raise SourceDeclarationError(f"{where}.incremental_by: a plain column is needed, not a path.")
        incremental = incremental.name
    flatten = None
    if spec.get("flatten") is not None:
        flatten = parse_column(spec["flatten"], f"{where}.flatten")
    if "table" in spec:
        file_keys = [k for k in ("format", "encoding", "delimiter", "decimal", "sheet") if k in spec]
        if file_keys:
            raise SourceDeclarationError(f"{where}: {', '.join(file_keys)} only apply to `file:` sources.")
        return Source(
            name=name,
            columns=mapping,
            table=TableRef.parse(spec["table"], f"{where}.table"),
            incremental_by=incremental,
            flatten=flatten,
        )
    if incremental is not None:
        raise SourceDeclarationError(
            f"{where}: incremental_by applies to tables; a file is loaded once per content (SHA-256)."
        )
    raw_path = spec["file"]
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise SourceDeclarationError(f"{where}.file: expected a file path, got {raw_path!r}.")
    path = Path(raw_path.strip()).expanduser()
    if not path.is_absolute() and project_path is not None:
        path = project_path / path
    options = {
        k: spec[k] for k in ("format", "encoding", "delimiter", "decimal", "sheet") if spec.get(k) is not None
    }
    fmt = options.get("format")
    if fmt is not None and str(fmt).lower().lstrip(".") not in (*FILE_FORMATS, "json", "ndjson", "pq", "xls"):
        raise SourceDeclarationError(f"{where}.format: {fmt!r} is not one of {', '.join(FILE_FORMATS)}.")
    if "decimal" in options and options["decimal"] not in (",", "."):
        raise SourceDeclarationError(f"{where}.decimal: use ',' or '.', got {options['decimal']!r}.")
    return Source(name=name, columns=mapping, file=path, flatten=flatten, file_options=options)


def parse_sources(config: Any, project_path: Path | None = None) -> dict[str, Source]:
    """Every declared source of the ``sources`` configuration (empty when none is declared)."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise SourceDeclarationError(
            f"sources.yml must map source names to declarations, got {type(config).__name__}. {HOW_TO}"
        )
    return {str(name): parse_source(name, spec, project_path) for name, spec in config.items()}


def pick_source(sources: dict[str, Source], name: Any) -> Source:
    """The source called ``name`` (``--params=source=<name>``), or an error listing the declared ones."""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise SourceDeclarationError(
            "No source given: pass --params=source=<name>, one of: "
            f"{', '.join(sorted(sources)) or 'none declared (add one to conf/local/sources.yml)'}."
        )
    if name not in sources:
        raise SourceDeclarationError(
            f"No source named {name!r} in sources.yml.{_closest(str(name), tuple(sources))} Declared: "
            f"{', '.join(sorted(sources)) or 'none (add one to conf/local/sources.yml, see docs/sources.md)'}."
        )
    return sources[name]
