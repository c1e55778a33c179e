"""Packaging checks that run in the default test run: workflow schemas, Dockerfile lint, build context."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    """A console script installed next to this interpreter (the venv's bin), else on PATH."""
    candidate = BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` not found next to {sys.executable} nor on PATH: pip install -r requirements.txt"
        )
    return found


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("workflow", sorted(p.name for p in WORKFLOWS.glob("*.yml")))  # every workflow, new ones too
def test_workflow_matches_github_schema(workflow: str) -> None:
    path = WORKFLOWS / workflow
    assert path.is_file(), f"missing {path}"
    result = _run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scheduled_workflow_runs_daily_and_offers_every_pipeline() -> None:
    import yaml

    workflow = yaml.safe_load((WORKFLOWS / "scheduled-pipeline.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["schedule"] == [{"cron": "0 7 * * *"}]
    pipeline = triggers["workflow_dispatch"]["inputs"]["pipeline"]
    assert pipeline["type"] == "choice" and pipeline["default"] == "daily"
    assert set(pipeline["options"]) == {
        "daily",
        "__default__",
        "ingestion",
        "rfm_features",
        "training",
        "prediction",
        "store_results",
    }
    text = (WORKFLOWS / "scheduled-pipeline.yml").read_text()
    assert "inputs.pipeline || 'daily'" in text  # no input on the schedule: the morning job
    for name in ("ACCOUNT", "USER", "PASSWORD", "WAREHOUSE", "DATABASE", "SCHEMA", "ROLE"):
        assert f"SNOWFLAKE_{name}: ${{{{ secrets.SNOWFLAKE_{name} }}}}" in text
        assert f"-e SNOWFLAKE_{name}" in text


def test_ci_workflow_runs_the_ci_script() -> None:
    import yaml

    workflow = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]
    assert {"push", "pull_request"} <= set(triggers)
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(step.get("with", {}).get("python-version") == "3.11" for step in steps)
    assert any(step.get("run", "").strip() == "bash .ci/run" for step in steps)


def test_dockerfile_passes_hadolint() -> None:
    result = _run([_tool("hadolint"), "--no-color", "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_has_no_credential_and_runs_as_non_root() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "SNOWFLAKE_" in line], "credentials come only at run time"
    users = [line.split(None, 1)[1].strip() for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("FROM python:3.11-slim") for line in instructions)


def _dockerignore_patterns() -> list[str]:
    lines = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for these checks: the last matching pattern (or one of a parent) wins."""
    ignored = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").lstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        "conf/local",
        "conf/local/credentials.yml",
        "data",
        "data/warehouse/SEGMENTATION.db",
        "data/06_models/segmentation_model.joblib",
        ".git",
        ".git/config",
        ".venv",
        "venv",
        ".pytest_cache",
        "src/customer_segmentation/__pycache__",
        ".env",
    ],
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    assert _ignored(path, _dockerignore_patterns())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "requirements.txt",
        "README.md",
        ".telemetry",
        "conf/base/catalog.yml",
        "conf/logging.yml",
        "src/customer_segmentation/settings.py",
    ],
)
def test_dockerignore_keeps_the_project_in(path: str) -> None:
    assert (PROJECT_ROOT / path).exists()
    assert not _ignored(path, _dockerignore_patterns())
