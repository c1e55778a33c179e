"""NTILE from counts per bin (customer_segmentation.tiles) against the engine's own NTILE and pandas."""

from __future__ import annotations

import random
from typing import Any

import pandas as pd
import pytest

from customer_segmentation.errors import TransactionStateError
from customer_segmentation.tiles import Tile, TileKey, _end_values, _tile_of, add_tiles, bin_table_sql

TILES = (
    Tile("T_DESC", (TileKey("A", descending=True),)),
    Tile("T_TWO", (TileKey("A"), TileKey("B", coarse=True))),
    Tile("T_COARSE", (TileKey("B", coarse=True),)),
    Tile("T_EXACT", (TileKey("B"),)),
    Tile("T_DEC", (TileKey("B", descending=True, coarse=True),), tiles=10),
    Tile("T_THREE", (TileKey("A"), TileKey("B")), tiles=3),
)


SOURCE = "SELECT ID, A, B FROM KEYS_T"


def _window(tile: Tile) -> str:
    keys = ", ".join(
        f"{k.column} {'DESC NULLS LAST' if k.descending else 'ASC NULLS FIRST'}" for k in tile.keys
    )
    return f"NTILE({tile.tiles}) OVER (ORDER BY {keys}, ID ASC) AS {tile.name}"


def _load(session: Any, rows: list[tuple[str, int | None, float | None]]) -> None:
    session.sql("CREATE OR REPLACE TABLE KEYS_T (ID VARCHAR, A NUMBER(38,0), B DOUBLE)").collect()
    if rows:
        values = ", ".join(
            f"('{i}', {'NULL' if a is None else a}, {'NULL' if b is None else repr(b)})" for i, a, b in rows
        )
        session.sql(f"INSERT INTO KEYS_T VALUES {values}").collect()


def _both(session: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    ours = add_tiles(session, SOURCE, SOURCE, "ID", TILES).to_pandas()
    theirs = session.sql(f"SELECT ID, {', '.join(_window(t) for t in TILES)} FROM KEYS_T").to_pandas()
    return (
        ours.sort_values("ID", ignore_index=True),
        theirs.sort_values("ID", ignore_index=True),
    )


def _history(n: int, seed: int) -> list[tuple[str, int | None, float | None]]:
    """n rows with heavy ties, NULLs, negative, fractional and large values, ids not in key order."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a = None if rng.random() < 0.05 else rng.choice([0, 1, 1, 1, 2, 3, 7, -4, 10**12])
        b = rng.choice(
            [
                None,
                0.0,
                0.25,
                0.75,
                -0.5,
                -1.0,
                3.0,
                3.99,
                round(rng.uniform(-50, 500), 2),
                round(rng.uniform(0, 1), 2),
                1e15 + 0.5,
            ]
        )
        rows.append((f"C{rng.randrange(10**6):06d}-{i}", a, b))
    return rows


@pytest.mark.parametrize(
    ("n", "seed"), [(0, 0), (1, 1), (3, 2), (4, 3), (5, 4), (6, 5), (9, 6), (23, 7), (101, 8), (1999, 9)]
)
def test_equals_the_engines_ntile_on_ties_nulls_and_few_rows(
    warehouse_session: Any, n: int, seed: int
) -> None:
    _load(warehouse_session, _history(n, seed))
    ours, theirs = _both(warehouse_session)
    assert len(ours) == len(theirs) == n
    assert list(ours["ID"]) == list(theirs["ID"])
    for tile in TILES:
        assert list(ours[tile.name].astype(int)) == list(theirs[tile.name].astype(int)), tile.name


def test_one_bin_holds_everything_and_every_bin_straddles(warehouse_session: Any) -> None:
    """All keys equal (one bin: every row ranked by id), and all keys distinct (no ties at all)."""
    _load(warehouse_session, [(f"X{i:03d}", 1, 0.5) for i in range(37)])
    ours, theirs = _both(warehouse_session)
    for tile in TILES:
        assert list(ours[tile.name].astype(int)) == list(theirs[tile.name].astype(int)), tile.name
    _load(warehouse_session, [(f"Y{i:03d}", i, float(i)) for i in range(41)])
    ours, theirs = _both(warehouse_session)
    for tile in TILES:
        assert list(ours[tile.name].astype(int)) == list(theirs[tile.name].astype(int)), tile.name


def test_equals_pandas_quintiles(warehouse_session: Any) -> None:
    """An independent check: the first n % 5 tiles hold one row more (pandas, not the engine)."""
    rows = _history(503, 11)
    _load(warehouse_session, rows)
    ours = add_tiles(warehouse_session, SOURCE, SOURCE, "ID", TILES[:1]).to_pandas()
    frame = pd.DataFrame(rows, columns=["ID", "A", "B"])
    # A descending with NULLs last, then ID ascending
    frame["_NULL"] = frame["A"].isna()
    order = frame.sort_values(["_NULL", "A", "ID"], ascending=[True, False, True])
    n, size, extra = len(order), len(order) // 5, len(order) % 5
    expected = [t + 1 for t in range(5) for _ in range(size + (1 if t < extra else 0))]
    want = dict(zip(order["ID"], expected))
    got = dict(zip(ours["ID"], ours["T_DESC"].astype(int)))
    assert got == want and n == 503


@pytest.mark.parametrize("rows", [7, 10**9 + 3, 10**15 + 4, 2**53 - 1])
def test_tile_boundaries_are_exact_for_large_tables(warehouse_session: Any, rows: int) -> None:
    """The tile of positions around each boundary, computed in SQL, equals integer arithmetic."""
    size, extra = divmod(rows, 5)
    positions = sorted(
        {p for j in range(1, 5) for p in (j * size + min(j, extra) + d for d in (-1, 0, 1)) if 1 <= p <= rows}
        | {1, rows}
    )
    ends = _end_values(str(rows), 5)
    sql = ", ".join(f"{_tile_of(str(p), ends)} AS P{i}" for i, p in enumerate(positions))
    got = list(warehouse_session.sql(f"SELECT {sql}").collect()[0])

    def tile(p: int) -> int:
        return 1 + sum(1 for j in range(1, 5) if p > j * size + min(j, extra))

    assert [int(v) for v in got] == [tile(p) for p in positions]


def test_bad_specifications_are_refused(warehouse_session: Any) -> None:
    with pytest.raises(ValueError, match="at least one tile"):
        add_tiles(warehouse_session, SOURCE, SOURCE, "ID", [])
    with pytest.raises(ValueError, match="must differ"):
        add_tiles(
            warehouse_session, SOURCE, SOURCE, "ID", [Tile("X", (TileKey("A"),)), Tile("X", (TileKey("B"),))]
        )
    with pytest.raises(ValueError, match="order keys"):
        add_tiles(warehouse_session, SOURCE, SOURCE, "ID", [Tile("X", ())])
    with pytest.raises(ValueError):
        add_tiles(warehouse_session, SOURCE, SOURCE, "ID", [Tile("X", (TileKey("A; DROP TABLE T"),))])
    with pytest.raises(ValueError):
        bin_table_sql(SOURCE, TILES[0], "T; DROP TABLE KEYS_T")


def test_refused_inside_a_transaction(warehouse_session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The small tables are DDL, which would commit an open transaction on Snowflake."""
    from customer_segmentation import tiles

    monkeypatch.setattr(tiles, "transaction_may_be_open", lambda session: True)
    with pytest.raises(TransactionStateError, match="outside the transaction"):
        add_tiles(warehouse_session, SOURCE, SOURCE, "ID", TILES)
