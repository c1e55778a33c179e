"""The RFM score-to-segment map."""

from __future__ import annotations

import pytest

from customer_segmentation.rfm import RFM_SEGMENT_DESCRIPTIONS, RFM_SEGMENT_RULES, rfm_segment


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 5, "Champions"),
        (5, 4, "Champions"),
        (4, 5, "Loyal customers"),
        (3, 4, "Loyal customers"),
        (4, 2, "Potential loyalists"),
        (5, 3, "Potential loyalists"),
        (5, 1, "New customers"),
        (4, 1, "Promising"),
        (3, 3, "Need attention"),
        (3, 1, "About to sleep"),
        (3, 2, "About to sleep"),
        (2, 5, "Cannot lose them"),
        (1, 5, "Cannot lose them"),
        (1, 3, "At risk"),
        (2, 4, "At risk"),
        (2, 2, "Hibernating"),
        (1, 1, "Lost"),
    ],
)
def test_known_cells(r: int, f: int, segment: str) -> None:
    assert rfm_segment(r, f) == segment


def test_every_cell_has_exactly_one_segment() -> None:
    for r in range(1, 6):
        for f in range(1, 6):
            matches = [name for rs, fs, name in RFM_SEGMENT_RULES if r in rs and f in fs]
            assert len(matches) == 1, (r, f, matches)


def test_eleven_named_segments_all_described() -> None:
    names = {name for _, _, name in RFM_SEGMENT_RULES}
    assert len(names) == 11
    assert names == set(RFM_SEGMENT_DESCRIPTIONS)


def test_out_of_range_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="1-5"):
        rfm_segment(0, 3)


def test_sql_map_matches_python_map(warehouse_session) -> None:  # type: ignore[no-untyped-def]
    from snowflake.snowpark import functions as F

    from customer_segmentation.rfm import rfm_segment_column

    cells = " UNION ALL ".join(f"SELECT {r} AS R, {f} AS F" for r in range(1, 6) for f in range(1, 6))
    rows = (
        warehouse_session.sql(cells)
        .select("R", "F", rfm_segment_column(F.col("R"), F.col("F")).alias("S"))
        .collect()
    )
    assert len(rows) == 25
    for row in rows:
        assert row["S"] == rfm_segment(row["R"], row["F"])
