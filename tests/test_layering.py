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


def test_every_module_of_the_domain_floor_imports_first() -> None:
    """A notebook's first import may be any module below the pipelines (``from
    customer_segmentation.segmentation_training import evaluate_k_range``): each imports on its
    own, in a fresh interpreter. They import pipelines' ``params``; the pipeline packages load
    their pipeline (and nodes, which import the domain modules back) only when asked for it.
    """
    import json
    import subprocess
    import sys

    package = Path(customer_segmentation.__file__).parent
    modules = sorted(
        "customer_segmentation." + ".".join(p.relative_to(package).with_suffix("").parts)
        for p in package.rglob("*.py")
        if "explorer" not in p.parts and p.name not in ("__init__.py", "__main__.py")
    )
    assert "customer_segmentation.segmentation_training" in modules
    script = """
import importlib, json, sys
failed = {}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] == "customer_segmentation"]:
        del sys.modules[loaded]  # each module first, as in a fresh interpreter (libraries stay loaded)
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""
    out = subprocess.run(
        [sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
