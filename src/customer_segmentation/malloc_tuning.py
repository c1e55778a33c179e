"""glibc's allocator for the project's batch processes (a run, the embedded server): large blocks from mmap.

glibc's malloc serves a request of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with its
own mmap, unmapped again on free(). But the threshold is dynamic: each time such a block is freed
it rises to that block's size, up to 32 MiB. After the first few freed NumPy arrays, Arrow
buffers or result pages of a few MiB, every later block below that size is carved out of the
heap arenas instead, where a freed block stays resident as long as anything allocated after it
lives (and each thread that allocates gets an arena of its own). A run pulls a bounded training
sample and fits k-means and the value model on several threads, then keeps running for minutes:
at 10M events the heap held 323-369 MB, of which 171-220 MB were free blocks nobody could return
(``mallinfo2``), and the process's RSS stayed ~100 MB above what it used, to the end of the run
and into the peak of the monitoring nodes (docs/benchmarks.md, session 37).

Fixing the threshold at 1 MiB (which also turns the dynamic adjustment off) keeps blocks of
1 MiB and more out of the heap: freed, they go back to the system at once. Smaller blocks still
come from the heap. The threshold trades memory for speed: at 10M events the run's peak RSS was
~1,230 MB with 1 or 2 MiB, ~1,250-1,275 MB with 4 or 8 MiB, 1,306-1,336 MB with glibc's dynamic
threshold, and at 100M events 1,437-1,446 MB with 1 MiB, 1,483 MB with 2 MiB, 1,562 MB with the
dynamic threshold (the bound is 1,536 MB); a k-means fit of 200,000 customers is 0.1-0.3 s
slower with 1 MiB than with the dynamic threshold (the sample's 1.6 MB columns are each a fresh
mapping, its pages faulted in). Raising the threshold to 8 MiB only while the fits run gained at
most ~0.1 s a fit and was not kept (docs/benchmarks.md, session 38). The memory bound comes
first. Numeric loops over larger arrays work in blocks (``value_model.SERIES_BLOCK``).
Fixing it also fixes the trim threshold, at 128 KiB unless set, hence :data:`TRIM_THRESHOLD`.

Only glibc has these knobs (Linux distributions other than Alpine); elsewhere nothing is done. A
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` in the environment (glibc's own
settings, read at process start) wins.
"""

from __future__ import annotations

import ctypes
import os

#: Blocks of at least this many bytes are mmap()ed (and unmapped on free); fixed, not dynamic.
MMAP_THRESHOLD = 1 << 20
#: Free memory at the top of a heap beyond this is given back (sbrk/madvise). Fixing the mmap
#: threshold also fixes this one, at 128 KiB unless set: then every freed array of a few hundred
#: KiB at the top of the heap went back to the system and the next one faulted its pages in again
#: (the value scoring's series 3x slower). 32 MiB is within glibc's dynamic range (twice the
#: mmap threshold, up to 64 MiB) and keeps the numeric code's working arrays (4 MiB did not).
TRIM_THRESHOLD = 32 << 20
#: ``mallopt``'s parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's own environment variables for them (read once, at process start).
ENV_VARIABLE = "MALLOC_MMAP_THRESHOLD_"
TRIM_ENV_VARIABLE = "MALLOC_TRIM_THRESHOLD_"


def glibc_version() -> str | None:
    """The C library's version when it is glibc ("2.36"), else None (musl, macOS, Windows)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    if not text or not text.startswith("glibc "):
        return None
    return text.split(" ", 1)[1]


def tune_allocator() -> int | None:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (and the trim threshold at
    :data:`TRIM_THRESHOLD`) in this process; returns the mmap threshold, or None if left alone.

    Left alone: a C library other than glibc, or thresholds the environment already sets.
    """
    if glibc_version() is None or ENV_VARIABLE in os.environ or TRIM_ENV_VARIABLE in os.environ:
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return None
    return MMAP_THRESHOLD if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 else None
