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
