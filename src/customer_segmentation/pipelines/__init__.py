"""The project's pipelines, one package each (``pipelines/<name>/{nodes,pipeline,params}.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_create_pipeline(package: str) -> Callable[[str], Any]:
    """A pipeline package's module ``__getattr__`` (PEP 562): its ``create_pipeline``, imported on first use.

    The domain modules below the pipelines import a pipeline package's ``params``; importing the
    pipeline in the package's ``__init__``, eagerly, would import its nodes, which import those
    modules back: a cycle (``import customer_segmentation.segmentation_training`` in a fresh
    interpreter failed). Each package's ``__init__`` sets ``__getattr__ = lazy_create_pipeline(__name__)``.
    """

    def __getattr__(name: str) -> Any:
        if name == "create_pipeline":
            return importlib.import_module(f"{package}.pipeline").create_pipeline
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
