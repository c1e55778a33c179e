"""The demo: deterministic events (``generator``), the seed node (``seeding``), its removal (``purge``).

Demo rows are marked: their ``SOURCE_FILE`` starts with ``demo://``. They are seeded only into an
empty RAW_DATA by the first node of the ingestion pipeline, and removed, with every table derived
from them, when the first user file is loaded.
"""

from typing import Any

from customer_segmentation.demo.marker import DEMO_SOURCE_PREFIX

__all__ = ["DEMO_SOURCE_PREFIX", "generate_events"]


def __getattr__(name: str) -> Any:
    # the generator needs Faker and numpy: imported only when events are generated, so that the
    # datasets (which recognise demo rows by their marker) stay light to import
    if name == "generate_events":
        from customer_segmentation.demo.generator import generate_events

        return generate_events
    raise AttributeError(name)
