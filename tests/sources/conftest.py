"""One embedded warehouse for the module's tests (cheap: each test uses its own tables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse import embedded
    from customer_segmentation.warehouse.config import WarehouseSettings

    folder: Path = tmp_path_factory.mktemp("sources") / "warehouse"
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    try:
        yield warehouse.get_session()
    finally:
        warehouse.close()
        embedded.stop_server(folder, wait=False)
