"""``kedro explorer``'s start-up checks: the extra, the port, the parameters, what Streamlit is given.

In-process through the project's click group (the real ``kedro explorer`` process, its readiness and
its address are exercised by the browser tests).
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from customer_segmentation import explorer_launcher
from customer_segmentation.cli import cli


def _invoke(project: Path, *args: str) -> object:
    return CliRunner().invoke(
        cli, ["explorer", "--no-browser", *args], obj=SimpleNamespace(project_path=project)
    )


def test_without_the_extra_it_says_how_to_install_it(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "streamlit", None)  # as if the extra were not installed
    assert not explorer_launcher.streamlit_available()
    result = _invoke(project_copy)
    assert result.exit_code == 1
    assert 'pip install -e ".[explorer]"' in result.output and "Traceback" not in result.output


def test_a_busy_port_is_refused_with_a_clear_message(project_copy: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert explorer_launcher.port_in_use("127.0.0.1", port)
        result = _invoke(project_copy, "--port", str(port))
    assert result.exit_code == 1, result.output
    assert f"Port {port} on 127.0.0.1 is already in use" in result.output
    assert f"kedro explorer --port {port + 1}" in result.output
    assert not explorer_launcher.port_in_use("127.0.0.1", port)  # closed again


def test_bad_parameters_are_named(project_copy: Path) -> None:
    (project_copy / "conf" / "local" / "parameters_explorer.yml").write_text(
        "explorer:\n  max_download_rows: 0\n  tabel_rows: 10\n"
    )
    result = _invoke(project_copy)
    assert result.exit_code == 1
    assert "explorer.max_download_rows: Input should be greater than or equal to 1 (got 0)" in result.output
    assert "explorer.tabel_rows" in result.output and "Traceback" not in result.output


def test_streamlit_is_started_headless_with_the_projects_settings(project_copy: Path) -> None:
    (project_copy / "conf" / "local" / "parameters.yml").write_text(
        "explorer:\n  table_rows: 250\nprediction:\n  model_version: 2026-01-01T00.00.00.000Z\n"
    )
    variables = explorer_launcher.project_settings(project_copy, None)
    assert variables["SEGMENT_EXPLORER_TABLE_ROWS"] == "250"
    assert variables["SEGMENT_EXPLORER_MAX_DOWNLOAD_ROWS"] == "100000"
    assert variables["SEGMENT_EXPLORER_PINNED_MODEL"] == "2026-01-01T00.00.00.000Z"
    assert variables["SEGMENT_EXPLORER_PSI_RETRAIN"] == "0.25"
    env = explorer_launcher.child_environment(project_copy, "prod", variables)
    assert env["KEDRO_PROJECT_PATH"] == str(project_copy) and env["KEDRO_ENV"] == "prod"
    assert env["PYTHONPATH"].split(":")[0] == str(Path(explorer_launcher.__file__).resolve().parents[1])
    command = explorer_launcher.streamlit_command("127.0.0.1", 8765)
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(explorer_launcher.APP)
    assert options["--server.port"] == "8765" and options["--server.address"] == "127.0.0.1"
    assert options["--server.headless"] == "true" and options["--browser.gatherUsageStats"] == "false"
    assert options["--server.scriptHealthCheckEnabled"] == "true"  # readiness is a real run of the app
    assert options["--client.showErrorDetails"] == "none"  # never a traceback in the browser
    assert explorer_launcher.APP.is_file()
