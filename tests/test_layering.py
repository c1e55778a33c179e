"""The domain floor (issue 21): no pipeline imports another pipeline's nodes or pipeline module.

Procedures two pipelines share (fit a model, pick the active version, the customer summary) live
below the pipelines, beside ``model.py``; each pipeline's nodes are thin wrappers over them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import customer_segmentation

PIPELINES = Path(customer_segmentation.__file__).parent / "pipelines"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_pipeline_imports_another_pipelines_nodes() -> None:
    names = sorted(p.name for p in PIPELINES.iterdir() if (p / "pipeline.py").is_file())
    assert "training" in names and "customer_value" in names
    crossings = []
    for name in names:
        for path in sorted((PIPELINES / name).glob("*.py")):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[:2] != ["customer_segmentation", "pipelines"] or len(parts) < 4:
                    continue
                other, what = parts[2], parts[3]
                if other != name and what in ("nodes", "pipeline"):
                    crossings.append(f"{path.relative_to(PIPELINES)} imports {module}")
    assert crossings == []


def test_the_check_sees_a_crossing(tmp_path: Path) -> None:
    sample = tmp_path / "nodes.py"
    sample.write_text("from customer_segmentation.pipelines.prediction.nodes import select_model\n")
    assert "customer_segmentation.pipelines.prediction.nodes" in imported_modules(sample)
