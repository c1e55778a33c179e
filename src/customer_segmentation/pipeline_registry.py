"""Project pipelines: each one listed here, and the composite runs summed by hand.

To add a pipeline: import its package below, add it to ``register_pipelines``'s dict
and, if it belongs to the full or the daily run, to ``FULL_RUN`` or ``DAILY_RUN``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from customer_segmentation.errors import SegmentationError
from customer_segmentation.pipelines import (
    check_source,
    customer_value,
    export_segments,
    ingestion,
    load_events,
    model_refresh,
    monitoring,
    prediction,
    reporting,
    rfm_features,
    simulate_days,
    store_results,
    training,
)

#: Pipelines that make up a full run (`kedro run`), in order; ``load_events`` and ``check_source`` run on demand only.
#: ``ingestion`` starts by pulling the declared sources (conf/*/sources.yml).
FULL_RUN = (
    "ingestion",
    "rfm_features",
    "training",
    "customer_value",
    "reporting",
    "prediction",
    "store_results",
    "monitoring",
)
#: The morning job: new events in, features refreshed, the model retrained and registered in the
#: warehouse if training.retrain_policy says so (model_refresh), scored with the active model, stored, monitored.
#: customer_value scores every day and refits when the segmentation model changed or its age says so.
DAILY_RUN = (
    "ingestion",
    "rfm_features",
    "model_refresh",
    "customer_value",
    "prediction",
    "store_results",
    "monitoring",
)


class UnknownPipelineError(SegmentationError, KeyError):
    """``--pipeline`` named a pipeline that is not registered."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class Pipelines(dict):
    """The registry's dict; a missing name is answered with the names that exist."""

    def __missing__(self, name: str) -> Pipeline:
        known = ", ".join(sorted(n for n in self if n != "__default__"))
        raise UnknownPipelineError(
            f"Unknown pipeline {name!r}. Available pipelines: {known} (or no --pipelines for the full run)."
        )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = Pipelines(
        {
            "ingestion": ingestion.create_pipeline(),
            "rfm_features": rfm_features.create_pipeline(),
            "training": training.create_pipeline(),
            "prediction": prediction.create_pipeline(),
            "store_results": store_results.create_pipeline(),
            "load_events": load_events.create_pipeline(),
            "monitoring": monitoring.create_pipeline(),
            "model_refresh": model_refresh.create_pipeline(),
            "simulate_days": simulate_days.create_pipeline(),
            "export_segments": export_segments.create_pipeline(),
            "reporting": reporting.create_pipeline(),
            "check_source": check_source.create_pipeline(),
            "customer_value": customer_value.create_pipeline(),
        }
    )
    pipelines["__default__"] = sum((pipelines[name] for name in FULL_RUN), Pipeline([]))
    # the daily run updates the feature aggregates incrementally (customers with new events only)
    daily_variants = {"rfm_features": rfm_features.create_pipeline(incremental=True)}
    pipelines["daily"] = sum((daily_variants.get(name, pipelines[name]) for name in DAILY_RUN), Pipeline([]))
    return pipelines
