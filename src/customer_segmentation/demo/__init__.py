"""The demo: deterministic events (``generator``), the seed node (``seeding``), its removal (``purge``).

Demo rows are marked: their ``SOURCE_FILE`` starts with ``demo://``. They are seeded only into an
empty RAW_DATA by the first node of the ingestion pipeline, and removed, with every table derived
from them, when the first user file is loaded.
"""

from customer_segmentation.demo.generator import DEMO_SOURCE_PREFIX, generate_events

__all__ = ["DEMO_SOURCE_PREFIX", "generate_events"]
