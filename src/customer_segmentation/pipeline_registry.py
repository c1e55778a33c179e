"""Project pipelines."""

from __future__ import annotations

import warnings
from importlib import import_module, resources

from kedro.framework import project
from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline, pipeline

#: Pipelines that make up a full run, in order (``load_events`` is run on demand only).
FULL_RUN = ("ingestion", "rfm_features", "training", "prediction", "store_results", "monitoring")
#: The morning job: new events in, features refreshed, the model retrained if training.retrain_policy
#: says so (model_refresh), scored, stored, monitored.
DAILY_RUN = ("ingestion", "rfm_features", "model_refresh", "prediction", "store_results", "monitoring")
#: In the daily run, scoring and monitoring use the model that model_refresh hands over.
DAILY_MODEL_INPUT = {"segmentation_model": "active_segmentation_model"}
COMPOSITES = ("__default__", "daily")


def pipeline_names() -> list[str]:
    """Names of the pipeline packages under ``customer_segmentation/pipelines``."""
    root = resources.files("customer_segmentation.pipelines")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    names = pipeline_names()
    requested = getattr(project.pipelines, "_requested_pipelines", None) or []
    unknown = sorted(set(requested) - set(names) - set(COMPOSITES))
    if unknown:
        raise KeyError(
            f"Unknown pipeline {', '.join(repr(u) for u in unknown)}. Available pipelines: "
            f"{', '.join(names + ['daily'])} (or no --pipeline for the full run)."
        )
    with warnings.catch_warnings():
        # Kedro 1.7 only discovers the pipelines named on the command line and warns about
        # composite names (daily); every package is imported below, where errors do surface.
        warnings.simplefilter("ignore")
        pipelines = find_pipelines(raise_errors=False)
    for name in names:
        if name not in pipelines:
            pipelines[name] = import_module(f"customer_segmentation.pipelines.{name}").create_pipeline()
    pipelines["__default__"] = sum((pipelines[name] for name in FULL_RUN), Pipeline([]))
    pipelines["daily"] = sum(
        (
            pipeline(pipelines[name], inputs=DAILY_MODEL_INPUT) if name in ("prediction", "monitoring") else pipelines[name]
            for name in DAILY_RUN
        ),
        Pipeline([]),
    )
    return pipelines
