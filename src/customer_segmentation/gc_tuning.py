"""CPython's garbage-collector thresholds for the project's batch processes (a run, the embedded server).

CPython starts a young collection every 700 net allocations of container objects and, every so
often, a full one that walks every live object. A pipeline process holds 300-450k long-lived
objects (Kedro, Snowpark, pandas, scikit-learn, SciPy, plotly, sqlglot's tables in the embedded
server) and allocates millions of short-lived ones (query plans, SQL syntax trees, result rows):
with the defaults, the collector ran 1,300 young and 6-8 full collections per run at 10M events
(0.9-1.2 s, single full collections up to 0.24 s), nearly all of it finding nothing to free.
With a young threshold of 50,000 it ran ~18 young collections and no full one (0.2-0.45 s), and
`daily` took 13.5-13.9 s instead of 14.4-14.8 s (docs/benchmarks.md, session 33).

Reference cycles are still collected, only in larger batches; memory is dominated by DuckDB's cap
and the training sample, not by uncollected cycles. The thresholds are only ever raised: a process
that set higher ones (or turned the collector off) keeps them.
"""

from __future__ import annotations

import gc

#: (young, middle, old) thresholds (see ``gc.set_threshold``): collections in batches of 50,000
#: container objects instead of 700; the two older generations close to the defaults (10, 10).
THRESHOLDS = (50_000, 20, 10)


def tune_garbage_collector() -> tuple[int, int, int]:
    """Raise this process's collection thresholds to at least :data:`THRESHOLDS`; returns the thresholds set."""
    current = gc.get_threshold()
    if current[0] == 0:  # the collector is off (threshold 0): leave it so
        return current
    gc.set_threshold(*(max(have, want) for have, want in zip(current, THRESHOLDS, strict=True)))
    return gc.get_threshold()
