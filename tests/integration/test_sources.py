"""Declared sources end to end, on data this project did not design: the public CDNOW purchase
histories (tests/public_data.py), reshaped into the three shapes of docs/sources.md.

(a) a wine merchant's SALES fact table with an INVENTORY dimension in another schema (French
    names, accents, a `;`/cp1252 dimension file), put there with `kedro warehouse import`'s code;
    dry run, `kedro run`, then a `daily` after new sales that reads only those;
(b) JSON order events in a VARIANT column, one event per item line (FLATTEN), refunds by status;
(c) invoice lines in the public "Online Retail" shape: C-prefixed invoices and negative quantities
    are returns, AMOUNT = Quantity * UnitPrice, missing customers and a duplicated line.

Each shape's RECENCY_DAYS, FREQUENCY and MONETARY are checked against an independent pandas
computation of docs/features.md's definitions on the same source rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import make_project_copy, nested, warehouse_rows
from tests.public_data import cdnow_transactions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST_NAMES = ["Hélène", "Zoé", "François", "Chloé", "Jérôme", "Anaïs", "Noël", "Loïc", "Maëlle", "Cécile"]
WINES = [
    ("VIN-01", "Côtes-du-Rhône", "Rouge"),
    ("VIN-02", "Crémant de Loire", "Effervescent"),
    ("VIN-03", "Sancerre", "Blanc"),
    ("VIN-04", "Tavel", "Rosé"),
    ("VIN-05", "Mâcon-Villages", "Blanc"),
    ("VIN-06", "Château Léoville", "Rouge"),
    ("VIN-07", "Champagne Brut Réserve", "Effervescent"),
]
CHANNELS = ["Boutique", "En ligne", "Salon des vins"]


def _run(project: Path, pipelines: list[str] | None, **params: Any) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=nested(params)) as session:
        session.run(pipeline_names=pipelines)


def _customers(first: int, count: int) -> pd.DataFrame:
    """The CDNOW sample's transactions of `count` customers (by id), from the `first`-th."""
    history = cdnow_transactions("sample")
    ids = sorted(history["CUSTOMER_ID"].unique(), key=int)[first : first + count]
    return history[history["CUSTOMER_ID"].isin(ids)].sort_values(["DATE", "CUSTOMER_ID"], kind="stable")


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def rfm_expected(orders: pd.DataFrame, reference_ts: pd.Timestamp) -> pd.DataFrame:
    """docs/features.md on order rows (CUSTOMER_ID, ORDER_ID, ORDER_TS, GROSS, CANCELLED, RETURNED).

    FREQUENCY: orders not cancelled; MONETARY: gross - min(cancelled, gross) - returned summed;
    RECENCY_DAYS: day boundaries from the last order (cancelled or not) to the day after the
    latest valid event.
    """
    reference = (reference_ts.normalize() + timedelta(days=1)).date()
    rows = []
    for customer, group in orders.groupby("CUSTOMER_ID"):
        net = sum(
            (_money(g) - min(_money(c), _money(g)) - _money(r))
            for g, c, r in zip(group["GROSS"], group["CANCELLED"], group["RETURNED"], strict=True)
        )
        rows.append(
            {
                "CUSTOMER_ID": customer,
                "RECENCY_DAYS": (reference - group["ORDER_TS"].max().date()).days,
                "FREQUENCY": int((_money_series(group["CANCELLED"]) == 0).sum()),
                "MONETARY": float(net),
            }
        )
    return pd.DataFrame(rows).set_index("CUSTOMER_ID").sort_index()


def _money_series(values: pd.Series) -> pd.Series:
    return values.map(_money)


def features(project: Path, customers: set[str] | None = None) -> pd.DataFrame:
    rows = warehouse_rows(
        project,
        "SELECT CUSTOMER_ID, RECENCY_DAYS, FREQUENCY, MONETARY FROM SEGMENTATION.PUBLIC.CUSTOMER_FEATURES",
    )
    frame = pd.DataFrame(rows, columns=["CUSTOMER_ID", "RECENCY_DAYS", "FREQUENCY", "MONETARY"])
    if customers is not None:
        frame = frame[frame["CUSTOMER_ID"].isin(customers)]
    return frame.set_index("CUSTOMER_ID").sort_index()


