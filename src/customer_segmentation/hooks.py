"""Project hooks: the warehouse session's life cycle, and run metadata for the nodes."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import partial
from typing import Any

from kedro.framework.hooks import hook_impl

from customer_segmentation import warehouse
from customer_segmentation.warehouse.bootstrap import prepare_warehouse
from customer_segmentation.warehouse.config import WarehouseSettings

logger = logging.getLogger(__name__)


class WarehouseHooks:
    """Configure the one warehouse session per run; open it before the run, close it after."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Decide the target (Snowflake or embedded) from credentials; reused across load_context()."""
        params = context.params or {}
        wh_params = params.get("warehouse") or {}
        credentials = (context.config_loader["credentials"] or {}).get("snowflake") or {}
        embedded_dir = context.project_path / str(wh_params.get("embedded_dir", "data/warehouse"))
        settings = WarehouseSettings.from_credentials(credentials, embedded_dir, wh_params.get("memory_limit"))
        raw_table = (context.config_loader["catalog"].get("raw_data") or {}).get("table_name", "RAW_DATA")
        warehouse.configure(
            settings, on_open=partial(prepare_warehouse, raw_table=raw_table, demo=params.get("demo_data") or {})
        )

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Expose run metadata to nodes and open the session up front, so bad credentials fail fast."""
        catalog["run_metadata"] = {
            "run_id": run_params.get("session_id") or run_params.get("run_id"),
            "started_at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds"),
            "pipeline": run_params.get("pipeline_name") or "__default__",
            # nodes that must refuse real Snowflake (simulate_days) read the target here, not from config
            "warehouse_embedded": warehouse.current_settings().is_embedded,
        }
        warehouse.get_session()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result: Any, pipeline: Any, catalog: Any) -> None:
        warehouse.close()

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        warehouse.close()
