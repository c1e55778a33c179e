"""`kedro warehouse import`: typed columns from a file, refusals, and the command itself."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from customer_segmentation.sources.files import FileOptions, sanitized_names
from customer_segmentation.sources.importer import read_for_import


def test_types_are_inferred_and_names_made_plain(tmp_path: Path) -> None:
    path = tmp_path / "ventes.csv"
    path.write_text(
        "N° vente;Date de vente;Jour;Code postal;Montant TTC;Client;Qté\n"
        "1;2024-01-02 10:00:00;2024-01-02;01000;12,50;Hélène;2\n"
        "2;2024-01-03 11:30:00;2024-01-03;75001;1 234,00;;\n",
        encoding="utf-8",
    )
    frame, types, renamed = read_for_import(path, "csv", FileOptions())
    assert types == {
        "N_VENTE": "NUMBER(38,0)",
        "DATE_DE_VENTE": "TIMESTAMP_NTZ",
        "JOUR": "DATE",
        "CODE_POSTAL": "VARCHAR",  # leading zeros: an id, kept as text
        "MONTANT_TTC": "NUMBER(38,2)",  # decimal commas of a ';' file
        "CLIENT": "VARCHAR",
        "QTE": "NUMBER(38,0)",
    }
    assert renamed["N° vente"] == "N_VENTE" and "Client" not in renamed  # only case: not listed
    assert frame["DATE_DE_VENTE"].iloc[1] == datetime(2024, 1, 3, 11, 30)
    assert frame["JOUR"].iloc[0] == date(2024, 1, 2) and frame["MONTANT_TTC"].tolist() == [12.5, 1234.0]
    assert frame["QTE"].isna().tolist() == [False, True] and frame["CODE_POSTAL"].tolist() == [
        "01000",
        "75001",
    ]
    assert sanitized_names(["a b", "A_B", "1x", "", "é"]) == ["A_B", "A_B_2", "_1X", "COLUMN_4", "E"]


def test_the_command_creates_refuses_and_appends(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from customer_segmentation.cli import cli
    from customer_segmentation.warehouse import embedded
    from tests.conftest import make_project_copy, warehouse_rows

    project = make_project_copy(tmp_path / "project")
    path = tmp_path / "sales.csv"
    path.write_text("sale_id,total_price\n1,9.99\n2,10.00\n")
    runner, obj = CliRunner(), SimpleNamespace(project_path=project)
    try:
        created = runner.invoke(
            cli, ["warehouse", "import", str(path), "--table", "BATCH_DATA.SALES"], obj=obj
        )
        assert created.exit_code == 0, created.output
        assert "Created SEGMENTATION.BATCH_DATA.SALES" in created.output and "2 rows" in created.output
        again = runner.invoke(cli, ["warehouse", "import", str(path), "--table", "BATCH_DATA.SALES"], obj=obj)
        assert again.exit_code != 0 and "already exists" in again.output and "--append" in again.output
        more = runner.invoke(
            cli, ["warehouse", "import", str(path), "--table", "BATCH_DATA.SALES", "--append"], obj=obj
        )
        assert more.exit_code == 0, more.output
        hostile = runner.invoke(
            cli, ["warehouse", "import", str(path), "--table", "BATCH_DATA.SALES; DROP TABLE X"], obj=obj
        )
        assert hostile.exit_code != 0 and "not a plain table name" in hostile.output
    finally:
        embedded.stop_server(project / "data" / "warehouse")
    rows = warehouse_rows(
        project, "SELECT SALE_ID, TOTAL_PRICE FROM SEGMENTATION.BATCH_DATA.SALES ORDER BY 1"
    )
    assert [(int(a), str(b)) for a, b in rows] == [(1, "9.99"), (1, "9.99"), (2, "10.00"), (2, "10.00")]


@pytest.mark.parametrize("name", ["events.xls", "events.txt.bak"])
def test_unknown_formats_are_refused(tmp_path: Path, name: str) -> None:
    from customer_segmentation.sources.importer import SourceImportError, file_format

    with pytest.raises(SourceImportError, match="Cannot tell the format"):
        file_format(tmp_path / name, None)
