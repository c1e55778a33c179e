"""Declared sources are data: every name and expression checked before any SQL exists (no warehouse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_segmentation.sources.declarations import (
    Column,
    Constant,
    Lookup,
    MapValues,
    SourceDeclarationError,
    When,
    parse_column,
    parse_sources,
    pick_source,
)

CAVES = {
    "table": "BATCH_DATA.SALES",
    "incremental_by": "SALE_ID",
    "columns": {
        "EVENT_ID": "SALE_ID",
        "EVENT_TYPE": {"constant": "ORDER_CREATED"},
        "EVENT_TS": "SALE_DATE",
        "CUSTOMER_ID": "CUSTOMER_ID",
        "ORDER_ID": "SALE_ID",
        "PRODUCT_ID": "PRODUCT_ID",
        "CATEGORY": {"lookup": {"table": "BATCH_DATA.INVENTORY", "key": "PRODUCT_ID", "column": "CATEGORY"}},
        "QUANTITY": "QUANTITY_SOLD",
        "AMOUNT": "TOTAL_PRICE",
        "CHANNEL": "SALES_CHANNEL",
    },
}


def _with(**columns: object) -> dict:
    return {"s": {**CAVES, "columns": {**CAVES["columns"], **columns}}}


def test_the_issue_example_parses() -> None:
    source = parse_sources({"caves_sales": CAVES})["caves_sales"]
    assert source.table is not None and source.table.text == "BATCH_DATA.SALES"
    assert source.table.qualified("SEGMENTATION", "PUBLIC") == "SEGMENTATION.BATCH_DATA.SALES"
    assert source.incremental_by == "SALE_ID" and source.source_file == "source://caves_sales"
    assert source.columns["EVENT_TYPE"] == Constant("ORDER_CREATED")
    lookup = source.columns["CATEGORY"]
    assert isinstance(lookup, Lookup) and lookup.on == Column("PRODUCT_ID") and lookup.column == "CATEGORY"


def test_maps_conditions_and_paths_parse() -> None:
    source = parse_sources(
        _with(
            EVENT_TYPE={
                "when": [
                    {
                        "if": {"any": [{"starts_with": ["InvoiceNo", "C"]}, {"negative": "Quantity"}]},
                        "then": {"constant": "ORDER_RETURNED"},
                    },
                ],
                "else": {"map": {"column": "STATUS", "values": {"paid": "ORDER_CREATED"}, "default": None}},
            },
            CUSTOMER_ID="PAYLOAD:customer.id",
            PRODUCT_ID="ITEM:lines[0].sku",
        )
    )["s"]
    when = source.columns["EVENT_TYPE"]
    assert isinstance(when, When) and isinstance(when.otherwise, MapValues)
    assert when.otherwise.default == Constant(None)
    assert source.columns["CUSTOMER_ID"] == Column("PAYLOAD", ("customer", "id"))
    assert source.columns["PRODUCT_ID"] == Column("ITEM", ("lines", 0, "sku"))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            {"sql": "DROP TABLE RAW_DATA"},
            "not a mapping expression: expected exactly one of column, constant, map",
        ),
        ({"constant": "x", "column": "Y"}, "expected exactly one of"),
        ({"lookpu": {"table": "T", "key": "K", "column": "C"}}, "Did you mean lookup?"),
        (["SALE_ID"], "is not a mapping expression"),
        (42, "is not a mapping expression"),
        ({"multiply": ["Q"]}, "expected a list of expressions"),
        ({"map": {"column": "S", "values": {"paid": "A", " PAID ": "B"}}}, "are the same value"),
        ({"when": [{"if": {"like": ["X", "%"]}, "then": "Y"}]}, "is not a condition"),
        (
            {"lookup": {"table": "T; DROP TABLE RAW_DATA", "key": "K", "column": "C"}},
            "is not a plain table name",
        ),
        ("PAYLOAD:customer'].id", "not a plain JSON key"),
        ("PAYLOAD:", "not a valid VARIANT path"),
        ({"constant": {"nested": 1}}, "expected a text or number"),
    ],
)
def test_anything_but_the_known_expressions_is_refused(spec: object, fragment: str) -> None:
    with pytest.raises(SourceDeclarationError) as excinfo:
        parse_sources(_with(AMOUNT=spec))
    assert fragment in str(excinfo.value)
    assert "sources.yml: s.columns.AMOUNT" in str(excinfo.value)


@pytest.mark.parametrize(
    "table",
    [
        'BATCH_DATA.SALES"; DROP TABLE RAW_DATA; --',
        "BATCH_DATA.SALES; DELETE FROM RAW_DATA",
        "A.B.C.D",
        "sales table",
        "",
    ],
)
def test_hostile_or_malformed_table_names_are_refused(table: str) -> None:
    with pytest.raises(SourceDeclarationError, match="table"):
        parse_sources({"s": {**CAVES, "table": table}})


def test_structure_errors_say_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(SourceDeclarationError, match="Did you mean EVENT_TS"):
        parse_sources(_with(EVENT_TSS="SALE_DATE"))
    with pytest.raises(SourceDeclarationError, match="map ORDER_ID, AMOUNT too"):
        parse_sources(
            {
                "s": {
                    **CAVES,
                    "columns": {k: v for k, v in CAVES["columns"].items() if k not in ("ORDER_ID", "AMOUNT")},
                }
            }
        )
    with pytest.raises(SourceDeclarationError, match="exactly one of `table:`"):
        parse_sources({"s": {**CAVES, "file": "x.csv"}})
    with pytest.raises(SourceDeclarationError, match="Did you mean incremental_by"):
        parse_sources({"s": {**CAVES, "incremental": "SALE_ID"}})
    with pytest.raises(SourceDeclarationError, match="only apply to `file:` sources"):
        parse_sources({"s": {**CAVES, "encoding": "cp1252"}})
    with pytest.raises(SourceDeclarationError, match="Source name"):
        parse_sources({"bad name; --": CAVES})
    file_source = {k: v for k, v in CAVES.items() if k not in ("table", "incremental_by")}
    source = parse_sources({"f": {**file_source, "file": "data/ventes.csv", "encoding": "cp1252"}}, tmp_path)[
        "f"
    ]
    assert source.file == tmp_path / "data" / "ventes.csv" and source.file_options == {"encoding": "cp1252"}
    with pytest.raises(SourceDeclarationError, match="a file is loaded once per content"):
        parse_sources({"f": {**file_source, "file": "x.csv", "incremental_by": "SALE_ID"}})


def test_picking_a_source_names_the_declared_ones() -> None:
    sources = parse_sources({"caves_sales": CAVES})
    assert pick_source(sources, "caves_sales").name == "caves_sales"
    with pytest.raises(SourceDeclarationError, match="Did you mean caves_sales.*Declared: caves_sales"):
        pick_source(sources, "cave_sales")
    with pytest.raises(SourceDeclarationError, match="--params=source=<name>"):
        pick_source(sources, None)
    assert parse_sources(None) == {} and parse_sources({}) == {}


def test_a_path_keeps_indices_and_keys() -> None:
    assert parse_column("P:items[2].price", "w") == Column("P", ("items", 2, "price"))
    assert parse_column("P:items[2].price", "w").text == "P:items[2].price"
