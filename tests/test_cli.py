"""The project CLI: `kedro run --pipeline X` without Kedro's deprecation warning; the run's pipeline label."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.hooks import hook_impl

from tests.conftest import make_project_copy, nested

pytestmark = pytest.mark.integration

KEDRO_WARNING = "Option '--pipeline' is deprecated"
TINY_DEMO = "--params=demo_data.n_customers=30"


def kedro(project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SEGMENTATION_EMBEDDED"))}
    env.update(KEDRO_DISABLE_TELEMETRY="true", COLUMNS="250")  # no line wrapping in the log
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_kedro_still_warns_on_the_option() -> None:
    """The filter names Kedro's exact message: if Kedro rewords it, this fails first."""
    from kedro.framework.cli.project import run

    assert KEDRO_WARNING in inspect.getsource(run.callback)


def test_pipeline_option_runs_without_the_deprecation_warning(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    try:
        result = kedro(project, "run", "--pipeline", "ingestion", TINY_DEMO)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Completed 11 out of 11 tasks" in output  # --pipeline still selects the pipeline
        # off a terminal, one plain line per record in the project's simple format (log_output.py)
        assert re.search(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - kedro\.runner\.[\w.]+ - INFO - Completed 11 out of 11 tasks$",
            result.stdout,
            re.M,
        ), result.stdout[-3000:]
        assert "deprecated" not in output.lower() and "DeprecationWarning" not in output
        # the filter is that one message only: other Kedro deprecations still show
        probe = (
            "import warnings, customer_segmentation.cli\n"
            "from kedro import KedroDeprecationWarning as W\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.warn(\"Option '--pipeline' is deprecated and will be removed\", W)\n"
            "    warnings.warn(\"Option '--async' is deprecated and will be removed\", W)\n"
            "print([str(w.message)[:14] for w in seen])\n"
        )
        shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert shown.stdout.strip().splitlines()[-1] == '["Option \'--asyn"]'
    finally:
        kedro(project, "warehouse", "stop")


class _Capture:
    """Reads, while the run holds them, the run metadata, the QUERY_TAG and the run lock's owner line."""

    def __init__(self, lock_file: Path) -> None:
        self.lock_file = lock_file
        self.seen: dict[str, Any] = {}

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any]) -> None:
        from customer_segmentation.warehouse import session

        if "run_metadata" in inputs and not self.seen:
            self.seen = {
                "pipeline": inputs["run_metadata"]["pipeline"],
                "query_tag": json.loads(session.query_tag_text(session._query_tag)),
                "lock": self.lock_file.read_text(),
            }


@pytest.mark.parametrize(
    ("names", "label"),
    [(["ingestion"], "ingestion"), (None, "__default__"), (["ingestion", "rfm_features"], None)],
)
def test_the_run_is_labelled_with_kedros_pipeline_names(
    tmp_path: Path, names: list[str] | None, label: str | None
) -> None:
    """Kedro 1.x passes run_params['pipeline_names'] (a list); the label was always '__default__' before."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded

    project = make_project_copy(tmp_path / "p")
    bootstrap_project(project)
    capture = _Capture(project / "data" / "warehouse" / embedded.RUN_LOCK_NAME)
    try:
        with KedroSession.create(
            project_path=project, runtime_params=nested({"demo_data.n_customers": 30})
        ) as s:
            s._hook_manager.register(capture)
            # the first node that reads run_metadata runs first: stop there (a failing node is cheap)
            s.run(pipeline_names=names, node_names=["pull_declared_sources"])
    finally:
        warehouse.close()
        embedded.stop_server(project / "data" / "warehouse", wait=False)
    expected = label or ",".join(names or [])
    assert capture.seen["pipeline"] == expected
    assert capture.seen["query_tag"]["pipeline"] == expected
    assert f"pipeline {expected}" in capture.seen["lock"]


def test_reading_the_conf_outside_a_run_shows_no_omegaconf_deprecation(tmp_path: Path) -> None:
    """`python -m customer_segmentation.warehouse ...`, a notebook's session, `kedro explorer`: Kedro 1.7
    calls an API omegaconf 2.4 deprecates (three UserWarnings per read), which users cannot act on."""
    project = Path(__file__).resolve().parents[1]
    code = (
        "import sys; from pathlib import Path\n"
        "from customer_segmentation.project_conf import read_conf\n"
        "parameters, credentials = read_conf(Path(sys.argv[1]), None, 'parameters', 'credentials')\n"
        "print(sorted(parameters)[:1], type(credentials).__name__)\n"
        "from customer_segmentation.warehouse.session import _settings_from_project\n"
        "print(_settings_from_project().target)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SEGMENTATION_EMBEDDED"))}
    env.update(KEDRO_DISABLE_TELEMETRY="true", KEDRO_PROJECT_PATH=str(project))
    done = subprocess.run(
        [sys.executable, "-W", "always::UserWarning", "-c", code, str(project)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "register_new_resolver" not in done.stderr, done.stderr
    assert "dict" in done.stdout and "embedded" in done.stdout.lower()
