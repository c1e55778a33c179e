"""Warehouse access: the one place that knows whether we talk to Snowflake or the emulator."""

from customer_segmentation.warehouse.config import WarehouseSettings
from customer_segmentation.warehouse.session import (
    begin_run,
    close,
    configure,
    current_settings,
    get_session,
    is_open,
    set_query_tag,
)

__all__ = [
    "WarehouseSettings",
    "begin_run",
    "close",
    "configure",
    "current_settings",
    "get_session",
    "is_open",
    "set_query_tag",
]
