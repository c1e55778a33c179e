"""Compatibility alias: the demo generator lives in ``customer_segmentation.demo.generator``."""

from customer_segmentation.demo.generator import (
    CATEGORIES,
    CHANNELS,
    DEFECT_KINDS,
    PERSONAS,
    Persona,
    generate_events,
)

__all__ = ["CATEGORIES", "CHANNELS", "DEFECT_KINDS", "PERSONAS", "Persona", "generate_events"]
