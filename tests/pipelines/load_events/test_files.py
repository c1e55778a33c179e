"""Reading event files: formats, text conversion, refusals (no warehouse needed)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from customer_segmentation.errors import InvalidParametersError, MissingColumnsError
from customer_segmentation.pipelines.load_events.files import (
    EventFileError,
    detect_format,
    file_sha256,
    read_events,
    resolve_events_file,
    to_text,
)
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS
from tests.pipelines.ingestion.test_nodes import GOOD

ROWS = [
    dict(GOOD),  # the ingestion tests' well-formed order event
    {
        "EVENT_ID": "E2",
        "EVENT_TYPE": "PAGE_VIEW",
        "EVENT_TS": "2026-01-02 11:00:00",
        "CUSTOMER_ID": "C2",
        "ORDER_ID": "",
        "PRODUCT_ID": "",
        "CATEGORY": "",
        "QUANTITY": "",
        "AMOUNT": "",
        "CHANNEL": "app",
    },
]


def test_csv_values_are_text_and_empty_is_null(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    frame = pd.DataFrame(ROWS)
    frame["NA_TEXT"] = ["NA", "null"]  # an extra column: ignored
    frame.to_csv(path, index=False)
    events = read_events(path, "csv")
    assert list(events.columns) == list(RAW_EVENT_COLUMNS)
    assert events.iloc[0].tolist() == list(ROWS[0].values())
    assert events.loc[1, "AMOUNT"] is None and events.loc[1, "ORDER_ID"] is None
    assert events.attrs["ignored_columns"] == ["NA_TEXT"]


def test_csv_keeps_na_like_text(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    rows = [dict(ROWS[0], CUSTOMER_ID="NA", CATEGORY="null")]
    pd.DataFrame(rows).to_csv(path, index=False)
    events = read_events(path, "csv")
    assert events.loc[0, "CUSTOMER_ID"] == "NA" and events.loc[0, "CATEGORY"] == "null"


def test_header_is_case_and_space_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    frame = pd.DataFrame(ROWS)
    frame.columns = [f" {c.lower()} " for c in frame.columns]
    frame.to_csv(path, index=False)
    assert read_events(path, "csv")["EVENT_ID"].tolist() == ["E1", "E2"]


def test_json_lines_keep_numbers_as_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        dict(ROWS[0], QUANTITY=2, AMOUNT=12.50),
        {k: v for k, v in ROWS[1].items() if k not in ("AMOUNT", "QUANTITY")},  # absent keys are NULL
    ]
    text = json.dumps(lines[0]).replace("12.5", "12.50") + "\n\n" + json.dumps(lines[1]) + "\n"
    path.write_text(text)
    events = read_events(path, "jsonl")
    assert events.loc[0, "AMOUNT"] == "12.50" and events.loc[0, "QUANTITY"] == "2"
    assert events.loc[1, "AMOUNT"] is None and events.loc[1, "QUANTITY"] is None


def test_json_array_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(ROWS, handle)
    assert detect_format(path) == "jsonl"
    assert read_events(path, "jsonl")["EVENT_ID"].tolist() == ["E1", "E2"]


def test_parquet_typed_values_become_text(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    frame = pd.DataFrame(ROWS)
    frame["QUANTITY"] = pd.array([2, None], dtype="Int64")
    frame["AMOUNT"] = [12.5, float("nan")]
    frame["EVENT_TS"] = pd.to_datetime(
        ["2026-01-02 10:00:00", "2026-01-02 11:00:00.250000"], format="ISO8601"
    )
    frame.to_parquet(path, index=False)
    events = read_events(path, "parquet")
    assert events.loc[0, "QUANTITY"] == "2" and events.loc[1, "QUANTITY"] is None
    assert events.loc[0, "AMOUNT"] == "12.5" and events.loc[1, "AMOUNT"] is None
    assert events["EVENT_TS"].tolist() == ["2026-01-02 10:00:00", "2026-01-02 11:00:00.250000"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        ("", None),
        (" x ", " x "),
        (3, "3"),
        (3.0, "3"),
        (2.75, "2.75"),
        (float("nan"), None),
        (Decimal("10.50"), "10.50"),
        (True, "true"),
        (datetime(2026, 1, 2, 11, 0, tzinfo=UTC), "2026-01-02 11:00:00"),
        (pd.NaT, None),
        ({"a": 1}, '{"a": 1}'),
    ],
)
def test_to_text(value: object, text: str | None) -> None:
    assert to_text(value) == text


def test_missing_column_refuses_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    pd.DataFrame(ROWS).drop(columns=["AMOUNT", "CHANNEL"]).to_csv(path, index=False)
    with pytest.raises(MissingColumnsError) as excinfo:
        read_events(path, "csv")
    message = str(excinfo.value)
    assert "AMOUNT, CHANNEL" in message and "nothing was loaded" in message


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_delimiter_is_detected_from_the_header(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "events.csv"
    rows = [dict(ROWS[0], CATEGORY="Vins, rosés"), ROWS[1]]  # a quoted field holding ','
    pd.DataFrame(rows).to_csv(path, index=False, sep=delimiter)
    events = read_events(path, "csv")
    assert events["EVENT_ID"].tolist() == ["E1", "E2"] and events.loc[0, "CATEGORY"] == "Vins, rosés"


def test_a_wrong_delimiter_is_named_instead_of_a_missing_header(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False, sep=";")
    with pytest.raises(EventFileError) as excinfo:
        read_events(path, "csv", {"csv_delimiter": ","})
    message = str(excinfo.value)
    assert "not delimited by ','" in message and "looks delimited by ';'" in message
    assert "load_events.csv_delimiter=';'" in message and "missing required" not in message
    assert read_events(path, "csv", {"csv_delimiter": ";"})["EVENT_ID"].tolist() == ["E1", "E2"]


def _french_excel_export(path: Path) -> None:
    """What Excel (French locale) writes for "CSV (séparateur: point-virgule)": ';', decimal commas, cp1252."""
    header = ";".join(RAW_EVENT_COLUMNS)
    lines = [
        header,
        "E1;ORDER_CREATED;2026-01-02 10:00:00;Hélène;O1;P1;Vins rosés;2;1 234,50;web",
        "E2;ORDER_CREATED;2026-01-03 10:00:00;Zoé;O2;P2;Crémant;1;12,5;magasin",
        "E3;ORDER_RETURNED;2026-01-04 10:00:00;Zoé;O2;;;;12,5;magasin",
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))


def test_french_excel_csv_loads_with_its_encoding(tmp_path: Path) -> None:
    path = tmp_path / "ventes.csv"
    _french_excel_export(path)
    with pytest.raises(EventFileError) as excinfo:  # the default (UTF-8) cannot read it: say what to set
        read_events(path, "csv")
    assert "not valid utf-8-sig text (byte 0xe9" in str(excinfo.value)
    assert "--params=load_events.encoding=cp1252" in str(excinfo.value)
    events = read_events(path, "csv", {"encoding": "cp1252"})
    assert events["CUSTOMER_ID"].tolist() == ["Hélène", "Zoé", "Zoé"]
    assert events["AMOUNT"].tolist() == ["1234.50", "12.5", "12.5"]  # decimal commas (';' file)
    assert events["QUANTITY"].tolist() == ["2", "1", None]
    assert events["EVENT_ID"].tolist() == ["E1", "E2", "E3"]
    # an explicit '.' keeps the text as written (ingestion then rejects it as bad_amount, with the reason)
    assert read_events(path, "csv", {"encoding": "cp1252", "decimal": "."})["AMOUNT"][1] == "12,5"


def test_utf8_with_byte_order_mark_and_latin1(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    text = pd.DataFrame([dict(ROWS[0], CUSTOMER_ID="Élodie")]).to_csv(index=False)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_events(path, "csv").loc[0, "CUSTOMER_ID"] == "Élodie"
    path.write_bytes(text.encode("latin-1"))
    assert read_events(path, "csv", {"encoding": "latin-1"}).loc[0, "CUSTOMER_ID"] == "Élodie"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["12,50", "3", ""], ["12.50", "3", ""]),
        (["1.234,5", "-2,25"], ["1234.5", "-2.25"]),
        (["1234", "56"], None),  # no comma: ids and integers are never touched
        (["12,50", "abc"], None),  # not all numbers: text left as written
        (["2026-01-02", "1,5"], None),
    ],
)
def test_comma_decimals(values: list[str], expected: list[str] | None) -> None:
    from customer_segmentation.sources.files import comma_decimals

    assert comma_decimals(values) == expected


def test_excel_workbook(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl", reason="the excel extra (requirements-excel.txt) is not installed")
    path = tmp_path / "ventes.xlsx"
    frame = pd.DataFrame(ROWS)
    frame["AMOUNT"] = [12.5, None]
    frame["QUANTITY"] = [2, None]
    frame["EVENT_TS"] = [datetime(2026, 1, 2, 10), datetime(2026, 1, 2, 11)]
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"notes": ["not this one"]}).to_excel(writer, sheet_name="Notes", index=False)
        frame.to_excel(writer, sheet_name="Ventes", index=False)
    assert detect_format(path) == "xlsx"
    events = read_events(path, "xlsx", {"sheet": "Ventes"})
    assert events.loc[0, "AMOUNT"] == "12.5" and events.loc[0, "QUANTITY"] == "2"
    assert events.loc[0, "EVENT_TS"] == "2026-01-02 10:00:00" and events.loc[1, "AMOUNT"] is None
    with pytest.raises(EventFileError, match="no sheet 'Sales'"):
        read_events(path, "xlsx", {"sheet": "Sales"})


def test_duplicate_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    frame = pd.DataFrame(ROWS)
    frame["event_id"] = "x"
    frame.to_csv(path, index=False)
    with pytest.raises(EventFileError, match="column EVENT_ID twice"):
        read_events(path, "csv")


@pytest.mark.parametrize(
    ("name", "content"), [("bad.parquet", b"not parquet"), ("bad.jsonl", b'{"EVENT_ID": 1}\n{oops\n')]
)
def test_unreadable_file_names_the_accepted_formats(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(EventFileError) as excinfo:
        read_events(path, detect_format(path))
    assert "Could not read events file" in str(excinfo.value)
    assert "CSV (.csv" in str(excinfo.value) and "Parquet" in str(excinfo.value)


def test_unknown_extension_names_the_accepted_formats(tmp_path: Path) -> None:
    with pytest.raises(EventFileError) as excinfo:
        detect_format(tmp_path / "events.xls")
    assert "events.xls" in str(excinfo.value) and "JSON Lines" in str(excinfo.value)
    assert "Excel (.xlsx" in str(excinfo.value)
    assert detect_format(tmp_path / "events.xls", "CSV") == "csv"
    with pytest.raises(InvalidParametersError, match="load_events.format"):
        detect_format(tmp_path / "events.csv", "xml")


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_parameter_says_how_to_pass_it(value: object) -> None:
    with pytest.raises(InvalidParametersError) as excinfo:
        resolve_events_file(value)
    assert "--params=events_file=<path>" in str(excinfo.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="does not exist"):
        resolve_events_file(str(tmp_path / "nope.csv"))
    with pytest.raises(EventFileError, match="is not a file"):
        resolve_events_file(str(tmp_path))


def test_hash_is_the_content(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n1\n")
    c.write_text("x\n2\n")
    assert file_sha256(a) == file_sha256(b) != file_sha256(c)
