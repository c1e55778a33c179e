"""Shared fixtures: throw-away copies of the project, each with its own embedded warehouse."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
    "warehouse",
)
#: Small demo so that end-to-end tests stay fast.
SMALL_DEMO = {"demo_data.n_customers": 400}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
#: Marks every process this pytest process (one xdist worker) starts, servers included (they
#: inherit the environment): the session-end check finds the servers its tests started, and only
#: those, wherever their folder is. Assigned, not defaulted: each worker has its own.
TEST_RUN_ENV = "SEGMENTATION_TEST_RUN"
TEST_RUN = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
os.environ[TEST_RUN_ENV] = TEST_RUN


def make_project_copy(target: Path) -> Path:
    """A copy of the project's configuration with an empty data folder (no warehouse, no model)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT_ROOT / "conf" / "base", target / "conf" / "base")
    (target / "conf" / "local").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "conf" / "logging.yml", target / "conf" / "logging.yml")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", target / "pyproject.toml")
    (target / "src").mkdir(exist_ok=True)  # the package itself is installed (pip install -e .)
    for layer in DATA_LAYERS:
        (target / "data" / layer).mkdir(parents=True, exist_ok=True)
    return target


def nested(params: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as `kedro run --params=a.b=1` does (nested dicts merge)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            value = nested(value)
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = {**node[leaf], **value}
        else:
            node[leaf] = value
    return out


def run_pipeline(
    project_path: Path, pipeline: str | list[str] | None = None, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run a pipeline (or several, summed, as `kedro run --pipelines a,b`) of the project copy through
    KedroSession, as `kedro run` does."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    runtime = nested({**SMALL_DEMO, **(params or {})})
    with KedroSession.create(project_path=project_path, runtime_params=runtime) as session:
        names = [pipeline] if isinstance(pipeline, str) else pipeline
        return session.run(pipeline_names=names or None)


def warehouse_rows(project_path: Path, sql: str) -> list[tuple]:
    """Query a project copy's embedded warehouse files directly, with DuckDB (independent of the emulator).

    The shared embedded server holds the DuckDB files while it runs: it is stopped first (the
    next client starts it again).
    """
    import duckdb

    from customer_segmentation.warehouse import embedded

    embedded.stop_server(project_path / "data" / "warehouse")
    con = duckdb.connect(str(project_path / "data" / "warehouse" / "SEGMENTATION.db"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def embedded_server_pids(under: Path) -> list[int]:
    """Live embedded warehouse server processes whose folder is under ``under`` (from /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(a.endswith("embedded_server") for a in argv) and "--path" in argv:
            folder = argv[argv.index("--path") + 1]
            if Path(folder).is_relative_to(under):
                pids.append(int(proc.name))
    return pids


def wait_gone(pid: int, timeout: float = 30) -> None:
    """Wait until process ``pid`` has ended; fail after ``timeout`` seconds."""
    from customer_segmentation.warehouse import embedded

    deadline = time.monotonic() + timeout
    while embedded._pid_alive(pid):  # noqa: SLF001
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.05)


def _starting_servers(under: Path) -> list[int]:
    """Live servers under ``under`` that have not served yet (their log has no "Serving ... (pid N," line)."""
    from customer_segmentation.warehouse import embedded

    starting = []
    for pid in embedded_server_pids(under):
        try:
            argv = [
                a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ]
            log = (Path(argv[argv.index("--path") + 1]) / embedded.LOG_NAME).read_text(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if f"(pid {pid}," not in log:
            starting.append(pid)
    return starting


def servers_started_by_this_run() -> dict[int, str]:
    """Live embedded warehouse servers started by this pytest process or its children: pid -> folder."""
    marker = f"{TEST_RUN_ENV}={TEST_RUN}".encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")]
            if not any(a.endswith("embedded_server") for a in argv) or "--path" not in argv:
                continue
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if state != "Z" and marker in environ:
            found[int(proc.name)] = argv[argv.index("--path") + 1]
    return found


def stop_server_of(project_or_folder: Path) -> None:
    """Stop the embedded server of a project copy (or of a warehouse folder), if one runs."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded

    folder = project_or_folder / "data" / "warehouse"
    folder = folder if folder.is_dir() else project_or_folder
    if warehouse.is_open() and warehouse.current_settings().embedded_dir == folder:
        warehouse.close()
    embedded.stop_server(folder)


def stop_embedded_servers(under: Path, timeout: float = 60.0) -> list[int]:
    """Stop every embedded warehouse server of a folder tree (recorded or not); returns the pids found."""
    import signal
    import time

    from customer_segmentation.warehouse import embedded

    def stop_recorded() -> None:
        for record in under.rglob(embedded.RECORD_NAME):
            try:
                embedded.stop_server(record.parent, timeout=timeout)
            except Exception:  # noqa: BLE001 - a stuck server is killed below
                pass

    stop_recorded()
    # An unrecorded server is usually still starting (e.g. a background start of a run that failed
    # early): let it finish and stop it by request. A SIGTERM between its signal handlers and its
    # record made it wait for the start lock that its starting client holds until the record
    # appears: both waited until the SIGKILL below (a 60 s teardown, seen in a loaded full run).
    start_deadline = time.monotonic() + _START_GRACE_SECONDS
    while _starting_servers(under) and time.monotonic() < start_deadline:
        time.sleep(0.1)
        stop_recorded()
    found = embedded_server_pids(under)
    for pid in found:  # unrecorded (still starting, or a record deleted by a test): SIGTERM
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while embedded_server_pids(under) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in embedded_server_pids(under):
        os.kill(pid, signal.SIGKILL)
    return found


#: How long a server that is still starting (no record yet) may take to serve before it is signalled.
_START_GRACE_SECONDS = 15.0
#: How long a server that was asked to stop (``stop_server(wait=False)``) may take to exit.
_STOP_GRACE_SECONDS = 20.0


@pytest.fixture(scope="session", autouse=True)
def _no_embedded_server_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every fixture that starts a server stops it: at the end of the session none may be alive.

    Under pytest-xdist each worker has its own session: it checks the servers that it (or a
    process it started) launched, found by the environment marker they inherit. A server still
    alive here (idle, not stopping) fails the run, naming its folder; it is stopped either way.
    """
    yield
    from customer_segmentation.warehouse import embedded

    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    while (left := servers_started_by_this_run()) and time.monotonic() < deadline:
        if all(embedded.server_status(Path(folder)) is not None for folder in left.values()):
            break  # all of them serving, none stopping: left behind
        time.sleep(0.2)  # servers asked to stop without waiting are exiting
    stop_embedded_servers(tmp_path_factory.getbasetemp())
    for pid in left:
        if pid in servers_started_by_this_run():
            os.kill(pid, 15)
    if left:
        pytest.fail(
            f"{len(left)} embedded warehouse server(s) started by tests were still running at the end of "
            f"the session (a fixture did not stop its server at teardown): "
            + "; ".join(f"pid {pid} for {folder}" for pid, folder in sorted(left.items())),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _servers_of_the_test_folder_stopped(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's own folder (``tmp_path``) is gone after it: so is any server of a warehouse in it."""
    folder = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if folder is not None:
        stop_embedded_servers(folder)


def run_context_created_hook(project_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's ``after_context_created`` hook on a bare context (no parameters, no credentials).

    The embedded warehouse in-process: no server is started in the background.
    """
    from customer_segmentation import warehouse
    from customer_segmentation.hooks import WarehouseHooks

    class Loader(dict):
        def __missing__(self, key: str) -> Any:
            raise KeyError(key)

    monkeypatch.setenv("SEGMENTATION_EMBEDDED_IN_PROCESS", "1")
    context = type(
        "Context", (), {"config_loader": Loader(parameters={}, credentials={}), "project_path": project_path}
    )
    try:
        WarehouseHooks().after_context_created(context)  # before the pipelines and the run are loaded
    finally:
        warehouse.close()


def assert_server_calls_before_creating_anything(
    module: Any, name: str, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded server calls ``module.name`` first, before it creates or opens anything in ``folder``."""
    from customer_segmentation.warehouse import embedded_server

    class Called(Exception):
        pass

    def called() -> None:
        raise Called

    monkeypatch.setattr(module, name, called)
    with pytest.raises(Called):
        embedded_server.serve(folder, None, 60.0)
    assert not folder.exists()


@contextlib.contextmanager
def collect_records(logger_name: str, level: int = logging.INFO) -> Iterator[list[logging.LogRecord]]:
    """The records at ``level`` or above logged through ``logger_name`` itself inside the ``with`` block.

    Collected by a filter on that logger, not a handler: a run may configure logging again
    (``bootstrap_project`` -> Kedro's ``set_project_logging`` applies ``logging.config.dictConfig``
    when its logging configuration does not name the package yet, which depends on what the
    process did before), and dictConfig empties the handler list of every existing logger below a
    configured one ("customer_segmentation") and resets its level to NOTSET. A handler added
    before the run was then gone when the record was logged: a test failed or passed by which
    tests its xdist worker had run first. dictConfig leaves a logger's filters alone. (After such
    a reset the effective level is the configured one, INFO for the project's loggers.)
    """
    seen: list[logging.LogRecord] = []

    class Collector(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.levelno >= level:
                seen.append(record)
            return True  # the record goes on to the handlers as before

    collector = Collector()
    target = logging.getLogger(logger_name)
    level_before, disabled_before = target.level, target.disabled
    if target.getEffectiveLevel() > level:
        target.setLevel(level)  # records at ``level`` are created whatever the configured level
    target.disabled = False
    target.addFilter(collector)
    try:
        yield seen
    finally:
        target.removeFilter(collector)
        target.setLevel(level_before)
        target.disabled = disabled_before


@pytest.fixture(autouse=True)
def _no_real_snowflake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests use the embedded warehouse unless they set SNOWFLAKE_* themselves."""
    for name in list(os.environ):
        if name.startswith("SNOWFLAKE_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[Path]:
    project = make_project_copy(tmp_path / "project")
    yield project
    stop_server_of(project)


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a project with its warehouse files (the source's server is stopped first: DuckDB files).

    The copy has no server record, lock or server log: its first client starts its own server.
    """
    from customer_segmentation.warehouse import embedded

    embedded.stop_server(source / "data" / "warehouse")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("server.json", "*.lock", "server.log*"))
    return target


def shared_template(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A project built ONCE per test run, whichever xdist worker asks first (the others wait for it).

    It lives next to the workers' own temporary folders (under pytest-xdist, each worker's basetemp is
    ``<run>/popen-gwN``: ``<run>`` is this run's, shared by its workers), under an exclusive
    ``fcntl.flock``. ``build(path)`` makes the project at ``path``; its servers are stopped at once,
    so the template's files are quiet. Never use the template itself: :func:`copy_project` it.
    A failed build leaves no template, and the next test that asks builds it again (and fails the same way).
    """
    import fcntl

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-templates"
    root.mkdir(exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed (or the worker dies)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            try:
                build(folder / "project")
            finally:
                stop_embedded_servers(folder)
            done.write_text(f"built by {os.environ.get('PYTEST_XDIST_WORKER', 'the only worker')}\n")
    return folder / "project"


def _build_trained(path: Path) -> None:
    run_pipeline(make_project_copy(path))


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo after one full `kedro run` (SMALL_DEMO), built once per test run for every worker.

    Read-only and without a server: tests take a copy (``copy_project(trained_template, tmp_path /
    "p")``) instead of running the default pipeline on a fresh project copy themselves.
    """
    return shared_template(tmp_path_factory, "trained", _build_trained)


@pytest.fixture(scope="session")
def trained_project(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project copy on which the full default pipeline has run once (shared, treat as read-only)."""
    path = copy_project(trained_template, tmp_path_factory.mktemp("trained") / "project")
    yield path
    stop_server_of(path)


@pytest.fixture
def warehouse_session(tmp_path: Path) -> Iterator[Any]:
    """A Snowpark session on a fresh, empty embedded warehouse (no demo data).

    The emulator runs inside the test process (``embedded_in_process``: the same fakesnow, DuckDB and
    compat patches behind the same Snowpark connection, served by a thread), so ~190 tests do not
    each start and stop a server process (1.5-2.5 s apiece on 2 busy cores). Tests of the server
    itself start one explicitly; pipelines run through ``run_pipeline`` use the server as users do.
    """
    import dataclasses

    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    settings = WarehouseSettings.from_credentials({}, tmp_path / "warehouse")
    warehouse.configure(dataclasses.replace(settings, embedded_in_process=True))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()  # stops the in-process emulator too


@pytest.fixture
def query(warehouse_session: Any) -> Callable[[str], list[Any]]:
    """Run SQL on the test warehouse and return rows."""
    return lambda sql: warehouse_session.sql(sql).collect()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml's addopts): one worker more than the machine has cores.

    A worker spends part of its time waiting on processes it started (an embedded server's start,
    kedro-viz, Streamlit, Chromium, a killed run's restart): with one worker per core, a fifth of
    the CPU sat idle. Measured on a 2-core machine (2026-12-07, the whole suite, 816 tests, pytest's
    own time): two workers 751-788 s, three 665-779 s (fresh-clone `.ci/run` 14.2 min with two,
    13.1-14.3 with three): a few percent, as much as the machine moves between runs.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` or ``-n N`` still decide.
    """
    from xdist.plugin import pytest_xdist_auto_num_workers as xdist_count  # the cores, or the variable

    count = xdist_count(config)
    return count if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") else count + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest test files first, so that the parallel workers (`-n auto --dist loadfile`) do not end
    with one of them running a long file alone while the other is idle.

    A file's weight: its slow tests count 60, its integration tests 6, the rest 0.1 (a cheap proxy
    for duration: slow tests take 30-200 s, integration tests a few seconds to 30 s, unit tests well
    under one). Files keep their tests in order; equal weights keep the collection order.

    pytest-xdist hands the files out in this order only with ``--no-loadscope-reorder`` (in
    pyproject.toml's addopts): by default it re-sorts them by their number of tests, which put the
    3-test test_reruns.py (about 6 min in a loaded full run) among the last files.
    """
    weight: dict[str, float] = {}
    for item in items:
        path = str(item.path)
        cost = 60 if item.get_closest_marker("slow") else 6 if item.get_closest_marker("integration") else 0.1
        weight[path] = weight.get(path, 0) + cost
    order = {path: rank for rank, path in enumerate(sorted(weight, key=lambda p: -weight[p]))}
    items.sort(key=lambda item: order[str(item.path)])
