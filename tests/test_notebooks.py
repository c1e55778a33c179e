"""The notebooks run headless (nbclient, python3 kernel) on a project copy where the pipeline has run.

Each notebook finds the project through SEGMENTATION_PROJECT_PATH (here: the throw-away copy) and
closes the warehouse session in its last cell (checked through that cell's output, and through the
copy's shared embedded server: no session left open).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from customer_segmentation.warehouse import embedded
from tests.browser import find_chromium, requires_chromium
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

NOTEBOOKS = PROJECT_ROOT / "notebooks"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT = 600  # per cell


@pytest.fixture(scope="module", autouse=True)
def _repository_server_stopped_afterwards() -> Iterator[None]:
    """A kernel first loads the repository's project (cwd notebooks/), whose configuration starts the
    repository's own server in the background: stop it afterwards unless it ran before.

    Module-scoped (not at the session's end): under pytest-xdist another worker's session may end
    while a notebook still runs, and only this module starts that server.
    """
    repository = PROJECT_ROOT / "data" / "warehouse"
    was_running = embedded.server_status(repository) is not None
    yield
    if not was_running:
        embedded.stop_server(repository)


def _execute(name: str, project: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env.update(SEGMENTATION_PROJECT_PATH=str(project), KEDRO_DISABLE_TELEMETRY="true")
    # kernel "python3": jupyter_client starts its `python -m ipykernel_launcher` with sys.executable,
    # i.e. this venv's interpreter, where the project is installed
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # cwd notebooks/, as in Jupyter
    )
    client.execute(env=env)
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif "data" in output:
                texts.append(str(output["data"].get("text/plain", "")))
    return ANSI.sub("", "\n".join(texts))


def _mimetypes(notebook: nbformat.NotebookNode) -> set[str]:
    return {
        mime
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        for mime in output.get("data", {})
    }


def _open_sessions(project: Path) -> int:
    """Sessions open on the copy's shared embedded server (0 when none runs)."""
    status = embedded.server_status(project / "data" / "warehouse")
    return 0 if status is None else int(status["open_sessions"])


@pytest.mark.parametrize("name", ["01_segments_exploration.ipynb", "02_rfm_features_explained.ipynb"])
def test_notebook_is_committed_without_large_outputs(name: str) -> None:
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert path.stat().st_size < 200_000
    source = "\n".join(c.source for c in notebook.cells)
    assert "SEGMENTATION_PROJECT_PATH" in source and "%load_ext kedro.ipython" in source
    assert notebook.cells[-1].source.strip().startswith("from customer_segmentation import warehouse")
    assert "warehouse.close()" in notebook.cells[-1].source


def test_segments_exploration_notebook(trained_project: Path) -> None:
    sessions = _open_sessions(trained_project)  # (a client killed earlier may have left one)
    notebook = _execute("01_segments_exploration.ipynb", trained_project)
    text = _outputs(notebook)
    assert str(trained_project.resolve()) in text  # it used the copy, not the repository
    assert "a Snowpark DataFrame: True" in text
    assert "model version" in text and "silhouette" in text
    assert "application/vnd.plotly.v1+json" in _mimetypes(notebook)
    assert "warehouse session open: False" in _outputs(notebook)  # the last cell closed it
    assert _open_sessions(trained_project) == sessions  # the notebook's session logged out


def test_rfm_features_notebook(trained_project: Path) -> None:
    sessions = _open_sessions(trained_project)  # (a client killed earlier may have left one)
    notebook = _execute("02_rfm_features_explained.ipynb", trained_project)
    text = _outputs(notebook)
    assert "customers with at least one order" in text
    assert "Champions" in text and "RFM" in text
    assert "application/vnd.plotly.v1+json" in _mimetypes(notebook)
    assert "warehouse session open: False" in _outputs(notebook)
    assert _open_sessions(trained_project) == sessions  # the notebook's session logged out


@pytest.mark.browser
@requires_chromium
def test_render_readme_images(trained_project: Path, tmp_path: Path) -> None:
    """tools/render_readme_images.py turns the saved plotly charts into PNGs, offline."""
    import importlib.util

    find_chromium()  # fails when $CHROMIUM names a missing browser
    script = PROJECT_ROOT / "tools" / "render_readme_images.py"
    spec = importlib.util.spec_from_file_location("render_readme_images", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.render(trained_project, tmp_path)
    assert sorted(p.name for p in written) == ["elbow.png", "segments.png"]
    for png in written:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1100, 600)
        assert len(data) > 10_000  # a blank page is ~3 kB
