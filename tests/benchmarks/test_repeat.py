"""The repeated benchmark's verdict: targets judged on the median of independent runs (no warehouse needed)."""

from __future__ import annotations

import pytest

from tests.benchmarks.repeat import main, median_targets, render


def row(target: str, measured: float | None, limit: float, status: str | None = None) -> dict:
    if status is None:
        status = None if measured is None else ("PASS" if measured <= limit else "MISS")
    return {
        "target": target,
        "events": 10_000_000,
        "measured": measured,
        "limit": limit,
        "unit": "x",
        "status": status,
    }


def test_the_median_decides_and_single_runs_are_counted() -> None:
    runs = [
        [
            row("full / baselines", 1.63, 1.6),
            row("daily / full", 0.24, 0.25),
            row("disk", 206.0, float("inf"), "reported"),
        ],
        [
            row("full / baselines", 1.89, 1.6),
            row("daily / full", 0.27, 0.25),
            row("disk", 207.0, float("inf"), "reported"),
        ],
        [
            row("full / baselines", 1.58, 1.6),
            row("daily / full", 0.25, 0.25),
            row("disk", 205.0, float("inf"), "reported"),
        ],
    ]
    out = {r["target"]: r for r in median_targets(runs)}
    full, daily, disk = out["full / baselines"], out["daily / full"], out["disk"]
    assert full["values"] == [1.63, 1.89, 1.58] and full["median"] == 1.63 and full["status"] == "MISS"
    assert (full["passed"], full["judged"]) == (1, 3)  # one lucky run does not make a PASS
    assert (
        daily["median"] == 0.25 and daily["status"] == "PASS" and (daily["passed"], daily["judged"]) == (2, 3)
    )
    assert disk["status"] == "reported" and disk["median"] == 206.0 and disk["judged"] == 0
    table = render(median_targets(runs), 3)
    assert (
        "| full / baselines | 10,000,000 | 1.630 | 1.890 | 1.580 | 1.630 x | <= 1.600 x | MISS | 1 of 3 |"
        in table
    )


def test_a_run_that_did_not_measure_a_target_is_left_out_of_its_median() -> None:
    runs = [[row("t", 0.2, 0.25)], [row("t", None, 0.25)], [row("t", 0.3, 0.25)], []]
    (t,) = median_targets(runs)
    assert t["values"] == [0.2, None, 0.3, None]
    assert (
        t["median"] == pytest.approx(0.25) and t["status"] == "PASS" and (t["passed"], t["judged"]) == (1, 2)
    )
    (none,) = median_targets([[row("u", None, 1.0)]])
    assert none["median"] is None and none["status"] is None


def test_bad_arguments_are_refused_before_any_run(tmp_path, capsys) -> None:
    for argv in (["--runs", "0"], ["--runs", "two"]):
        with pytest.raises(SystemExit):
            main([*argv, "--workdir", str(tmp_path), "--sizes", "1000"])
    assert "--runs" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
