"""The embedded warehouse: memory cap, spill folder, checkpoint threshold (the shared server: tests/warehouse/test_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from customer_segmentation import warehouse
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.warehouse import embedded
from customer_segmentation.warehouse.config import WarehouseSettings, validate_memory_limit


def _assert_settings(limit: str, spill: str, checkpoint: str, folder: Path) -> None:
    """The settings ``configure_duckdb`` gives DuckDB (a 256MB cap), as DuckDB reports them."""
    assert limit.replace(" ", "").upper() in {"256.0MB", "244.1MIB", "256MB", "244.1MB"}
    assert spill == (folder / ".tmp").as_posix()
    # DuckDB's own default, kept on purpose (configure_duckdb): a larger one ran a 100M daily out of memory
    assert checkpoint.replace(" ", "") == "16.0MiB"


def test_memory_limit_and_spill_folder_are_applied(tmp_path: Path) -> None:
    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "wh", "256MB"))
    try:
        warehouse.get_session()
        status = embedded.server_status(tmp_path / "wh")  # the server's own DuckDB settings
    finally:
        warehouse.close()
        embedded.stop_server(tmp_path / "wh")
    assert status is not None
    _assert_settings(
        status["duckdb_memory_limit"],
        status["duckdb_temp_directory"],
        status["duckdb_checkpoint_threshold"],
        tmp_path / "wh",
    )


def test_the_in_process_emulator_has_the_servers_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fakesnow.server

    from customer_segmentation.warehouse.config import IN_PROCESS_ENV

    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    warehouse.configure(WarehouseSettings.from_credentials({}, tmp_path / "wh", "256MB"))
    try:
        warehouse.get_session()
        cur = fakesnow.server.shared_fs.duck_conn.cursor()
        limit, spill, checkpoint = cur.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
            "current_setting('checkpoint_threshold')"
        ).fetchone()
        cur.close()
    finally:
        warehouse.close()
    _assert_settings(limit, spill, checkpoint, tmp_path / "wh")


@pytest.mark.parametrize("value", ["lots", "768", "1GB; DROP TABLE RAW_DATA", "-5GB"])
def test_bad_memory_limit_is_refused(value: str) -> None:
    with pytest.raises(InvalidParametersError, match="memory_limit"):
        validate_memory_limit(value)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("768MB", "768MB"), ("2 GiB", "2 GiB")]
)
def test_good_memory_limit(value: str | None, expected: str | None) -> None:
    assert validate_memory_limit(value) == expected
