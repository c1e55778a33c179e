"""Mapping a source onto the contract in the warehouse: names checked, values bound, text formats fixed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from customer_segmentation.datasets.sources import SourceReader
from customer_segmentation.sources.declarations import SourceDeclarationError, parse_sources
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS

pytestmark = pytest.mark.integration

BASE = {
    "EVENT_ID": "SALE_ID",
    "EVENT_TYPE": {"constant": "ORDER_CREATED"},
    "EVENT_TS": "SALE_DATE",
    "CUSTOMER_ID": "CUSTOMER_ID",
    "ORDER_ID": "SALE_ID",
    "AMOUNT": "TOTAL_PRICE",
}


def _schema(session: Any) -> str:
    name = f"S_{uuid.uuid4().hex[:8].upper()}"
    session.sql(f"CREATE SCHEMA IF NOT EXISTS SEGMENTATION.{name}").collect()
    session.use_schema("SEGMENTATION.PUBLIC")  # CREATE SCHEMA makes the new schema current
    return name


def _sales(session: Any) -> str:
    schema = _schema(session)
    session.sql(
        f"CREATE TABLE SEGMENTATION.{schema}.SALES (SALE_ID NUMBER(38,0), SALE_DATE TIMESTAMP_NTZ, "
        "CUSTOMER_ID VARCHAR, PRODUCT_ID VARCHAR, QUANTITY_SOLD NUMBER(38,0), TOTAL_PRICE NUMBER(10,2), "
        "SALES_CHANNEL VARCHAR, DAY DATE, RATE DOUBLE)"
    ).collect()
    session.sql(
        f"INSERT INTO SEGMENTATION.{schema}.SALES VALUES "
        "(1, '2024-01-02 10:00:00', 'Hélène', 'P1', 2, 25.50, 'Boutique', '2024-01-02', 0.5), "
        "(2, '2024-01-02 10:00:00.25', 'Zoé', 'P2', -1, 12.00, 'En ligne', NULL, 1234567.125)"
    ).collect()
    return schema


def _reader(session: Any) -> SourceReader:
    return SourceReader(session, "SEGMENTATION", "PUBLIC", "RAW_DATA", "SOURCE_STATE")


def _map(session: Any, table: str, columns: dict, **extra: Any) -> list[dict]:
    source = parse_sources({"s": {"table": table, "columns": columns, **extra}})["s"]
    frame = _reader(session).mapped(source).frame.select(*RAW_EVENT_COLUMNS)
    return [r.as_dict() for r in frame.sort("EVENT_ID").collect()]


def test_typed_columns_become_text_with_fixed_formats(session: Any) -> None:
    schema = _sales(session)
    rows = _map(
        session,
        f"{schema}.SALES",
        {**BASE, "QUANTITY": "QUANTITY_SOLD", "CATEGORY": "DAY", "CHANNEL": "RATE"},
    )
    assert [r["EVENT_TS"] for r in rows] == ["2024-01-02 10:00:00", "2024-01-02 10:00:00.25"]
    assert [r["AMOUNT"] for r in rows] == ["25.50", "12.00"] and [r["EVENT_ID"] for r in rows] == ["1", "2"]
    assert [r["CATEGORY"] for r in rows] == ["2024-01-02", None]
    assert [r["CHANNEL"] for r in rows] == ["0.5", "1234567.125"]  # a DOUBLE without exponent
    assert rows[0]["PRODUCT_ID"] is None  # not mapped: empty


def test_a_missing_column_names_the_columns_and_the_closest(session: Any) -> None:
    schema = _sales(session)
    with pytest.raises(SourceDeclarationError) as excinfo:
        _map(session, f"{schema}.SALES", {**BASE, "QUANTITY": "QUANTITY_SOLDD"})
    message = str(excinfo.value)
    assert "sources.yml: s.columns.QUANTITY" in message and "has no column 'QUANTITY_SOLDD'" in message
    assert "The closest is QUANTITY_SOLD" in message and "SALE_ID, SALE_DATE, CUSTOMER_ID" in message
    with pytest.raises(SourceDeclarationError, match="does not exist, or the role may not read it"):
        _map(session, f"{schema}.NO_SUCH_TABLE", BASE)
    with pytest.raises(SourceDeclarationError, match="is a path, but SALE_DATE is a timestamp column"):
        _map(session, f"{schema}.SALES", {**BASE, "CHANNEL": "SALE_DATE:x"})
    with pytest.raises(SourceDeclarationError, match="cannot be used as a number"):
        _map(session, f"{schema}.SALES", {**BASE, "AMOUNT": {"multiply": ["SALE_DATE", "TOTAL_PRICE"]}})
    # names are matched ignoring case
    assert _map(session, f"{schema}.SALES", {**BASE, "EVENT_ID": "sale_id"})[0]["EVENT_ID"] == "1"


def test_hostile_values_and_odd_column_names_stay_data(session: Any) -> None:
    schema = _schema(session)
    odd = 'we"ird; col'
    session.sql(
        f"CREATE TABLE SEGMENTATION.{schema}.T (SALE_ID VARCHAR, SALE_DATE VARCHAR, CUSTOMER_ID VARCHAR, "
        f'TOTAL_PRICE VARCHAR, STATUS VARCHAR, "{odd.replace(chr(34), chr(34) * 2)}" VARCHAR)'
    ).collect()
    session.sql(
        f"INSERT INTO SEGMENTATION.{schema}.T VALUES ('1', '2024-01-01', 'C1', '1', 'pa''id', 'v1'), "
        "('2', '2024-01-01', 'C2', '1', 'x', 'v2')"
    ).collect()
    hostile = "x'); DROP TABLE RAW_DATA; -- \\ é"
    rows = _map(
        session,
        f"{schema}.T",
        {
            **BASE,
            "CATEGORY": {"constant": hostile},
            "EVENT_TYPE": {"map": {"column": "STATUS", "values": {"pa'id": "O'K;--"}, "default": "other"}},
            "CHANNEL": odd,
            "PRODUCT_ID": {"concat": ["SALE_ID", {"constant": hostile}], "separator": "'"},
        },
    )
    assert [r["CATEGORY"] for r in rows] == [hostile, hostile]
    assert [r["EVENT_TYPE"] for r in rows] == ["O'K;--", "other"]
    assert [r["CHANNEL"] for r in rows] == ["v1", "v2"]
    assert rows[0]["PRODUCT_ID"] == "1'" + hostile


def test_invoice_line_rules(session: Any) -> None:
    schema = _schema(session)
    session.sql(
        f"CREATE TABLE SEGMENTATION.{schema}.LINES (INVOICENO VARCHAR, STOCKCODE VARCHAR, QUANTITY NUMBER(38,0), "
        "INVOICEDATE TIMESTAMP_NTZ, UNITPRICE VARCHAR, CUSTOMERID VARCHAR)"
    ).collect()
    session.sql(
        f"INSERT INTO SEGMENTATION.{schema}.LINES VALUES "
        "('536365', '85123A', 6, '2010-12-01 08:26:00', '2.55', '17850'), "
        "('C536365', '85123A', -2, '2010-12-02 09:00:00', '2.55', '17850'), "
        "('536366', 'POST', -1, '2010-12-01 08:28:00', '18,5', '17850')"
    ).collect()
    rows = _map(
        session,
        f"{schema}.LINES",
        {
            "EVENT_ID": {"concat": ["InvoiceNo", "StockCode"]},
            "EVENT_TYPE": {
                "when": [
                    {
                        "if": {"any": [{"starts_with": ["InvoiceNo", "C"]}, {"negative": "Quantity"}]},
                        "then": {"constant": "ORDER_RETURNED"},
                    }
                ],
                "else": {"constant": "ORDER_CREATED"},
            },
            "EVENT_TS": "InvoiceDate",
            "CUSTOMER_ID": "CustomerID",
            "ORDER_ID": {"remove_prefix": ["InvoiceNo", "C"]},
            "QUANTITY": {"abs": "Quantity"},
            "AMOUNT": {"abs": {"multiply": ["Quantity", "UnitPrice"]}},
        },
    )
    assert [(r["EVENT_ID"], r["EVENT_TYPE"], r["ORDER_ID"], r["QUANTITY"], r["AMOUNT"]) for r in rows] == [
        ("536365-85123A", "ORDER_CREATED", "536365", "6", "15.30"),
        ("536366-POST", "ORDER_RETURNED", "536366", "1", None),  # '18,5' is not a number: AMOUNT empty
        ("C536365-85123A", "ORDER_RETURNED", "536365", "2", "5.10"),
    ]


def test_lookups_never_multiply_rows_and_paths_reach_into_json(session: Any) -> None:
    schema = _sales(session)
    session.sql(
        f"CREATE TABLE SEGMENTATION.{schema}.INVENTORY (PRODUCT_ID VARCHAR, CATEGORY VARCHAR)"
    ).collect()
    session.sql(
        f"INSERT INTO SEGMENTATION.{schema}.INVENTORY VALUES ('P1', 'Vin rosé'), ('P1', 'Blanc'), ('P3', 'Crémant')"
    ).collect()
    lookup = {"lookup": {"table": f"{schema}.INVENTORY", "key": "PRODUCT_ID", "column": "CATEGORY"}}
    source = parse_sources({"s": {"table": f"{schema}.SALES", "columns": {**BASE, "CATEGORY": lookup}}})["s"]
    mapped = _reader(session).mapped(source)
    rows = sorted((r["EVENT_ID"], r["CATEGORY"]) for r in mapped.frame.collect())
    assert rows == [("1", "Blanc"), ("2", None)]  # P1 repeats: one row, the lowest value; P2 unknown
    assert [(t, r.count()) for t, r in mapped.lookups] == [(f"{schema}.INVENTORY", 1)]

    session.sql(f"CREATE TABLE SEGMENTATION.{schema}.ORDERS (ID NUMBER(38,0), PAYLOAD VARIANT)").collect()
    session.sql(
        f"INSERT INTO SEGMENTATION.{schema}.ORDERS SELECT 7, PARSE_JSON(?)",
        params=[
            '{"customer": {"id": "c-1"}, "ts": "2024-05-01 10:00:00", "items": [{"sku": "a", "price": 2.5}, {"sku": "b", "price": 3}]}'
        ],
    ).collect()
    rows = _map(
        session,
        f"{schema}.ORDERS",
        {
            "EVENT_ID": {"concat": ["ID", "ITEM_INDEX"]},
            "EVENT_TYPE": {"constant": "ORDER_CREATED"},
            "EVENT_TS": "PAYLOAD:ts",
            "CUSTOMER_ID": "PAYLOAD:customer.id",
            "ORDER_ID": "ID",
            "PRODUCT_ID": "ITEM:sku",
            "AMOUNT": "ITEM:price",
        },
        flatten="PAYLOAD:items",
    )
    assert [(r["EVENT_ID"], r["CUSTOMER_ID"], r["PRODUCT_ID"], r["AMOUNT"], r["EVENT_TS"]) for r in rows] == [
        ("7-0", "c-1", "a", "2.5", "2024-05-01 10:00:00"),
        ("7-1", "c-1", "b", "3", "2024-05-01 10:00:00"),
    ]
