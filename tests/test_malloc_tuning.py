"""glibc's mmap threshold fixed for the batch processes (malloc_tuning.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from customer_segmentation import malloc_tuning
from tests.conftest import assert_server_calls_before_creating_anything, run_context_created_hook

SRC = Path(__file__).resolve().parents[1] / "src"
glibc_only = pytest.mark.skipif(malloc_tuning.glibc_version() is None, reason="glibc's allocator only")

#: The start of each probe script: the tuning (``tuned`` as argv[2]) and libc's malloc/free, rss().
PREAMBLE = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
from customer_segmentation.malloc_tuning import tune_allocator
tuned = tune_allocator() if sys.argv[2] == "tuned" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20
"""

#: A fresh process: frees a 24 MiB block (glibc's dynamic threshold rises to it), then allocates
#: 8 blocks of 12 MiB, each followed by a 100 KiB block that stays, frees the 12 MiB blocks and
#: prints how much of their 96 MiB is still resident.
PROBE = PREAMBLE + textwrap.dedent(
    """
    big = libc.malloc(24 << 20)
    ctypes.memset(big, 1, 24 << 20)
    libc.free(big)
    before = rss()
    blocks, kept = [], []
    for _ in range(8):
        block = libc.malloc(12 << 20)
        ctypes.memset(block, 1, 12 << 20)
        blocks.append(block)
        kept.append(libc.malloc(100 << 10))  # lives on, after the block (no free chunk fits it): the heap cannot shrink past it
    for block in blocks:
        libc.free(block)
    print(tuned, rss() - before)
    """
)


