"""The ``ingestion`` parameters (conf/base/parameters_ingestion.yml), validated before the run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from customer_segmentation.parameters import Parameters

_Name = Annotated[str, StringConstraints(min_length=1)]


class IngestionParams(Parameters):
    """Which events are valid, how much rejection a batch may have, and what "now" is."""

    section = "ingestion"

    # strict: a quoted "false" would otherwise read as true
    full_refresh: Annotated[bool, Field(strict=True)] = False
    purchase_event_types: Annotated[list[_Name], Field(min_length=1)] = [
        "ORDER_CREATED",
        "ORDER_CANCELLED",
        "ORDER_RETURNED",
    ]
    other_event_types: list[_Name] = [
        "PAGE_VIEW",
        "ADD_TO_CART",
        "REMOVE_FROM_CART",
        "WISHLIST_ADD",
        "NEWSLETTER_SIGNUP",
    ]
    # tried in order: the most common first (each miss costs a parse)
    timestamp_formats: Annotated[list[_Name], Field(min_length=1)] = [
        "YYYY-MM-DD HH24:MI:SS",
        "YYYY-MM-DD HH24:MI:SS.FF",
        'YYYY-MM-DD"T"HH24:MI:SS.FF',
        'YYYY-MM-DD"T"HH24:MI:SS',
        "YYYY-MM-DD",
    ]
    future_tolerance_hours: Annotated[float, Field(ge=0)] = 24
    max_rejection_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    load_wait_hours: Annotated[float, Field(gt=0)] = 6
    # "now" for validation; None = the demo clock on the demo (demo/clock.py), else the run's start (UTC)
    as_of: datetime | None = None
    # read the new rows of every declared source (conf/*/sources.yml) into RAW_DATA first
    pull_sources: Annotated[bool, Field(strict=True)] = True
