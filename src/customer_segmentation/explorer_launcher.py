"""``kedro explorer``: serve the segment explorer (a Streamlit app, ``explorer/``) for this project.

Streamlit runs as a child process (``python -m streamlit run explorer/streamlit_app.py``), headless,
bound to 127.0.0.1 unless ``--host`` says otherwise. Its environment carries the project's path
(``KEDRO_PROJECT_PATH``: the app's local session reads the project's configuration from there, as
``kedro run`` does) and the ``explorer`` parameters as SEGMENT_EXPLORER_* variables (the app
imports no Kedro). The address is printed once the app has really run its first page (Streamlit's
script health check), which also opens the warehouse session, so the first page view is fast.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import webbrowser
from pathlib import Path
from typing import Any

from pydantic import Field

from customer_segmentation.errors import SegmentationError
from customer_segmentation.parameters import Parameters

logger = logging.getLogger(__name__)

APP = Path(__file__).resolve().parent / "explorer" / "streamlit_app.py"
INSTALL_HINT = (
    "The segment explorer needs Streamlit, an optional extra of this project: "
    'pip install -e ".[explorer]"   (or: pip install -r requirements-explorer.txt)'
)
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


class ExplorerParams(Parameters):
    """The ``explorer`` parameters (conf/base/parameters_explorer.yml)."""

    section = "explorer"

    #: Largest filtered list the browser may download as CSV; beyond, the page points to the export.
    max_download_rows: int = Field(100_000, ge=1, le=5_000_000)
    #: Rows a page's table shows (sorted in the warehouse; the count always covers every match).
    table_rows: int = Field(500, ge=10, le=100_000)


class ExplorerStartError(SegmentationError):
    """The explorer could not start (missing extra, busy port, Streamlit exited)."""


def streamlit_available() -> bool:
    """Whether Streamlit (the explorer extra) is installed, without importing it."""
    try:
        return importlib.util.find_spec("streamlit") is not None
    except (ImportError, ValueError):
        return False


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (binding as Streamlit does would fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as Tornado binds: a socket in TIME_WAIT does not count, a listening one does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise ExplorerStartError(f"Cannot serve on {host}:{port}: {exc.strerror or exc}.") from None
    return False


def project_settings(project: Path, env: str | None) -> dict[str, str]:
    """The SEGMENT_EXPLORER_* variables from the project's parameters (explorer, pin, drift thresholds)."""
    from customer_segmentation.project_conf import read_conf

    (params,) = read_conf(project, env, "parameters")
    explorer = ExplorerParams.of(params.get("explorer") or {})
    pinned = (params.get("prediction") or {}).get("model_version")
    thresholds = (params.get("monitoring") or {}).get("drift_thresholds") or {}
    variables = {
        "SEGMENT_EXPLORER_MAX_DOWNLOAD_ROWS": str(explorer.max_download_rows),
        "SEGMENT_EXPLORER_TABLE_ROWS": str(explorer.table_rows),
        "SEGMENT_EXPLORER_PINNED_MODEL": "" if pinned is None else str(pinned),
    }
    for key, name in (
        ("psi_watch", "SEGMENT_EXPLORER_PSI_WATCH"),
        ("psi_retrain", "SEGMENT_EXPLORER_PSI_RETRAIN"),
    ):
        if thresholds.get(key) is not None:
            variables[name] = str(thresholds[key])
    return variables


def streamlit_command(host: str, port: int) -> list[str]:
    """``streamlit run`` of the app: headless (the launcher opens the browser), no telemetry, no reload."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--server.scriptHealthCheckEnabled",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        # the pages explain every expected problem; anything else must not show a traceback
        "--client.showErrorDetails",
        "none",
        "--global.developmentMode",
        "false",
    ]


def child_environment(project: Path, env: str | None, variables: dict[str, str]) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(variables)
    environment["KEDRO_PROJECT_PATH"] = str(project)
    if env:
        environment["KEDRO_ENV"] = env
    # the app's local session imports this very package, whatever the working directory
    package_root = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(
        [package_root, *filter(None, [environment.get("PYTHONPATH")])]
    )
    environment.setdefault("KEDRO_DISABLE_TELEMETRY", os.environ.get("KEDRO_DISABLE_TELEMETRY", ""))
    return environment


def _get(url: str, timeout: float) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")
    except (OSError, ValueError):
        return 0, ""


def wait_until_ready(base: str, process: subprocess.Popen, timeout: float = START_TIMEOUT) -> str:
    """Wait for the server, then for a complete run of the app's first page; "" when ready, else why not.

    ``/_stcore/health`` answers as soon as the server listens, even if the script fails
    (streamlit #3638); ``/_stcore/script-health-check`` runs the app's main script once.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"Streamlit exited with code {process.returncode} (its output is above)."
        if _get(f"{base}/_stcore/health", timeout=5)[0] == 200:
            break
        time.sleep(0.2)
    else:
        return f"Streamlit did not answer on {base} within {timeout:.0f} s."
    status, body = _get(f"{base}/_stcore/script-health-check", timeout=max(deadline - time.monotonic(), 5))
    if status != 200:
        return f"The app's first page did not run (HTTP {status}): {body.strip()[:500]}"
    return ""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def serve(
    project: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    open_browser: bool = True,
    env: str | None = None,
    echo: Any = print,
) -> int:
    """Run the explorer until interrupted; returns Streamlit's exit code (0 after Ctrl-C)."""
    if not streamlit_available():
        raise ExplorerStartError(INSTALL_HINT)
    variables = project_settings(project, env)
    if port_in_use(host, port):
        raise ExplorerStartError(
            f"Port {port} on {host} is already in use (another `kedro explorer`, Streamlit app or "
            f"program). Stop it, or choose another port: kedro explorer --port {port + 1}"
        )
    display_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{display_host}:{port}"
    echo(f"Starting the segment explorer for {project} on {url} ...")
    process = subprocess.Popen(
        streamlit_command(host, port), cwd=project, env=child_environment(project, env, variables)
    )

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        problem = wait_until_ready(url, process)
        if problem:
            _stop(process)
            raise ExplorerStartError(problem)
        echo(f"Segment explorer ready: {url}   (Ctrl-C to stop)")
        if open_browser:
            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(url)
        return process.wait()
    except KeyboardInterrupt:
        echo("Stopping the segment explorer ...")
        return 0
    finally:
        _stop(process)
        signal.signal(signal.SIGTERM, previous)