def _probe(script: str, mode: str) -> str:
    """What ``script`` prints, run in a fresh interpreter without glibc's MALLOC_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", script, str(SRC), mode], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _resident_after_free(mode: str) -> tuple[str, float]:
    tuned, resident = _probe(PROBE, mode).split()
    return tuned, float(resident)


@glibc_only
def test_freed_large_blocks_go_back_to_the_system() -> None:
    tuned, resident = _resident_after_free("tuned")
    assert tuned == str(malloc_tuning.MMAP_THRESHOLD)
    assert resident < 8, f"{resident:.1f} MiB of 96 MiB freed still resident"
    # the same process without the tuning keeps them: the dynamic threshold put them in the heap
    tuned, resident = _resident_after_free("default")
    assert tuned == "None" and resident > 80


#: A fresh process: allocates 16 blocks of 512 KiB (below the mmap threshold: from the top of the
#: heap), frees them and prints how much of their 8 MiB is still resident.
TOP_PROBE = PREAMBLE + textwrap.dedent(
    """
    before = rss()
    blocks = [libc.malloc(512 << 10) for _ in range(16)]
    for block in blocks:
        ctypes.memset(block, 1, 512 << 10)
    for block in reversed(blocks):
        libc.free(block)
    print(rss() - before)
    """
)


@glibc_only
def test_freed_working_arrays_at_the_top_of_the_heap_stay_for_the_next_ones() -> None:
    """The trim threshold is fixed too: else 128 KiB, and every freed array of a few hundred KiB at
    the top of the heap went back to the system, the next one faulting its pages in again."""
    kept = float(_probe(TOP_PROBE, "tuned"))
    assert kept > 7, f"only {kept:.1f} MiB of 8 MiB kept"


@pytest.mark.parametrize("variable", [malloc_tuning.ENV_VARIABLE, malloc_tuning.TRIM_ENV_VARIABLE])
def test_left_alone_when_the_environment_sets_it(monkeypatch: Any, variable: str) -> None:
    monkeypatch.delenv(malloc_tuning.ENV_VARIABLE, raising=False)
    monkeypatch.delenv(malloc_tuning.TRIM_ENV_VARIABLE, raising=False)
    monkeypatch.setenv(variable, "131072")
    assert malloc_tuning.tune_allocator() is None


def test_left_alone_on_another_c_library(monkeypatch: Any) -> None:
    monkeypatch.delenv(malloc_tuning.ENV_VARIABLE, raising=False)
    monkeypatch.setattr(os, "confstr", lambda name: None)  # musl: no CS_GNU_LIBC_VERSION value
    assert malloc_tuning.glibc_version() is None
    assert malloc_tuning.tune_allocator() is None

    def unsupported(name: str) -> str:
        raise ValueError(name)  # macOS, Windows: the name is unknown

    monkeypatch.setattr(os, "confstr", unsupported)
    assert malloc_tuning.tune_allocator() is None


def test_a_run_and_the_embedded_server_tune_their_allocator(tmp_path: Path, monkeypatch: Any) -> None:
    from customer_segmentation import hooks

    calls: list[str] = []
    monkeypatch.setattr(hooks, "tune_allocator", lambda: calls.append("run"))
    run_context_created_hook(tmp_path, monkeypatch)
    assert calls == ["run"]
    assert_server_calls_before_creating_anything(
        malloc_tuning, "tune_allocator", tmp_path / "server", monkeypatch
    )


#: A fresh process: within ``fit_allocation`` 8 blocks of 4 MiB (each followed by a 100 KiB block
#: that stays) are freed; prints the MiB still resident inside, the MiB still resident after the
#: context ended, how many mmapped blocks a 2 MiB allocation adds inside, and a 6 MiB one after (no
#: free chunk of the heap holds 6 MiB: it comes from mmap with a 1 MiB threshold, the heap with 8 MiB).
FIT_PROBE = PREAMBLE + textwrap.dedent(
    """
    from customer_segmentation.malloc_tuning import fit_allocation
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc.mallinfo2.restype = Info
    def mapped_by_a_block(mib):
        before = libc.mallinfo2().hblks
        block = libc.malloc(mib << 20)
        added = libc.mallinfo2().hblks - before
        libc.free(block)
        return added
    before = rss()
    with fit_allocation():
        inside_mapped = mapped_by_a_block(2)
        blocks, kept = [], []
        for _ in range(8):
            block = libc.malloc(4 << 20)
            ctypes.memset(block, 1, 4 << 20)
            blocks.append(block)
            kept.append(libc.malloc(100 << 10))
        for block in blocks:
            libc.free(block)
        inside = rss() - before
    after = rss() - before
    print(inside, after, inside_mapped, mapped_by_a_block(6))
    """
)


@glibc_only
def test_a_bounded_fit_takes_its_blocks_from_the_heap_and_gives_them_back_when_it_ends() -> None:
    """Within fit_allocation a fit's arrays of a few MiB come from the heap (reused, not mapped
    afresh); when it ends, the threshold is 1 MiB again and the freed heap pages go back."""
    inside, after, inside_mapped, after_mapped = _probe(FIT_PROBE, "tuned").split()
    assert int(inside_mapped) == 0, "a 2 MiB block was mmapped within the fit"
    assert float(inside) > 28, f"only {inside} MiB of the fit's freed 32 MiB were still in the heap within it"
    assert float(after) < 6, f"{after} MiB of the fit's freed 32 MiB still resident after it"
    assert int(after_mapped) == 1, "after the fit a 6 MiB block came from the heap: threshold not restored"


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, ...]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake_libc(monkeypatch: Any) -> _FakeLibc:
    libc = _FakeLibc()
    monkeypatch.setattr(malloc_tuning, "_libc", lambda: libc)
    monkeypatch.setattr(malloc_tuning, "_tuned", True)
    monkeypatch.setattr(malloc_tuning, "_fits", 0)
    return libc


RAISE = ("mallopt", malloc_tuning.M_MMAP_THRESHOLD, malloc_tuning.FIT_MMAP_THRESHOLD)
RESTORE = [("mallopt", malloc_tuning.M_MMAP_THRESHOLD, malloc_tuning.MMAP_THRESHOLD), ("malloc_trim", 0)]


def test_nested_fits_restore_the_threshold_once_when_the_outermost_ends(fake_libc: _FakeLibc) -> None:
    with malloc_tuning.fit_allocation():
        with malloc_tuning.fit_allocation():
            pass
        assert fake_libc.calls == [RAISE]
    assert fake_libc.calls == [RAISE, *RESTORE]


def test_a_failing_fit_restores_the_threshold(fake_libc: _FakeLibc) -> None:
    @malloc_tuning.bounded_fit
    def failing_fit() -> None:
        raise ValueError("no repeat customer")

    with pytest.raises(ValueError, match="no repeat customer"):
        failing_fit()
    assert fake_libc.calls == [RAISE, *RESTORE]
    assert malloc_tuning._fits == 0


def test_an_untuned_process_is_left_alone(monkeypatch: Any) -> None:
    def no_libc() -> None:
        raise AssertionError("the allocator was touched in a process tune_allocator left alone")

    monkeypatch.setattr(malloc_tuning, "_libc", no_libc)
    monkeypatch.setattr(malloc_tuning, "_tuned", False)
    with malloc_tuning.fit_allocation():
        pass


def test_the_bounded_fits_run_within_fit_allocation(fake_libc: _FakeLibc) -> None:
    """Training's k range, final fit and stability, and the value model's two fits."""
    import numpy as np

    from customer_segmentation import value_model
    from customer_segmentation.segmentation_training import (
        evaluate_k_range,
        fit_segmentation_model,
        measure_stability,
    )
    from tests.pipelines.training.test_nodes import PARAMS, planted_customers

    sample = planted_customers(60)
    for fit in (
        lambda: evaluate_k_range(sample, PARAMS),
        lambda: measure_stability(
            sample, fit_segmentation_model(sample, {"k": 3}, PARAMS, {"run_id": "t"}), PARAMS
        ),
    ):
        fake_libc.calls.clear()
        fit()
        assert fake_libc.calls[0] == RAISE and fake_libc.calls[-2:] == RESTORE
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 400).astype(float)
    t_x = np.where(x > 0, rng.uniform(1, 200, 400), 0.0)
    for fit in (
        lambda: value_model.fit_bgnbd(x, t_x, t_x + rng.uniform(1, 200, 400)),
        lambda: value_model.fit_gamma_gamma(x[x > 0], rng.gamma(4, 20, int((x > 0).sum()))),
    ):
        fake_libc.calls.clear()
        try:
            fit()
        except value_model.ValueFitError:
            pass  # the fit refused these data: it ran, within fit_allocation, all the same
        assert fake_libc.calls == [RAISE, *RESTORE]
