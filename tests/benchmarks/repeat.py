"""The scale benchmark run several times, its targets judged on the median of the runs.

    PYTHONPATH=src python tests/benchmarks/repeat.py --runs 3 --sizes 10000000

Single runs of ``run_benchmark.py`` move by up to ~10% on a 2-core machine (the DuckDB script
baseline took 30.8-34.4 s in five runs of one evening, ``daily`` on two copies of one warehouse
16.1 and 19.5 s: docs/benchmarks.md, 2026-12-06), as much as the margins of the ratio targets. Each
run here is a complete, independent ``run_benchmark.py`` (its own project copy, generated data,
full run, baselines and daily run, in ``<workdir>/run_<i>``); a target's value is the median of
its per-run values, PASS/MISS is judged on that median, and the table also says how many single
runs passed. Every other argument goes to ``run_benchmark.py`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from tests.benchmarks.run_benchmark import targets  # noqa: E402


def median_targets(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (target, events) of any run: the runs' values, their median, PASS/MISS on the median.

    A run that did not measure a target (None) is left out of its median; ``passed`` counts the
    single runs that passed. ``reported`` rows (no limit) keep that status.
    """
    keys: list[tuple[str, int]] = []
    for rows in runs:
        for row in rows:
            if (row["target"], row["events"]) not in keys:
                keys.append((row["target"], row["events"]))
    out = []
    for name, events in keys:
        rows = [next((r for r in run if (r["target"], r["events"]) == (name, events)), None) for run in runs]
        known = [r for r in rows if r is not None]
        values = [r["measured"] for r in known if r["measured"] is not None]
        median = statistics.median(values) if values else None
        limit, unit = known[0]["limit"], known[0]["unit"]
        if known[0]["status"] == "reported":
            status = "reported"
        else:
            status = None if median is None else ("PASS" if median <= limit else "MISS")
        out.append(
            {
                "target": name,
                "events": events,
                "values": [None if r is None else r["measured"] for r in rows],
                "median": median,
                "limit": limit,
                "unit": unit,
                "status": status,
                "passed": sum(1 for r in known if r["status"] == "PASS"),
                "judged": sum(1 for r in known if r["status"] in ("PASS", "MISS")),
            }
        )
    return out


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if unit == "x" else f"{value:,.2f}"


def render(rows: list[dict[str, Any]], runs: int) -> str:
    head = [f"run {i + 1}" for i in range(runs)]
    lines = [
        "| target | events | "
        + " | ".join(head)
        + " | median | limit | result (median) | single runs passing |",
        "|---|---|" + "---|" * runs + "---|---|---|---|",
    ]
    for r in rows:
        limit = "-" if r["status"] == "reported" else f"<= {_num(r['limit'], r['unit'])} {r['unit']}"
        passing = "-" if not r["judged"] else f"{r['passed']} of {r['judged']}"
        median = "-" if r["median"] is None else f"{_num(r['median'], r['unit'])} {r['unit']}"
        lines.append(
            f"| {r['target']} | {r['events']:,} | "
            + " | ".join(_num(v, r["unit"]) for v in r["values"])
            + f" | {median} | {limit} | {r['status'] or '-'} | {passing} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=3, help="independent runs (an odd number gives a true median)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the runs go (default: a temp dir)")
    args, rest = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="segmentation-benchmark-repeat-"))
    workdir.mkdir(parents=True, exist_ok=True)
    per_run: list[list[dict[str, Any]]] = []
    for i in range(args.runs):
        out = workdir / f"run_{i + 1}"
        print(f"[{time.strftime('%H:%M:%S')}] run {i + 1} of {args.runs} in {out}", flush=True)
        cmd = [sys.executable, str(HERE / "run_benchmark.py"), "--workdir", str(out), *rest]
        with open(workdir / f"run_{i + 1}.log", "w") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        results = out / "results.json"
        if code != 0 or not results.exists():
            print(f"run {i + 1} failed (exit {code}): see {workdir / f'run_{i + 1}.log'}", flush=True)
            return 1
        per_run.append(targets(json.loads(results.read_text())))
    rows = median_targets(per_run)
    (workdir / "median.json").write_text(json.dumps(rows, indent=2, default=str))
    print(render(rows, args.runs))
    print(f"\nJSON: {workdir / 'median.json'}; each run's log and results in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
