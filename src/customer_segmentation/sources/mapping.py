"""A declared source's rows mapped onto the RAW_DATA contract, in the warehouse (Snowpark).

Every name in a declaration is matched against the real columns before any SQL is built: a
column that does not exist is refused with the columns that do and the closest one (difflib), and
the SQL then names it as a quoted identifier of the *real* column (``"SALE_ID"``), never as the
configured text. Values (constants, map entries, prefixes) are Snowpark literals: data, escaped by
Snowpark, never SQL text. The result has the ten contract columns as text, rendered with
explicit formats (timestamps ``YYYY-MM-DD HH24:MI:SS[.FF]``, dates ``YYYY-MM-DD``, numbers
without exponent), so what lands never depends on session settings.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from snowflake.snowpark import DataFrame, Window
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    MapType,
    StringType,
    TimestampType,
    VariantType,
    _IntegralType,
)

from customer_segmentation.event_checks import as_utc_ntz, is_zoned, timestamp_text
from customer_segmentation.sources.declarations import (
    Abs,
    Column,
    Concat,
    Condition,
    Constant,
    Lookup,
    MapValues,
    Multiply,
    RemovePrefix,
    Source,
    SourceDeclarationError,
    When,
)
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS

#: Pseudo-columns of a flattened source (``flatten: PAYLOAD:items``): the array element and its position.
ITEM, ITEM_INDEX = "ITEM", "ITEM_INDEX"
#: Column of the mapped frame holding the incremental value (comparable form), when the source has one.
INCREMENTAL = "INCREMENTAL_VALUE__"
_NUMBER = "number(38,6)"


def quoted(name: str) -> str:
    """A real column name as a quoted identifier (embedded double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def unquote(name: str) -> str:
    """A Snowpark schema name as the column's real name (``"we""ird"`` -> ``we"ird``)."""
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def column_types(frame: DataFrame) -> dict[str, DataType]:
    """Real column name -> type, in order."""
    return {unquote(f.name): f.datatype for f in frame.schema.fields}


def _kind(datatype: DataType | None) -> str:
    if isinstance(datatype, StringType):
        return "text"
    if isinstance(datatype, (_IntegralType, DecimalType)):
        return "number"
    if isinstance(datatype, (DoubleType, FloatType)):
        return "float"
    if isinstance(datatype, TimestampType):
        return "timestamp_tz" if is_zoned(datatype) else "timestamp"
    if isinstance(datatype, DateType):
        return "date"
    if isinstance(datatype, (VariantType, MapType, ArrayType)):
        return "variant"
    if isinstance(datatype, BooleanType):
        return "boolean"
    return "text"


def _strip_zeros(text: Any) -> Any:
    """'12.500000' -> '12.5', '3.000000' -> '3' (no exponent, no trailing zeros)."""
    trimmed = F.rtrim(F.rtrim(text, F.lit("0")), F.lit("."))
    return F.iff(F.contains(text, F.lit(".")), trimmed, text)


@dataclass
class Value:
    """A mapped expression and what kind of value it is (decides how it becomes text or a number)."""

    column: Any
    kind: str  # text | number | float | timestamp | timestamp_tz | date | variant | boolean


def as_text(value: Value) -> Any:
    """The value as RAW_DATA text, independent of session formats."""
    column, kind = value.column, value.kind
    if kind == "number":
        return F.call_builtin("to_varchar", column)
    if kind == "float":
        return _strip_zeros(F.call_builtin("to_varchar", column.cast(_NUMBER)))
    if kind == "timestamp":
        return timestamp_text(column)
    if kind == "timestamp_tz":
        return timestamp_text(as_utc_ntz(column))
    if kind == "date":
        return F.call_builtin("to_varchar", column.cast("date"), F.lit("YYYY-MM-DD"))
    return column.cast("string")  # text, VARIANT (strings come unquoted), boolean


def as_number(value: Value, where: str) -> Any:
    """The value as NUMBER(38,6); text is parsed (TRY_TO_NUMBER: NULL when it is not a number)."""
    if value.kind == "number":
        return value.column
    if value.kind == "float":
        return value.column.cast(_NUMBER)
    if value.kind in ("text", "variant"):
        return F.call_builtin("try_to_number", F.trim(value.column.cast("string")), F.lit(38), F.lit(6))
    raise SourceDeclarationError(f"{where}: a {value.kind} value cannot be used as a number.")


def comparable(value: Value) -> Any:
    """The incremental column in a form that orders as it grows (UTC for zoned timestamps)."""
    if value.kind == "timestamp_tz":
        return as_utc_ntz(value.column)
    if value.kind == "float":
        return value.column.cast("double")
    return value.column


def watermark_literal(value: Any) -> Any:
    """A stored watermark (its Python value) as a typed Snowpark literal."""
    if isinstance(value, datetime):
        return F.lit(value.isoformat(sep=" ")).cast("timestamp_ntz")
    if isinstance(value, date):
        return F.lit(value.isoformat()).cast("date")
    if isinstance(value, (int, Decimal)):
        return F.lit(str(value)).cast("number(38,9)")
    if isinstance(value, float):
        return F.lit(value)
    return F.lit(str(value))


def resolve(name: str, available: dict[str, DataType], where: str, what: str) -> str:
    """The real column ``name`` means: exact, else the one that matches ignoring case; else refuse."""
    if name in available:
        return name
    folded = [c for c in available if c.upper() == name.upper()]
    if len(folded) == 1:
        return folded[0]
    if len(folded) > 1:
        raise SourceDeclarationError(
            f"{where}: {what} has several columns named {name!r} in different cases ({', '.join(folded)}); "
            "write the exact one."
        )
    upper = {c.upper(): c for c in available}
    match = difflib.get_close_matches(name.upper(), list(upper), n=1, cutoff=0.5)
    closest = f" The closest is {upper[match[0]]}." if match else ""
    raise SourceDeclarationError(
        f"{where}: {what} has no column {name!r}.{closest} Its columns: {', '.join(available)}."
    )


def column_value(types: dict[str, DataType], node: Column, where: str, described: str) -> Value:
    """A source column (the real one the name means), followed into its VARIANT path if any."""
    name = resolve(node.name, types, where, described)
    value = Value(F.col(quoted(name)), _kind(types[name]))
    if not node.path:
        return value
    if value.kind == "variant":
        target = value.column
    elif value.kind == "text":  # JSON held as text (a file, or a VARCHAR column)
        target = F.call_builtin("try_parse_json", value.column)
    else:
        raise SourceDeclarationError(
            f"{where}: {node.text!r} is a path, but {name} is a {value.kind} column, not VARIANT or JSON text."
        )
    for part in node.path:
        target = target[part]
    return Value(target, "variant")


@dataclass
class _Lookup:
    table: str
    alias_on: str
    alias_value: str
    frame: DataFrame
    kind: str
    repeated_keys: DataFrame


@dataclass
class MappedSource:
    """A source's rows as contract text columns (+ INCREMENTAL_VALUE__ when incremental), lazily."""

    source: Source
    frame: DataFrame
    source_columns: dict[str, DataType]
    described: str
    incremental: bool
    incremental_kind: str | None = None  # number | float | timestamp | timestamp_tz | date | text
    lookups: list[tuple[str, DataFrame]] = field(default_factory=list)  # (table, repeated keys)
    unread_rows: DataFrame | None = None  # incremental sources: rows without a value (never read)


class _Mapper:
    def __init__(self, session: Any, source: Source, frame: DataFrame, database: str, schema: str) -> None:
        self.session, self.source, self.database, self.schema = session, source, database, schema
        self.types = column_types(frame)
        self.frame = frame
        self.lookups: list[_Lookup] = []
        self.described = source.where

    def column(self, node: Column, where: str) -> Value:
        return column_value(self.types, node, where, self.described)

    def value(self, node: Any, where: str) -> Value:  # noqa: PLR0911 - one branch per expression kind
        if isinstance(node, Column):
            return self.column(node, where)
        if isinstance(node, Constant):
            return Value(F.lit(node.value).cast("string"), "text")
        if isinstance(node, MapValues):
            source_text = as_text(self.value(node.column, f"{where}.map.column"))
            folded = F.upper(F.trim(source_text))
            result = None
            for key, target in node.values:
                literal = F.lit(target).cast("string")
                condition = folded == F.lit(key.strip().upper())
                result = F.when(condition, literal) if result is None else result.when(condition, literal)
            fallback = source_text if node.default is None else F.lit(node.default.value).cast("string")
            return Value(result.otherwise(fallback), "text")
        if isinstance(node, Lookup):
            return self.lookup(node, where)
        if isinstance(node, Multiply):
            product = None
            for i, factor in enumerate(node.factors):
                number = as_number(self.value(factor, f"{where}.multiply[{i}]"), f"{where}.multiply[{i}]")
                product = number if product is None else product * number
            return Value(F.round(product, F.lit(2)).cast("number(38,2)"), "number")
        if isinstance(node, Abs):
            inner = self.value(node.value, f"{where}.abs")
            return Value(F.abs(as_number(inner, f"{where}.abs")), "number")
        if isinstance(node, Concat):
            parts = []
            for i, part in enumerate(node.parts):
                if i:
                    parts.append(F.lit(node.separator))
                parts.append(F.coalesce(as_text(self.value(part, f"{where}.concat[{i}]")), F.lit("")))
            return Value(parts[0] if len(parts) == 1 else F.concat(*parts), "text")
        if isinstance(node, RemovePrefix):
            text = as_text(self.value(node.value, f"{where}.remove_prefix"))
            n = len(node.prefix)
            starts = F.substring(text, F.lit(1), F.lit(n)) == F.lit(node.prefix)
            return Value(F.iff(starts, F.substring(text, F.lit(n + 1), F.lit(10**6)), text), "text")
        if isinstance(node, When):
            result = None
            for i, (condition, then) in enumerate(node.branches):
                test = self.condition(condition, f"{where}.when[{i}].if")
                outcome = as_text(self.value(then, f"{where}.when[{i}].then"))
                result = F.when(test, outcome) if result is None else result.when(test, outcome)
            otherwise = (
                F.lit(None).cast("string")
                if node.otherwise is None
                else as_text(self.value(node.otherwise, f"{where}.else"))
            )
            return Value(result.otherwise(otherwise), "text")
        raise SourceDeclarationError(f"{where}: unsupported expression {node!r}.")  # pragma: no cover

    def condition(self, node: Condition, where: str) -> Any:
        if node.kind == "starts_with":
            text = as_text(self.value(node.value, where))
            return F.coalesce(
                F.substring(text, F.lit(1), F.lit(len(node.literal or ""))) == F.lit(node.literal),
                F.lit(False),
            )
        if node.kind == "equals":
            text = F.upper(F.trim(as_text(self.value(node.value, where))))
            return F.coalesce(text == F.lit((node.literal or "").strip().upper()), F.lit(False))
        if node.kind == "negative":
            return F.coalesce(as_number(self.value(node.value, where), where) < F.lit(0), F.lit(False))
        if node.kind == "is_empty":
            return F.coalesce(F.trim(as_text(self.value(node.value, where))), F.lit("")) == F.lit("")
        tests = [self.condition(part, f"{where}.{node.kind}[{i}]") for i, part in enumerate(node.parts)]
        combined = tests[0]
        for test in tests[1:]:
            combined = (combined | test) if node.kind == "any" else (combined & test)
        return combined

    def lookup(self, node: Lookup, where: str) -> Value:
        fqn = node.table.qualified(self.database, self.schema)
        dimension = read_table(self.session, fqn, f"{where}.lookup.table")
        types = column_types(dimension)
        key = resolve(node.key, types, f"{where}.lookup.key", f"lookup table {node.table.text}")
        column = resolve(node.column, types, f"{where}.lookup.column", f"lookup table {node.table.text}")
        index = len(self.lookups)
        alias_on, alias_key, alias_value = (
            f"LOOKUP_{index}_ON__",
            f"LOOKUP_{index}_KEY__",
            f"LOOKUP_{index}_VALUE__",
        )
        on_text = as_text(self.value(node.on, f"{where}.lookup.on"))
        key_text = as_text(Value(F.col(quoted(key)), _kind(types[key])))
        # one row per key (the lowest value when a key repeats): a lookup never multiplies source rows
        keyed = dimension.select(key_text.alias(alias_key), F.col(quoted(column)).alias(alias_value))
        table = keyed.group_by(alias_key).agg(F.min(alias_value).alias(alias_value))
        repeated = keyed.group_by(alias_key).agg(F.count(F.lit(1)).alias("N")).filter(F.col("N") > F.lit(1))
        self.lookups.append(
            _Lookup(node.table.text, alias_on, alias_key, table, _kind(types[column]), repeated)
        )
        self.frame = self.frame.with_column(alias_on, on_text)
        joined = self.frame.join(table, self.frame[alias_on] == table[alias_key], how="left")
        self.frame = joined.drop(alias_key)
        return Value(F.col(alias_value), _kind(types[column]))


def read_table(session: Any, fqn: str, where: str) -> DataFrame:
    """The table or view ``fqn`` (validated parts), checked to exist and be readable."""
    frame = session.table(fqn)
    try:
        frame.schema  # noqa: B018 - one DESCRIBE: fails here, with our message, when it is missing
    except Exception as exc:  # the connector raises several kinds for "does not exist or not authorized"
        raise SourceDeclarationError(
            f"{where}: table or view {fqn} does not exist, or the role may not read it ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}). Check the name in sources.yml (DATABASE.SCHEMA.TABLE) and "
            "GRANT SELECT on it."
        ) from None
    return frame


def flattened(frame: DataFrame, source: Source, types: dict[str, DataType]) -> DataFrame:
    """One row per element of the ``flatten`` array (rows whose array is empty or missing give none)."""
    assert source.flatten is not None
    where = f"sources.yml: {source.name}.flatten"
    for pseudo in (ITEM, ITEM_INDEX):
        if any(c.upper() == pseudo for c in types):
            raise SourceDeclarationError(
                f"{where}: {source.where} already has a column {pseudo}, which flatten adds; rename it in a view."
            )
    array = column_value(types, source.flatten, where, source.where).column
    exploded = frame.join_table_function("flatten", array)
    return exploded.select(
        *[F.col(c) for c in frame.columns],
        F.col("VALUE").alias(ITEM),
        F.col("INDEX").alias(ITEM_INDEX),
    )


def map_frame(
    session: Any, source: Source, frame: DataFrame, database: str, schema: str, keep: tuple[str, ...] = ()
) -> MappedSource:
    """The source frame mapped onto the contract columns (text), plus its incremental value if any.

    ``keep``: columns of ``frame`` passed through unchanged (a staged file's row number).
    """
    source_types = {n: t for n, t in column_types(frame).items() if n not in keep}
    if source.flatten is not None:
        frame = flattened(frame, source, source_types)
    mapper = _Mapper(session, source, frame, database, schema)
    where = f"sources.yml: {source.name}"
    outputs = []
    for column in RAW_EVENT_COLUMNS:
        node = source.columns.get(column)
        if node is None:
            outputs.append(F.lit(None).cast("string").alias(column))
            continue
        outputs.append(as_text(mapper.value(node, f"{where}.columns.{column}")).alias(column))
    unread = None
    incremental_kind = None
    if source.incremental_by is not None:
        name = resolve(source.incremental_by, mapper.types, f"{where}.incremental_by", source.where)
        value = Value(F.col(quoted(name)), _kind(mapper.types[name]))
        if value.kind in ("variant", "boolean"):
            raise SourceDeclarationError(
                f"{where}.incremental_by: {name} is a {value.kind} column; use a growing id, a timestamp or a date."
            )
        outputs.append(comparable(value).alias(INCREMENTAL))
        incremental_kind = value.kind
        unread = mapper.frame.filter(F.col(quoted(name)).is_null())
    outputs.extend(F.col(quoted(k)) for k in keep)
    mapped = mapper.frame.select(*outputs)
    return MappedSource(
        source=source,
        frame=mapped,
        source_columns=source_types,
        described=source.where,
        incremental=source.incremental_by is not None,
        incremental_kind=incremental_kind,
        lookups=[(lk.table, lk.repeated_keys) for lk in mapper.lookups],
        unread_rows=unread,
    )


def numbered(frame: DataFrame, incremental: bool) -> DataFrame:
    """SOURCE_ROW: 1..n in a deterministic order (incremental value, then the contract columns)."""
    order = ([F.col(INCREMENTAL).asc_nulls_last()] if incremental else []) + [
        F.col(c).asc_nulls_last() for c in RAW_EVENT_COLUMNS
    ]
    return frame.with_column("SOURCE_ROW", F.row_number().over(Window.order_by(*order)))