def assert_rfm_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.index) == list(expected.index)
    assert actual["RECENCY_DAYS"].astype(int).tolist() == expected["RECENCY_DAYS"].tolist()
    assert actual["FREQUENCY"].astype(int).tolist() == expected["FREQUENCY"].tolist()
    difference = (actual["MONETARY"].astype(float) - expected["MONETARY"]).abs()
    assert difference.max() < 0.005, difference.sort_values().tail()


def _open(project: Path) -> Any:
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    warehouse.configure(WarehouseSettings.from_credentials({}, project / "data" / "warehouse"))
    return warehouse.get_session()


def _import(project: Path, path: Path, table: str, **options: Any) -> Any:
    """What `kedro warehouse import <path> --table <table>` does (same function)."""
    from customer_segmentation import warehouse
    from customer_segmentation.sources.files import FileOptions
    from customer_segmentation.sources.importer import import_file

    mode = options.pop("mode", "create")
    try:
        return import_file(
            _open(project), path, table, "SEGMENTATION", "PUBLIC", options=FileOptions(**options), mode=mode
        )
    finally:
        warehouse.close()


def _declare(project: Path, sources: dict[str, Any]) -> None:
    (project / "conf" / "local" / "sources.yml").write_text(yaml.safe_dump(sources, allow_unicode=True))


def _latest_json(project: Path, name: str) -> dict[str, Any]:
    folder = project / "data" / "08_reporting" / name
    return json.loads(sorted(folder.glob(f"*/{name}"))[-1].read_text())


# ---------------------------------------------------------------- (a) wine merchant


def wine_sales(first: int = 0, count: int = 150) -> pd.DataFrame:
    history = _customers(first, count).reset_index(drop=True)
    n = len(history)
    return pd.DataFrame(
        {
            "sale_id": range(1, n + 1),
            "sale_date": [
                (d + timedelta(hours=9 + i % 9, minutes=(7 * i) % 60)).strftime("%Y-%m-%d %H:%M:%S")
                for i, d in enumerate(history["DATE"])
            ],
            "customer_id": [f"{FIRST_NAMES[int(c) % len(FIRST_NAMES)]}-{c}" for c in history["CUSTOMER_ID"]],
            "product_id": [WINES[i % len(WINES)][0] for i in range(n)],
            "quantity_sold": history["QUANTITY"].to_numpy(),
            "total_price": [f"{a:.2f}" for a in history["AMOUNT"]],
            "sales_channel": [CHANNELS[(i * 7) % len(CHANNELS)] for i in range(n)],
        }
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
        "CATEGORY": {"lookup": {"table": "BATCH_DATA.INVENTORY", "key": "PRODUCT_ID", "column": "CATEGORIE"}},
        "QUANTITY": "QUANTITY_SOLD",
        "AMOUNT": "TOTAL_PRICE",
        "CHANNEL": "SALES_CHANNEL",
    },
}


def wine_expected(sales: pd.DataFrame) -> pd.DataFrame:
    ts = pd.to_datetime(sales["sale_date"])
    orders = pd.DataFrame(
        {
            "CUSTOMER_ID": sales["customer_id"],
            "ORDER_ID": sales["sale_id"],
            "ORDER_TS": ts,
            "GROSS": sales["total_price"],
            "CANCELLED": "0",
            "RETURNED": "0",
        }
    )
    return rfm_expected(orders, ts.max())


