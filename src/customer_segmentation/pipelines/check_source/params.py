"""The ``check_source`` parameters (conf/base/parameters_check_source.yml), validated before the run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from customer_segmentation.parameters import Parameters


class CheckSourceParams(Parameters):
    """How much the dry run shows (the source's name is the top-level parameter ``source``)."""

    section = "check_source"

    preview_rows: Annotated[int, Field(ge=1, le=1000)] = 10
    rejected_examples: Annotated[int, Field(ge=0, le=100)] = 3
