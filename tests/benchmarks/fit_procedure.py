"""Time the training fit (``fit_segmentation_model``) on a training-sized feature sample.

    python tests/benchmarks/fit_procedure.py --rows 200000 --repeats 3 [--features FILE.parquet]

The sample: the customer features of a real history (by default the public CDNOW master
history, 23,570 customers, built once through the project's own ``load_events`` and
``rfm_features`` pipelines and cached next to this script's output), drawn with replacement to
``--rows`` rows with a small jitter on the continuous features (so that rows are not exact
copies). ``training.sample_size`` bounds the fit to 200,000 customers whatever the number of
events, so this is the fit's cost at 10M events and beyond.

Two cases per repeat: a first fit (no previous model) and a refit of the same sample with the
first model as the active one (what a rerun or a daily retrain does). The script calls only
``fit_segmentation_model(sample, k_choice, params, run_metadata, previous)``, so the same file
times another version of the code with ``PYTHONPATH=<its src>``. Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def cdnow_features(cache: Path) -> pd.DataFrame:
    """CUSTOMER_FEATURES of the CDNOW master history, computed by the project (cached)."""
    if cache.is_file():
        return pd.read_parquet(cache)
    sys.path.insert(0, str(ROOT))
    from tests.conftest import make_project_copy, run_pipeline
    from tests.public_data import cdnow_events

    with tempfile.TemporaryDirectory() as folder:
        project = make_project_copy(Path(folder) / "project")
        events = Path(folder) / "cdnow.csv"
        cdnow_events("master").to_csv(events, index=False)
        params = {"demo_data.enabled": False}
        run_pipeline(project, "load_events", {**params, "events_file": str(events)})
        run_pipeline(project, "ingestion", params)
        run_pipeline(project, "rfm_features", params)
        import duckdb

        from customer_segmentation.warehouse import embedded

        embedded.stop_server(project / "data" / "warehouse")
        con = duckdb.connect(str(project / "data" / "warehouse" / "SEGMENTATION.db"), read_only=True)
        frame = con.execute("SELECT * FROM PUBLIC.CUSTOMER_FEATURES").df()
        con.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(cache)
    return frame


def resample(features: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` customers drawn with replacement, continuous features jittered by a few percent."""
    rng = np.random.default_rng(seed)
    sample = features.iloc[rng.integers(0, len(features), rows)].reset_index(drop=True).copy()
    sample["CUSTOMER_ID"] = [f"B{i:07d}" for i in range(rows)]
    for column in ("MONETARY", "AVG_ORDER_VALUE", "SPEND_LAST_90D", "SPEND_PREV_90D"):
        if column in sample:
            sample[column] = sample[column] * rng.lognormal(0.0, 0.05, rows)
    for column in ("RECENCY_DAYS", "TENURE_DAYS"):
        if column in sample:
            sample[column] = np.maximum(sample[column] + rng.integers(-3, 4, rows), 0)
    return sample.sort_values("CUSTOMER_ID").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument(
        "--features",
        type=Path,
        default=Path(tempfile.gettempdir()) / "segmentation-benchmarks" / "cdnow_features.parquet",
        help="cached CUSTOMER_FEATURES to draw from (built from CDNOW master when missing)",
    )
    args = parser.parse_args(argv)

    from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
    from customer_segmentation.pipelines.training.params import TrainingParams

    params = TrainingParams()
    sample = resample(cdnow_features(args.features), args.rows)
    k_choice = {"k": args.k, "source": "benchmark"}
    for repeat in range(args.repeats):
        started = time.perf_counter()
        first = fit_segmentation_model(sample, k_choice, params, {"run_id": f"b{repeat}"})
        middle = time.perf_counter()
        again = fit_segmentation_model(sample, k_choice, params, {"run_id": f"b{repeat}-again"}, first)
        ended = time.perf_counter()
        same = bool(np.array_equal(first.centroids, again.centroids))
        for case, seconds in (
            ("first fit", middle - started),
            ("refit with the first as active", ended - middle),
        ):
            print(
                json.dumps(
                    {
                        "rows": args.rows,
                        "k": args.k,
                        "repeat": repeat,
                        "case": case,
                        "seconds": round(seconds, 2),
                    }
                    | ({"same_centroids_as_first": same} if case.startswith("refit") else {})
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
