"""The batch processes (a run, the embedded server) collect garbage in large batches (gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from customer_segmentation import gc_tuning
from tests.conftest import assert_server_calls_before_creating_anything, run_context_created_hook


@pytest.fixture(autouse=True)
def _restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_thresholds_are_raised_to_at_least_the_tuned_ones() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    assert gc_tuning.tune_garbage_collector() == gc_tuning.THRESHOLDS == gc.get_threshold()


def test_higher_thresholds_or_a_disabled_collector_are_kept() -> None:
    gc.set_threshold(100_000, 5, 50)
    assert gc_tuning.tune_garbage_collector() == (100_000, 20, 50)
    gc.set_threshold(0, 10, 10)  # automatic collection off
    assert gc_tuning.tune_garbage_collector() == (0, 10, 10)


def test_cycles_are_still_collected() -> None:
    import weakref

    gc_tuning.tune_garbage_collector()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    probe = weakref.ref(a)
    del a, b
    assert probe() is not None  # a cycle: reference counting alone does not free it
    # no explicit gc.collect(): enough live container allocations start an automatic young collection
    kept = [[None] for _ in range(gc_tuning.THRESHOLDS[0] + 1_000)]
    assert probe() is None and len(kept) > gc_tuning.THRESHOLDS[0]


def test_a_run_and_the_embedded_server_tune_their_collector(tmp_path: Path, monkeypatch: Any) -> None:
    gc.set_threshold(700, 10, 10)
    run_context_created_hook(tmp_path, monkeypatch)
    assert gc.get_threshold() == gc_tuning.THRESHOLDS
    assert_server_calls_before_creating_anything(
        gc_tuning, "tune_garbage_collector", tmp_path / "server", monkeypatch
    )