@pytest.fixture(scope="module")
def caves(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh clone whose warehouse holds the merchant's tables (most sales; the rest come later)."""
    from customer_segmentation.warehouse import embedded

    root = tmp_path_factory.mktemp("caves")
    project = make_project_copy(root / "project")
    sales = wine_sales()
    later = sales[sales["sale_date"] >= "1998-01-01"]
    first = sales[sales["sale_date"] < "1998-01-01"]
    first.to_csv(root / "sales.csv", index=False)
    later.to_csv(root / "sales_1998.csv", index=False)
    inventory = "produit_id;nom;categorie\n" + "".join(f"{p};{n};{c}\n" for p, n, c in WINES)
    (root / "inventaire.csv").write_bytes(inventory.replace("produit_id", "product_id").encode("cp1252"))
    imported = _import(project, root / "sales.csv", "BATCH_DATA.SALES")
    _import(project, root / "inventaire.csv", "BATCH_DATA.INVENTORY", encoding="cp1252")
    _declare(project, {"caves_sales": CAVES})
    try:
        yield {
            "project": project,
            "root": root,
            "sales": sales,
            "first": first,
            "later": later,
            "imported": imported,
        }
    finally:
        embedded.stop_server(project / "data" / "warehouse")


def test_import_creates_typed_tables_in_another_schema(caves: dict[str, Any]) -> None:
    imported = caves["imported"]
    assert imported.table == "SEGMENTATION.BATCH_DATA.SALES" and imported.rows == len(caves["first"])
    assert imported.columns == {
        "SALE_ID": "NUMBER(38,0)",
        "SALE_DATE": "TIMESTAMP_NTZ",
        "CUSTOMER_ID": "VARCHAR",
        "PRODUCT_ID": "VARCHAR",
        "QUANTITY_SOLD": "NUMBER(38,0)",
        "TOTAL_PRICE": "NUMBER(38,2)",
        "SALES_CHANNEL": "VARCHAR",
    }
    rows = warehouse_rows(
        caves["project"], "SELECT CATEGORIE FROM SEGMENTATION.BATCH_DATA.INVENTORY ORDER BY 1"
    )
    assert [r[0] for r in rows] == sorted(c for _, _, c in WINES)  # cp1252 'Rosé' read right
    from customer_segmentation.sources.importer import SourceImportError

    with pytest.raises(SourceImportError, match="already exists.*--replace.*--append"):
        _import(caves["project"], caves["root"] / "sales.csv", "BATCH_DATA.SALES")


def test_dry_run_explains_and_writes_nothing(caves: dict[str, Any]) -> None:
    project = caves["project"]
    _run(project, ["check_source"], source="caves_sales")
    report = _latest_json(project, "source_check.json")
    assert report["rows_read"] == report["rows_new"] == len(caves["first"]) and report["wrote"] == "nothing"
    assert report["would_reject"] == 0 and not report["would_stop"]
    assert {c["name"] for c in report["columns"]} >= {"SALE_ID", "QUANTITY_SOLD", "TOTAL_PRICE"}
    first = report["preview"][0]
    assert len(report["preview"]) == 10 and first["EVENT_TYPE"] == "ORDER_CREATED"
    assert first["CATEGORY"] in {c for _, _, c in WINES} and first["EVENT_ID"] == "1"
    tables = warehouse_rows(
        project, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'PUBLIC'"
    )
    assert tables == []  # nothing written: no RAW_DATA, no state, no demo

    broken = {**CAVES, "columns": {**CAVES["columns"], "QUANTITY": "QUANTITE_VENDUE"}}
    _declare(project, {"caves_sales": broken})
    try:
        with pytest.raises(Exception, match="has no column 'QUANTITE_VENDUE'. The closest is QUANTITY_SOLD"):
            _run(project, ["check_source"], source="caves_sales")
    finally:
        _declare(project, {"caves_sales": CAVES})


def test_kedro_run_segments_the_sales_with_rfm_equal_to_pandas(caves: dict[str, Any]) -> None:
    project = caves["project"]
    _run(project, None)  # `kedro run`: pulls the source, ingests, features, training, scores
    first = caves["first"]
    assert_rfm_equal(features(project), wine_expected(first))
    raw = warehouse_rows(
        project, "SELECT COUNT(*), MIN(SOURCE_FILE), MAX(SOURCE_FILE) FROM SEGMENTATION.PUBLIC.RAW_DATA"
    )
    assert raw == [(len(first), "source://caves_sales", "source://caves_sales")]  # no demo seeded
    segmented = warehouse_rows(
        project, "SELECT COUNT(*), COUNT(DISTINCT SEGMENT_LABEL) FROM SEGMENTATION.PUBLIC.PROCESSED_DATA"
    )
    assert segmented[0][0] == first["customer_id"].nunique() and segmented[0][1] >= 2
    categories = warehouse_rows(project, "SELECT DISTINCT CATEGORY FROM SEGMENTATION.PUBLIC.TRANSFORMED_DATA")
    assert {r[0] for r in categories} == {c for _, _, c in WINES}


def test_a_second_daily_reads_only_the_new_sales(caves: dict[str, Any]) -> None:
    project, later = caves["project"], caves["later"]
    _import(project, caves["root"] / "sales_1998.csv", "BATCH_DATA.SALES", mode="append")
    _run(project, ["daily"])
    (pull,) = _latest_json(project, "source_pull_report.json")["sources"]
    assert (pull["rows_read"], pull["rows_landed"]) == (len(later), len(later))
    assert pull["watermark_from"] == str(len(caves["first"])) and pull["watermark_to"] == str(
        len(caves["sales"])
    )
    state = warehouse_rows(
        project, "SELECT PULL_NO, ROWS_READ FROM SEGMENTATION.PUBLIC.SOURCE_STATE ORDER BY 1"
    )
    assert state == [(1, len(caves["first"])), (2, len(later))]
    assert_rfm_equal(features(project), wine_expected(caves["sales"]))
    _run(project, ["daily"])  # nothing new: nothing read, nothing doubled
    (pull,) = _latest_json(project, "source_pull_report.json")["sources"]
    assert (pull["rows_read"], pull["status"]) == (0, "up_to_date")
    assert warehouse_rows(project, "SELECT COUNT(*) FROM SEGMENTATION.PUBLIC.RAW_DATA") == [
        (len(caves["sales"]),)
    ]


def test_a_french_excel_export_loads_through_a_declared_file_mapping(caves: dict[str, Any]) -> None:
    """The shop's till export: ';', decimal commas, cp1252, its own column names."""
    project, root = caves["project"], caves["root"]
    lines = [
        "N° ticket;Date de vente;Client;Réf. produit;Qté;Montant TTC;Canal",
        "T-0001;1998-07-01 10:00:00;Hélène-9999;VIN-04;2;1 234,50;Boutique",
        "T-0002;1998-07-02 11:00:00;Zoé-9998;VIN-02;1;19,90;Boutique",
    ]
    (root / "caisse.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    _declare(
        project,
        {
            "caves_sales": CAVES,
            "caisse": {
                "file": str(root / "caisse.csv"),
                "encoding": "cp1252",
                "columns": {
                    "EVENT_ID": "N° ticket",
                    "EVENT_TYPE": {"constant": "ORDER_CREATED"},
                    "EVENT_TS": "Date de vente",
                    "CUSTOMER_ID": "Client",
                    "ORDER_ID": "N° ticket",
                    "PRODUCT_ID": "Réf. produit",
                    "CATEGORY": {
                        "lookup": {
                            "table": "BATCH_DATA.INVENTORY",
                            "key": "PRODUCT_ID",
                            "column": "CATEGORIE",
                            "on": "Réf. produit",
                        }
                    },
                    "QUANTITY": "Qté",
                    "AMOUNT": "Montant TTC",
                    "CHANNEL": "Canal",
                },
            },
        },
    )
    _run(project, ["load_events"], source="caisse")
    rows = warehouse_rows(
        project,
        "SELECT EVENT_ID, CUSTOMER_ID, CATEGORY, AMOUNT, SOURCE_ROW FROM SEGMENTATION.PUBLIC.RAW_DATA "
        "WHERE SOURCE_FILE LIKE '%caisse.csv' ORDER BY SOURCE_ROW",
    )
    assert rows == [
        ("T-0001", "Hélène-9999", "Rosé", "1234.50", 1),
        ("T-0002", "Zoé-9998", "Effervescent", "19.90", 2),
    ]
    _run(project, ["load_events"], source="caisse")  # the same content again: nothing added
    assert warehouse_rows(
        project, "SELECT COUNT(*) FROM SEGMENTATION.PUBLIC.RAW_DATA WHERE SOURCE_FILE LIKE '%caisse.csv'"
    ) == [(2,)]


# ---------------------------------------------------------------- (b) JSON events + (c) invoice lines


def json_documents(first: int = 150, count: int = 80) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(VARIANT documents, pandas orders): each CDNOW record one paid order, every 7th refunded later."""
    history = _customers(first, count).reset_index(drop=True)
    docs, orders = [], []
    for i, record in history.iterrows():
        cents, quantity = int(_money(record["AMOUNT"]) * 100), int(record["QUANTITY"])
        parts = [cents // quantity + (1 if k < cents % quantity else 0) for k in range(quantity)]
        items = [
            {"sku": f"CD-{(i * 3 + k) % 40:03d}", "qty": 1, "price": p / 100} for k, p in enumerate(parts)
        ]
        placed = record["DATE"] + timedelta(hours=8, minutes=i % 60)
        order_id = f"WEB-{i + 1:05d}"
        customer = {"id": f"cdnow-{record['CUSTOMER_ID']}", "name": FIRST_NAMES[i % len(FIRST_NAMES)]}
        docs.append(
            {
                "event": f"evt-{i + 1}-paid",
                "status": "paid",
                "order_id": order_id,
                "placed_at": placed,
                "customer": customer,
                "items": items,
            }
        )
        refunded = "0"
        if i % 7 == 3:
            docs.append(
                {
                    "event": f"evt-{i + 1}-refund",
                    "status": "refunded",
                    "order_id": order_id,
                    "placed_at": placed + timedelta(days=5),
                    "customer": customer,
                    "items": items[:1],
                }
            )
            refunded = f"{parts[0] / 100:.2f}"
        orders.append(
            {
                "CUSTOMER_ID": customer["id"],
                "ORDER_ID": order_id,
                "ORDER_TS": placed,
                "GROSS": f"{cents / 100:.2f}",
                "CANCELLED": "0",
                "RETURNED": refunded,
            }
        )
    frame = pd.DataFrame(
        {
            "EVENT_NO": range(1, len(docs) + 1),
            "RECEIVED_AT": [d["placed_at"].strftime("%Y-%m-%d %H:%M:%S") for d in docs],
            "DOC": [
                json.dumps({**d, "placed_at": d["placed_at"].isoformat()}, ensure_ascii=False) for d in docs
            ],
        }
    )
    return frame, pd.DataFrame(orders)


JSON_SOURCE = {
    "table": "RAW_JSON.ORDER_EVENTS",
    "incremental_by": "RECEIVED_AT",
    "flatten": "PAYLOAD:items",
    "columns": {
        "EVENT_ID": {"concat": ["PAYLOAD:event", "ITEM_INDEX"]},
        "EVENT_TYPE": {
            "map": {
                "column": "PAYLOAD:status",
                "values": {"paid": "ORDER_CREATED", "refunded": "ORDER_RETURNED"},
            }
        },
        "EVENT_TS": "PAYLOAD:placed_at",
        "CUSTOMER_ID": "PAYLOAD:customer.id",
        "ORDER_ID": "PAYLOAD:order_id",
        "PRODUCT_ID": "ITEM:sku",
        "QUANTITY": "ITEM:qty",
        "AMOUNT": {"multiply": ["ITEM:qty", "ITEM:price"]},
        "CHANNEL": {"constant": "web"},
    },
}


def invoice_lines(first: int = 230, count: int = 80) -> pd.DataFrame:
    """Online Retail's shape: one invoice per customer and day, one line per CDNOW record; returns as
    C + the invoice number, a discount line, orphan C-invoices, missing customers, a duplicated line."""
    history = _customers(first, count).reset_index(drop=True)
    lines, invoice_no = [], 536365
    for (day, customer), group in history.groupby(["DATE", "CUSTOMER_ID"], sort=True):
        invoice_no += 1
        stamp = day + timedelta(hours=8, minutes=invoice_no % 50)
        for k, (_, record) in enumerate(group.iterrows()):
            quantity = int(record["QUANTITY"])
            price = _money(Decimal(str(record["AMOUNT"])) / quantity)
            lines.append(
                [
                    str(invoice_no),
                    f"850{k}{invoice_no % 7}A",
                    f"CD lot {k}",
                    quantity,
                    stamp,
                    str(price),
                    customer,
                    "United Kingdom",
                ]
            )
        if invoice_no % 9 == 0:  # a later C invoice returning the first line
            first_line = lines[-len(group)]
            lines.append(
                [
                    "C" + first_line[0],
                    first_line[1],
                    first_line[2],
                    -first_line[3],
                    stamp + timedelta(days=3),
                    first_line[5],
                    customer,
                    "United Kingdom",
                ]
            )
        if invoice_no % 13 == 0:  # a discount line inside the invoice (negative quantity, no C)
            lines.append([str(invoice_no), "D", "Discount", -1, stamp, "0.50", customer, "United Kingdom"])
    frame = pd.DataFrame(
        lines,
        columns=[
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ],
    )
    orphans = frame.iloc[
        [5, 40, 80]
    ].copy()  # C invoices that name no invoice of this file (as in the public file)
    orphans["InvoiceNo"] = ["C999001", "C999002", "C999003"]
    orphans["Quantity"] = -orphans["Quantity"]
    no_customer = frame.iloc[[10, 11, 12]].copy()
    no_customer["InvoiceNo"] = ["580001", "580002", "580003"]
    no_customer["CustomerID"] = None
    frame = pd.concat(
        [frame, orphans, no_customer, frame.iloc[[20]]], ignore_index=True
    )  # + one exact duplicate
    frame["InvoiceDate"] = frame["InvoiceDate"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return frame


INVOICE_SOURCE = {
    "table": "RETAIL.INVOICE_LINES",
    "columns": {
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
        "PRODUCT_ID": "StockCode",
        "CATEGORY": "Country",
        "QUANTITY": {"abs": "Quantity"},
        "AMOUNT": {"abs": {"multiply": ["Quantity", "UnitPrice"]}},
        "CHANNEL": {"constant": "store"},
    },
}


def invoice_orders(lines: pd.DataFrame) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The lines as ingestion keeps them (customer present, first of a repeated EVENT_ID) and per order."""
    kept = lines[lines["CustomerID"].notna()].copy()
    kept["EVENT_ID"] = kept["InvoiceNo"] + "-" + kept["StockCode"]
    kept = kept.drop_duplicates("EVENT_ID", keep="first")
    kept["RETURN"] = kept["InvoiceNo"].str.startswith("C") | (kept["Quantity"] < 0)
    kept["ORDER_ID"] = kept["InvoiceNo"].str.removeprefix("C")
    kept["AMOUNT"] = [
        abs(_money(Decimal(q) * Decimal(p)))
        for q, p in zip(kept["Quantity"].astype(str), kept["UnitPrice"], strict=True)
    ]
    kept["TS"] = pd.to_datetime(kept["InvoiceDate"])
    created, returned = kept[~kept["RETURN"]], kept[kept["RETURN"]]
    orders = (
        created.groupby(["CustomerID", "ORDER_ID"])
        .agg(ORDER_TS=("TS", "min"), GROSS=("AMOUNT", "sum"))
        .reset_index()
    )
    refunds = returned.groupby(["CustomerID", "ORDER_ID"])["AMOUNT"].sum().rename("RETURNED").reset_index()
    orders = orders.merge(refunds, on=["CustomerID", "ORDER_ID"], how="left")  # orphan returns: no order
    orders["RETURNED"] = orders["RETURNED"].fillna(Decimal(0))
    orders["CANCELLED"] = Decimal(0)
    return orders.rename(columns={"CustomerID": "CUSTOMER_ID"}), kept["TS"].max()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One project with the JSON and the invoice-line sources, ingested and featured once."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded

    root = tmp_path_factory.mktemp("shapes")
    project = make_project_copy(root / "project")
    documents, json_orders = json_documents()
    documents.to_csv(root / "events.csv", index=False)
    _import(project, root / "events.csv", "RAW_JSON.STAGING")
    session = _open(project)
    try:  # what Snowpipe would have loaded: the documents as VARIANT
        session.sql(
            "CREATE TABLE SEGMENTATION.RAW_JSON.ORDER_EVENTS AS SELECT EVENT_NO, RECEIVED_AT, "
            "PARSE_JSON(DOC) AS PAYLOAD FROM SEGMENTATION.RAW_JSON.STAGING"
        ).collect()
    finally:
        warehouse.close()
    lines = invoice_lines()
    lines.to_csv(root / "invoices.csv", index=False)
    _import(project, root / "invoices.csv", "RETAIL.INVOICE_LINES")
    _declare(project, {"json_orders": JSON_SOURCE, "online_retail": INVOICE_SOURCE})
    _run(project, ["ingestion", "rfm_features"])
    try:
        yield {"project": project, "json_orders": json_orders, "documents": documents, "lines": lines}
    finally:
        embedded.stop_server(project / "data" / "warehouse")


def _reference(shapes: dict[str, Any]) -> pd.Timestamp:
    """The latest valid event of both sources (the features' reference date is the day after it)."""
    docs = [json.loads(d) for d in shapes["documents"]["DOC"]]
    _, latest_line = invoice_orders(shapes["lines"])
    return max(pd.Timestamp(max(d["placed_at"] for d in docs)), latest_line)


def test_json_order_events_rfm_equal_pandas(shapes: dict[str, Any]) -> None:
    orders = shapes["json_orders"]
    expected = rfm_expected(orders, _reference(shapes))
    assert_rfm_equal(features(shapes["project"], set(expected.index)), expected)
    items = warehouse_rows(
        shapes["project"],
        "SELECT COUNT(*), COUNT(DISTINCT ORDER_ID) FROM SEGMENTATION.PUBLIC.TRANSFORMED_DATA "
        "WHERE SOURCE_FILE = 'source://json_orders' AND EVENT_TYPE = 'ORDER_CREATED'",
    )
    docs = [json.loads(d) for d in shapes["documents"]["DOC"]]
    assert items == [(sum(len(d["items"]) for d in docs if d["status"] == "paid"), len(orders))]


def test_invoice_lines_rfm_equal_pandas_and_every_line_has_a_place(shapes: dict[str, Any]) -> None:
    lines = shapes["lines"]
    orders, _ = invoice_orders(lines)
    expected = rfm_expected(orders, _reference(shapes))
    assert_rfm_equal(features(shapes["project"], set(expected.index)), expected)
    project = shapes["project"]
    rejected = warehouse_rows(
        project,
        "SELECT REJECT_REASON, COUNT(*) FROM SEGMENTATION.PUBLIC.REJECTED_EVENTS "
        "WHERE SOURCE_FILE = 'source://online_retail' GROUP BY 1 ORDER BY 1",
    )
    assert rejected == [("duplicate_event", 1), ("missing_customer", 3)]
    landed = warehouse_rows(
        project,
        "SELECT COUNT(*) FROM SEGMENTATION.PUBLIC.RAW_DATA WHERE SOURCE_FILE = 'source://online_retail'",
    )
    accepted = warehouse_rows(
        project,
        "SELECT COUNT(*) FROM SEGMENTATION.PUBLIC.TRANSFORMED_DATA WHERE SOURCE_FILE = 'source://online_retail'",
    )
    assert landed == [(len(lines),)] and accepted[0][0] + 4 == len(lines)
