"""Project hooks: the warehouse session's life cycle, and run metadata for the nodes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from customer_segmentation import warehouse
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.gc_tuning import tune_garbage_collector
from customer_segmentation.malloc_tuning import tune_allocator
from customer_segmentation.warehouse.config import WarehouseSettings

logger = logging.getLogger(__name__)


def declared_sources(context: Any) -> dict[str, Any]:
    """The ``sources`` configuration, with relative ``file:`` paths made absolute (project folder)."""
    try:
        config = context.config_loader["sources"]
    except KeyError:  # a settings.py without the sources pattern
        return {}
    config = dict(config or {})
    for spec in config.values():
        if isinstance(spec, dict) and isinstance(spec.get("file"), str):
            path = Path(spec["file"]).expanduser()
            if not path.is_absolute():
                spec["file"] = str(Path(context.project_path) / path)
    return config


def pipeline_label(run_params: dict[str, Any]) -> str:
    """The run's pipeline name(s) for QUERY_TAG and the run lock: ``daily``, ``a,b``, or ``__default__``.

    Kedro 1.x passes the requested pipelines as ``run_params["pipeline_names"]`` (a list; empty or
    None for the default pipeline, ``--pipeline X`` gives ``[X]``); ``pipeline_name`` is the key of
    Kedro 0.19 and is read only when the list is absent.
    """
    names = run_params.get("pipeline_names")
    if names is None and run_params.get("pipeline_name"):
        names = [run_params["pipeline_name"]]
    return ",".join(str(n) for n in names or []) or "__default__"


class WarehouseHooks:
    """Configure the one warehouse session per run; open it before the run, close it after."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Decide the target (Snowflake or embedded) from credentials; reused across load_context()."""
        # a batch process (the pipelines, their libraries and the run are loaded next): the collector
        # in large batches, not every 700 allocations (gc_tuning.py)
        tune_garbage_collector()
        # blocks of 1 MiB and more (the training sample, NumPy arrays of the fits) go back to the
        # system when freed, instead of staying in glibc's heap to the end of the run (malloc_tuning.py)
        tune_allocator()
        # The raw section (runtime --params merged by the config loader), not ``context.params``:
        # reading that here would validate every pipeline's typed parameters, so a bad ``training``
        # value would stop ``--pipeline prediction``; Kedro scopes validation to the run's pipelines.
        params = context.config_loader["parameters"] or {}
        wh_params = params.get("warehouse") or {}
        credentials = (context.config_loader["credentials"] or {}).get("snowflake") or {}
        settings = WarehouseSettings.from_config(credentials, wh_params, context.project_path)
        # No demo seeding here: it is the ingestion pipeline's first node (demo/seeding.py).
        warehouse.configure(settings)
        extra_tag = wh_params.get("query_tag") or {}
        if not isinstance(extra_tag, dict):
            raise InvalidParametersError(
                f"warehouse.query_tag must be a mapping of extra QUERY_TAG fields (e.g. {{team: crm}}), got {extra_tag!r}."
            )
        warehouse.set_query_tag(**{str(k): v for k, v in extra_tag.items()})
        self._sources = declared_sources(context)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Expose run metadata to nodes and open the session up front, so bad credentials fail fast."""
        metadata = {
            "run_id": run_params.get("session_id") or run_params.get("run_id"),
            "started_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
            "pipeline": pipeline_label(run_params),
            # the demo seed (unless demo_data.seed_snowflake) and simulate_days write to the embedded warehouse only
            "embedded_warehouse": warehouse.current_settings().is_embedded,
        }
        catalog["run_metadata"] = metadata
        # the declared sources (conf/*/sources.yml) for the nodes that read them (docs/sources.md)
        catalog["declared_sources"] = getattr(self, "_sources", None) or {}
        # every statement of the run carries {"project", "pipeline", "run_id"} in QUERY_TAG
        warehouse.set_query_tag(pipeline=metadata["pipeline"], run_id=metadata["run_id"])
        # one pipeline run at a time per embedded warehouse: a second `kedro run` waits here
        warehouse.begin_run(f"pipeline {metadata['pipeline']}")
        warehouse.get_session()

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], run_result: Any, pipeline: Any, catalog: Any
    ) -> None:
        warehouse.close()

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        warehouse.close()
