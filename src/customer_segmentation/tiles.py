"""NTILE over a whole table without sorting the whole table (the RFM quintile scores).

``NTILE(n) OVER (ORDER BY k1, ..., ID)`` puts the row at position ``p`` (1-based, in that order)
of ``N`` rows into tile ``1 + #{j in 1..n-1 : p > E_j}``, with the tile ends
``E_j = j * q + min(j, r)``, ``q = N div n``, ``r = N mod n``: the first ``r`` tiles hold one row
more (the SQL standard's NTILE, which Snowflake and DuckDB implement). Its window has no
PARTITION BY, so the engine sorts every row in one ordered stream: the three RFM windows were
0.66 s of the 1.7 s CUSTOMER_FEATURES statement at 1M customers in the embedded warehouse, and on
Snowflake a window without PARTITION BY runs in a single ordered partition however large the
warehouse.

Here a row's position comes from counts instead. The rows are grouped into *bins*, a function of
the order keys that never decreases along the order (the leading keys' values, NULLs in a bin of
their own; optionally FLOOR of the last binned key): a row's position is the number of rows in
earlier bins plus its rank in its own bin. A bin whose first and last positions fall in the same
tile gives all its rows that tile; only the rows of the bins that straddle a tile end (at most
n - 1 bins per tile) are ranked, by ROW_NUMBER within their bin. So, before the statement that
needs the tiles:

1. one small table per tile: its bins (a few thousand rows), each with the rows before it, the
   tile ends and its first and last tile (a GROUP BY of the keys and a window over the bins);
2. one small table of the straddling rows and their tiles (4% of the rows at 1M customers);

and the statement itself joins the rows with those small tables (hash tables of thousands of
rows, not of all customers): the same tile for every row. At 1M customers under the embedded
warehouse's 640MB memory cap, after a `daily` aggregates update: the two preparing statements
and the CUSTOMER_FEATURES statement 1.36-1.42 s, against 1.75-1.76 s for that statement with the
NTILE windows (docs/benchmarks.md, session 36).

Preconditions (the callers': one row per customer): the id column is unique and not NULL, the
order keys are numeric, and the keys' query gives, for every id of the rows being tiled, the
same key values. Every integer is computed exactly (counts, products, comparisons; the one
division, ``(N - r) / n``, has no remainder: a Snowflake NUMBER division rounds at its scale), so
a large N does not move a tile end.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from snowflake.snowpark import Window
from snowflake.snowpark import functions as F

from customer_segmentation.errors import TransactionStateError
from customer_segmentation.warehouse.identifiers import validate_identifier
from customer_segmentation.warehouse.tables import transaction_may_be_open


@dataclass(frozen=True)
class TileKey:
    """One key of a tile's ORDER BY: ascending with NULLs first, or descending with NULLs last.

    (Snowpark's ``Column.asc()`` / ``Column.desc()``.) ``coarse``: bin this key by its FLOOR
    (a DOUBLE with nearly as many values as rows); the keys after a coarse key are not binned.
    """

    column: str
    descending: bool = False
    coarse: bool = False

    def __post_init__(self) -> None:
        validate_identifier(self.column, "column name")


@dataclass(frozen=True)
class Tile:
    """An output column ``name``: NTILE(``tiles``) ordered by ``keys`` and then the id ascending."""

    name: str
    keys: tuple[TileKey, ...]
    tiles: int = 5

    def __post_init__(self) -> None:
        validate_identifier(self.name, "column name")
        if not self.keys or self.tiles < 1:
            raise ValueError(f"tile {self.name} needs order keys and at least one tile")


def ntile_window(tile: Tile, id_column: str) -> Any:
    """The tile as Snowpark's ``NTILE(n) OVER (ORDER BY <keys>, id)``: what the tables below equal
    (``Column.asc()`` puts NULLs first, ``desc()`` last), for plans they cannot serve."""
    keys = [F.col(k.column).desc() if k.descending else F.col(k.column).asc() for k in tile.keys]
    return F.ntile(F.lit(tile.tiles)).over(Window.order_by(*keys, F.col(id_column).asc()))


def _check(id_column: str, tiles: Sequence[Tile]) -> str:
    if not tiles:
        raise ValueError("tiles: at least one tile is needed")
    names = [t.name for t in tiles]
    if len(set(names)) != len(names):
        raise ValueError(f"tile names must differ, got {names}")
    return validate_identifier(id_column, "column name")


def _bins(tile: Tile, row: str = "") -> list[tuple[str, str, str]]:
    """(alias, expression over ``row``'s columns, ORDER BY term) of each bin column of ``tile``.

    Every key up to and including the first coarse one, each as a NULL flag (NULLs first when
    ascending, last when descending: a bin of their own) and its value (or FLOOR of it).
    """
    out = []
    for i, key in enumerate(tile.keys):
        column = f"{row}{key.column}"
        flag = f"IFF({column} IS NULL, {1 if key.descending else 0}, {0 if key.descending else 1})"
        out.append((f"_N{i}", flag, f"_N{i} ASC"))
        value = f"COALESCE({f'FLOOR({column})' if key.coarse else column}, 0)"
        out.append((f"_V{i}", value, f"_V{i} {'DESC' if key.descending else 'ASC'}"))
        if key.coarse:
            break
    return out


def _tile_of(position: str, ends: Sequence[str]) -> str:
    """SQL: 1 + the number of tile ends before ``position`` (its tile)."""
    passed = [f"IFF({position} > {end}, 1, 0)" for end in ends]
    return f"CAST(1 + {' + '.join(passed) if passed else '0'} AS BIGINT)"


def _ends(tile: Tile) -> list[str]:
    return [f"_E{j}" for j in range(1, tile.tiles)]


def _end_values(rows: str, tiles: int) -> list[str]:
    """SQL: the last position of tiles 1..n-1 among ``rows`` rows, ``j * q + LEAST(j, r)``, exact."""
    remainder = f"MOD({rows}, {tiles})"
    size = f"(({rows} - {remainder}) / {tiles})"
    return [f"{j} * {size} + LEAST({j}, {remainder})" for j in range(1, tiles)]


def bin_table_sql(keys_sql: str, tile: Tile, table: str) -> str:
    """CREATE TEMPORARY TABLE ``table``: one row per bin of ``tile`` over the rows of ``keys_sql``.

    Columns: the bin columns, _BEFORE (rows in earlier bins), the tile ends _E1.._E(n-1), and
    _FIRST / _LAST, the tiles of the bin's first and last rows.
    """
    table = validate_identifier(table, "table name")
    bins = _bins(tile)
    aliases = ", ".join(alias for alias, _, _ in bins)
    order = ", ".join(term for _, _, term in bins)
    n, ends = tile.tiles, _ends(tile)
    grouped = (
        f"SELECT {aliases}, COUNT(*) AS _C FROM (SELECT {', '.join(f'{e} AS {a}' for a, e, _ in bins)} "
        f"FROM ({keys_sql})) GROUP BY {aliases}"
    )
    placed = (
        f"SELECT {aliases}, _C, SUM(_C) OVER (ORDER BY {order} ROWS BETWEEN UNBOUNDED "
        f"PRECEDING AND CURRENT ROW) - _C AS _BEFORE, SUM(_C) OVER () AS _ROWS FROM ({grouped})"
    )
    ended = (
        "SELECT *"
        + "".join(f", {value} AS {end}" for value, end in zip(_end_values("_ROWS", n), ends))
        + f" FROM ({placed})"
    )
    return (
        f"CREATE TEMPORARY TABLE {table} AS SELECT {aliases}, _BEFORE"
        + "".join(f", {end}" for end in ends)
        + f", {_tile_of('_BEFORE + 1', ends)} AS _FIRST, {_tile_of('_BEFORE + _C', ends)} AS _LAST FROM ({ended})"
    )


def straddle_table_sql(
    keys_sql: str, id_column: str, tiles: Sequence[Tile], bin_tables: Sequence[str], table: str
) -> str:
    """CREATE TEMPORARY TABLE ``table`` (_TILE_NAME, _TILE_ID, _TILE): the tile of each row of a bin
    that straddles a tile end, ranked in its bin by the full order (keys, then the id ascending)."""
    id_col = _check(id_column, tiles)
    table = validate_identifier(table, "table name")
    parts = []
    for tile, bin_table in zip(tiles, bin_tables, strict=True):
        bin_table = validate_identifier(bin_table, "table name")
        bins = _bins(tile, "_K.")
        on = " AND ".join(f"_B.{alias} = {expr}" for alias, expr, _ in bins)
        aliases = ", ".join(f"_B.{alias}" for alias, _, _ in bins)
        order = ", ".join(
            f"_K.{k.column} {'DESC NULLS LAST' if k.descending else 'ASC NULLS FIRST'}" for k in tile.keys
        )
        rank = f"ROW_NUMBER() OVER (PARTITION BY {aliases} ORDER BY {order}, _K.{id_col} ASC)"
        position = f"_B._BEFORE + {rank}"
        parts.append(
            f"SELECT '{tile.name}' AS _TILE_NAME, _K.{id_col} AS _TILE_ID, "
            f"{_tile_of(position, [f'_B.{e}' for e in _ends(tile)])} AS _TILE "
            f"FROM ({keys_sql}) _K JOIN {bin_table} _B ON {on} AND _B._FIRST <> _B._LAST"
        )
    return f"CREATE TEMPORARY TABLE {table} AS {' UNION ALL '.join(parts)}"


def tiled_sql(
    rows_sql: str, id_column: str, tiles: Sequence[Tile], bin_tables: Sequence[str], straddle_table: str
) -> str:
    """The rows of ``rows_sql`` (every column) and one column per tile, from the tables above."""
    id_col = _check(id_column, tiles)
    straddle_table = validate_identifier(straddle_table, "table name")
    select, joins = ["_F.*"], []
    for i, (tile, bin_table) in enumerate(zip(tiles, bin_tables, strict=True)):
        bin_table = validate_identifier(bin_table, "table name")
        on = " AND ".join(f"_B{i}.{alias} = {expr}" for alias, expr, _ in _bins(tile, "_F."))
        joins.append(
            f"LEFT JOIN {bin_table} _B{i} ON {on} LEFT JOIN {straddle_table} _S{i} "
            f"ON _S{i}._TILE_NAME = '{tile.name}' AND _S{i}._TILE_ID = _F.{id_col}"
        )
        select.append(f"COALESCE(_S{i}._TILE, _B{i}._FIRST) AS {tile.name}")
    return f"SELECT {', '.join(select)} FROM ({rows_sql}) _F {' '.join(joins)}"


def add_tiles(session: Any, rows_sql: str, keys_sql: str, id_column: str, tiles: Sequence[Tile]) -> Any:
    """A DataFrame of ``rows_sql`` with one column per tile, each equal to its NTILE.

    Creates the small tables first (temporary, of this session: DDL, so not inside a
    transaction); the result reads them, so it must be used in this session. ``keys_sql`` gives
    ``id_column`` and the tiles' key columns for the same rows (a narrow query, read once per tile
    and once more); ``rows_sql`` holds the same columns with the same values.
    """
    _check(id_column, tiles)
    if transaction_may_be_open(session):
        raise TransactionStateError(
            "add_tiles creates temporary tables (DDL), which would commit the transaction open on "
            "this session on Snowflake: call it outside the transaction. Nothing was written."
        )
    suffix = uuid.uuid4().hex[:12].upper()
    bin_tables = [f"TILE_BINS_{tile.name}_{suffix}" for tile in tiles]
    straddle = f"TILE_STRADDLE_{suffix}"
    for tile, table in zip(tiles, bin_tables, strict=True):
        session.sql(bin_table_sql(keys_sql, tile, table)).collect()
    session.sql(straddle_table_sql(keys_sql, id_column, tiles, bin_tables, straddle)).collect()
    return session.sql(tiled_sql(rows_sql, id_column, tiles, bin_tables, straddle))
