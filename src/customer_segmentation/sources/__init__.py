"""Declared sources: the user's own tables and files, mapped onto the RAW_DATA contract (docs/sources.md)."""

from customer_segmentation.sources.declarations import (
    Source,
    SourceDeclarationError,
    parse_sources,
    pick_source,
)

__all__ = ["Source", "SourceDeclarationError", "parse_sources", "pick_source"]
