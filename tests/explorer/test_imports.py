"""The explorer's folder is what Streamlit in Snowflake receives: it must not need the project or Kedro.

An AST scan of every file (only Streamlit, Snowpark, pandas, plotly, the standard library and the
app's own folder; the project only in the local session provider, only inside its function), the
deployment file against the folder, Streamlit-in-Snowflake limits (no page_title / page_icon, no
HTML or components), and a run of every page in a process that cannot import Kedro nor the project,
with nothing but an active Snowpark session, as in Streamlit in Snowflake.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

EXPLORER = Path(__file__).resolve().parents[2] / "src" / "customer_segmentation" / "explorer"
ALLOWED = {"streamlit", "pandas", "plotly", "segment_explorer", "__future__"}
PROVIDER = EXPLORER / "segment_explorer" / "local_session.py"


def _app_files() -> list[Path]:
    """Every Python file of the app (the package marker at the folder's root is not uploaded)."""
    return sorted(p for p in EXPLORER.rglob("*.py") if p != EXPLORER / "__init__.py")


def _imports(tree: ast.AST) -> list[tuple[str, ast.AST, bool]]:
    """(module, node, inside a function) of every import of a module tree."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level:  # relative: the app's own package
                found.extend(
                    (f"segment_explorer.{child.module or a.name}", child, in_function) for a in child.names
                )
            elif isinstance(child, ast.ImportFrom):
                found.append((str(child.module), child, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def test_pages_and_queries_import_only_streamlit_snowpark_pandas_plotly_and_their_folder() -> None:
    files = _app_files()
    assert {p.name for p in files} >= {
        "streamlit_app.py",
        "queries.py",
        "common.py",
        "overview.py",
        "customer.py",
    }
    for path in files:
        for module, node, in_function in _imports(ast.parse(path.read_text(), filename=str(path))):
            root = module.split(".")[0]
            where = f"{path.relative_to(EXPLORER)}:{node.lineno} imports {module}"
            if path == PROVIDER and root == "customer_segmentation":
                assert module == "customer_segmentation" and in_function, where  # lazily, the warehouse only
                continue
            if module.endswith("local_session"):
                assert path.name == "common.py" and in_function, where  # only when no session is active
                continue
            allowed = (
                root in ALLOWED or root in sys.stdlib_module_names or module.startswith("snowflake.snowpark")
            )
            assert allowed, where
            assert root not in {"kedro", "customer_segmentation", "numpy", "sklearn"}, where
    provider = PROVIDER.read_text()
    assert "from customer_segmentation import warehouse" in provider
    assert not ast.parse((EXPLORER / "__init__.py").read_text()).body[1:], "the package marker holds code"


def test_the_app_keeps_to_streamlit_in_snowflake_limits() -> None:
    for path in _app_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "set_page_config":
                keywords = {k.arg for k in node.keywords}
                assert not keywords & {"page_title", "page_icon", "menu_items"}, path
            if isinstance(node, ast.keyword) and node.arg == "unsafe_allow_html":
                raise AssertionError(
                    f"{path}: no raw HTML (scripts are blocked in Snowflake, and it is unsafe)"
                )
        assert "streamlit.components" not in path.read_text(), path
        assert "components.html" not in path.read_text(), path


def test_snowflake_yml_uploads_the_whole_app_and_names_its_warehouse() -> None:
    definition = yaml.safe_load((EXPLORER / "snowflake.yml").read_text())
    assert definition["definition_version"] == 2
    (entity,) = definition["entities"].values()
    assert entity["type"] == "streamlit" and entity["main_file"] == "streamlit_app.py"
    assert entity["query_warehouse"] == "<% ctx.env.SNOWFLAKE_WAREHOUSE %>"
    assert {"SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA", "SNOWFLAKE_WAREHOUSE"} <= set(definition["env"])
    uploaded = set(entity["artifacts"])
    assert uploaded == {str(p.relative_to(EXPLORER)) for p in _app_files()} | {"environment.yml"}
    assert "segment_explorer/local_session.py" in uploaded  # it explains itself if ever reached there


@pytest.mark.integration
def test_every_page_runs_with_only_an_active_snowpark_session(trained_project: Path, tmp_path: Path) -> None:
    """As in Streamlit in Snowflake: a session is active, Kedro and the project cannot be imported."""
    pytest.importorskip("streamlit")
    from customer_segmentation.warehouse import embedded

    folder = trained_project / "data" / "warehouse"  # read only
    handle = embedded.ensure_server(folder)
    params = embedded.server_connection_parameters(handle, "SEGMENTATION", "PUBLIC")
    script = tmp_path / "run_pages.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import importlib.abc, json, os, sys

            class Blocked(importlib.abc.MetaPathFinder):
                hits = []
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("kedro", "customer_segmentation"):
                        # an import statement goes through _find_and_load; a probe such as
                        # Streamlit's component scan (importlib.util.find_spec over installed
                        # distributions) does not: it is refused too, but it is not an import
                        frame, importing = sys._getframe(1), False
                        while frame is not None and not importing:
                            importing = frame.f_code.co_name == "_find_and_load"
                            frame = frame.f_back
                        if importing:
                            Blocked.hits.append(name)
                        raise ImportError(f"{{name}} is not available in Streamlit in Snowflake")
                    return None

            sys.meta_path.insert(0, Blocked())
            from snowflake.snowpark import Session
            from streamlit.testing.v1 import AppTest

            session = Session.builder.configs(json.loads(os.environ["CONNECTION"])).create()
            at = AppTest.from_file({str(EXPLORER / "streamlit_app.py")!r}, default_timeout=120)
            at.run()
            report = {{}}
            for page in {json.dumps(["overview", "segment", "movements", "customer", "model_health"])}:
                at.switch_page(f"app_pages/{{page}}.py").run()
                report[page] = {{
                    "exceptions": [str(e.value) for e in at.exception],
                    "errors": [str(e.value) for e in at.error],
                    "subheaders": [str(s.value) for s in at.subheader],
                }}
            report["blocked"] = Blocked.hits
            report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("kedro", "customer_segmentation"))
            print("REPORT" + json.dumps(report))
            session.close()
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "KEDRO_PROJECT"))}
    # the parameters as a client of another process would pass them: JSON (the retry policy, a
    # function, stays behind: that session retries with the connector's default policy)
    env["CONNECTION"] = json.dumps({k: v for k, v in params.items() if k != "backoff_policy"})
    env["PYTHONPATH"] = ""  # nothing of the project's source on the path
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report.pop("blocked") == [] and report.pop("modules") == []
    for page, seen in report.items():
        assert seen["exceptions"] == [] and seen["errors"] == [], (page, seen)
    assert "What sets it apart" in report["segment"]["subheaders"]
    assert "Model versions" in report["model_health"]["subheaders"]
