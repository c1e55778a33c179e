"""Fixtures of the warehouse tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from customer_segmentation import warehouse
from customer_segmentation.warehouse import embedded
from tests.conftest import embedded_server_pids


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """An embedded warehouse folder of its own; its server is stopped after the test, none left running."""
    path = tmp_path / "wh"
    yield path
    warehouse.close()
    embedded.stop_server(path)
    assert not embedded_server_pids(tmp_path)
