"""The value model's fits and closed forms against published figures and independent computations.

Published figures (CDNOW 1/10 sample, 39-week calibration from 1997-01-01): Fader, Hardie & Lee (2005),
"Counting your customers the easy way" (BG/NBD), and "RFM and CLV" (Gamma-Gamma); the unconditional
expectations are Hardie's spreadsheet figures as lifetimes' tests quote them. Independent references:
scipy.special.hyp2f1 on the closed form as printed (where scipy is accurate), and the expectation as
a one-dimensional integral over the dropout probability (scipy.integrate.quad), which uses no
hypergeometric function at all.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from customer_segmentation import value_model as vm
from customer_segmentation.errors import UnknownModelVersionError
from customer_segmentation.value_model import (
    BGNBDParams,
    FitResult,
    GammaGammaParams,
    ValueFitError,
    ValueModel,
)
from tests.public_data import cdnow_transactions

CALIBRATION_END = pd.Timestamp("1997-09-30")  # week 39 of 1997: T = 38.86 weeks for a 1997-01-02 start
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def sig3(value: float) -> float:
    return float(f"{value:.3g}")


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW sample's calibration summary, in days, from the raw transactions (lifetimes' rules:
    purchases on one day are one transaction; the mean spend is over repeat transactions)."""
    records = cdnow_transactions("sample")
    calibration = records[records["DATE"] <= CALIBRATION_END]
    days = calibration.groupby(["CUSTOMER_ID", "DATE"], as_index=False)["AMOUNT"].sum()
    days = days.sort_values(["CUSTOMER_ID", "DATE"])
    by = days.groupby("CUSTOMER_ID")
    summary = pd.DataFrame(
        {
            "x": by["DATE"].count() - 1,
            "t_x": (by["DATE"].max() - by["DATE"].min()).dt.days,
            "T": (CALIBRATION_END - by["DATE"].min()).dt.days,
        }
    )
    repeat = days[by.cumcount() > 0].groupby("CUSTOMER_ID")["AMOUNT"].mean()
    summary["mean_value"] = repeat.reindex(summary.index)
    return summary


@pytest.fixture(scope="module")
def fit_weeks(cdnow: pd.DataFrame) -> FitResult:
    return vm.fit_bgnbd(cdnow["x"], cdnow["t_x"] / 7, cdnow["T"] / 7)


@pytest.fixture(scope="module")
def fit_days(cdnow: pd.DataFrame) -> FitResult:
    return vm.fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])


# ---------------------------------------------------------------------------------------------
# Published figures
# ---------------------------------------------------------------------------------------------


def test_cdnow_sample_is_the_published_one(cdnow: pd.DataFrame) -> None:
    assert len(cdnow) == 2357
    assert int((cdnow["x"] > 0).sum()) == 946


def test_bgnbd_fit_reproduces_the_published_estimates_in_weeks(fit_weeks: FitResult) -> None:
    fitted = vars(fit_weeks.params)
    # published with 3 decimals (4 significant digits for alpha and b): reproduced to all of them
    assert {k: round(v, 3) for k, v in fitted.items()} == PUBLISHED_BGNBD
    assert round(fit_weeks.log_likelihood, 1) == PUBLISHED_LL
    assert fit_weeks.n_customers == 2357 and fit_weeks.converged


def test_bgnbd_fit_in_days_scales_alpha_only(
    fit_days: FitResult, fit_weeks: FitResult, cdnow: pd.DataFrame
) -> None:
    fitted = vars(fit_days.params)
    assert round(fitted["alpha"] / 7, 3) == PUBLISHED_BGNBD["alpha"]
    assert {k: round(fitted[k], 3) for k in ("r", "a", "b")} == {
        k: PUBLISHED_BGNBD[k] for k in ("r", "a", "b")
    }
    # the likelihood is a density in time: each repeat purchase time's density is 7x smaller in days
    shift = float(cdnow["x"].sum()) * math.log(7)
    assert fit_days.log_likelihood == pytest.approx(fit_weeks.log_likelihood - shift, abs=0.05)


def test_conditional_expectation_matches_the_published_example(
    fit_weeks: FitResult, fit_days: FitResult
) -> None:
    published = BGNBDParams(**PUBLISHED_BGNBD)
    assert sig3(vm.expected_purchases(published, 39, 2, 30.43, 38.86)) == 1.23
    assert vm.expected_purchases(published, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    assert vm.expected_purchases(fit_weeks.params, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)
    in_days = vm.expected_purchases(fit_days.params, 39 * 7, 2, 30.43 * 7, 38.86 * 7)
    assert in_days == pytest.approx(1.226, abs=5e-4)


def test_unconditional_expectation_matches_hardies_spreadsheet(
    fit_weeks: FitResult, fit_days: FitResult
) -> None:
    weeks = np.array([1.0, 3.0, 32.0, 78.0])
    published = [0.0532, 0.1506, 1.0437, 1.8576]
    assert [sig3(v) for v in vm.expected_purchases_unconditional(fit_weeks.params, weeks)] == [
        sig3(v) for v in published
    ]
    days = vm.expected_purchases_unconditional(fit_days.params, weeks * 7)
    assert [sig3(v) for v in days] == [sig3(v) for v in published]


def test_gamma_gamma_fit_reproduces_the_published_estimates(cdnow: pd.DataFrame) -> None:
    fit = vm.fit_gamma_gamma(cdnow["x"], cdnow["mean_value"])
    assert fit.n_customers == 946
    assert {k: round(v, 2) for k, v in vars(fit.params).items()} == PUBLISHED_GG
    # money has no time unit: the same fit whatever the time unit of x's history
    rescaled = vm.fit_gamma_gamma(cdnow["x"], cdnow["mean_value"] * 100)
    assert rescaled.params.gamma == pytest.approx(fit.params.gamma * 100, rel=1e-4)
    assert rescaled.params.p == pytest.approx(fit.params.p, rel=1e-4)


def test_fits_agree_with_lifetimes_when_it_imports(cdnow: pd.DataFrame, fit_weeks: FitResult) -> None:
    try:
        from lifetimes import BetaGeoFitter
    except Exception as error:  # noqa: BLE001 - unmaintained; may not import on this numpy/pandas
        pytest.skip(f"lifetimes does not import here: {error}")
    frame = pd.DataFrame({"x": cdnow["x"], "t_x": cdnow["t_x"] / 7, "T": cdnow["T"] / 7})
    theirs = BetaGeoFitter().fit(frame["x"], frame["t_x"], frame["T"])
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit_weeks.params, name) == pytest.approx(theirs.params_[name], rel=2e-3)


# ---------------------------------------------------------------------------------------------
# Closed forms against independent computations
# ---------------------------------------------------------------------------------------------


def alive_curve_by_integration(m: BGNBDParams, x: float, T: float, t: float) -> float:
    """E[purchases in (T, T+t] | alive at T] without any 2F1: given alive, lambda ~ Gamma(r+x, alpha+T)
    and p ~ Beta(a, b+x); given (lambda, p) the expected count is (1 - exp(-lambda p t)) / p [FHL05
    appendix]; integrating lambda out gives (1 - ((alpha+T)/(alpha+T+p t))^(r+x)) / p, integrated over p."""
    shape, b = m.r + x, m.b + x
    norm = special.betaln(m.a, b)

    def integrand(s: float) -> float:  # p = e^s: the p^(a-1) singularity at 0 becomes a smooth e^(a s)
        p = math.exp(s)
        bracket = -math.expm1(shape * (math.log(m.alpha + T) - math.log(m.alpha + T + p * t)))
        return bracket * math.exp((m.a - 1.0) * s + (b - 1.0) * math.log1p(-p) - norm)

    # from p = 1e-300 (the mass below it is ~1e-300^a) to the upper 1e-16 quantile, split where the mass is
    high = float(stats.beta.ppf(1 - 1e-16, m.a, b))
    middle = math.log(m.a / (m.a + b))
    pieces = [(-690.0, middle - 20), (middle - 20, middle), (middle, math.log(high))]
    return sum(integrate.quad(integrand, lo, hi, limit=1000, epsabs=0, epsrel=1e-13)[0] for lo, hi in pieces)


DAYS = BGNBDParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)


@pytest.mark.parametrize(
    ("m", "x", "T", "t"),
    [
        (DAYS, 0, 0, 365),
        (DAYS, 0, 273, 365),
        (DAYS, 2, 272, 273),
        (DAYS, 40, 800, 365),
        (DAYS, 5000, 3650, 365),
        (BGNBDParams(r=2.5, alpha=3.0, a=3.2, b=8.0), 12, 30, 365),
        (BGNBDParams(r=0.8, alpha=0.5, a=0.4, b=0.7), 0, 1, 90),
    ],
)
def test_alive_curve_equals_the_integral_definition(m: BGNBDParams, x: int, T: int, t: int) -> None:
    series = float(vm.alive_purchase_curve(m, x, T, t))
    # the quadrature itself is good to ~1e-7 here (heavy tails of Beta at both ends); the series' own
    # precision is checked against scipy.special.hyp2f1 below (1e-12)
    assert series == pytest.approx(alive_curve_by_integration(m, x, T, t), rel=1e-6)
    z = t / (m.alpha + T + t)
    euler = special.hyp2f1(m.a + m.b - 1 - m.r, m.a - 1, m.a + m.b + x - 1, z)
    direct = (m.a + m.b + x - 1) / (m.a - 1) * (1 - (1 - z) ** (m.a - 1) * euler)
    assert series == pytest.approx(direct, rel=1e-12)


def test_expected_purchases_equal_scipy_hyp2f1_on_the_printed_formula() -> None:
    """FHL05 eq. 10 as printed (no Euler transform), evaluated with scipy where scipy is accurate."""
    m = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    for x, t_x, T, t in [(0, 0, 38.86, 39), (2, 30.43, 38.86, 39), (7, 35.0, 38.0, 52), (15, 20.0, 30.0, 10)]:
        z = t / (m.alpha + T + t)
        hyp = special.hyp2f1(m.r + x, m.b + x, m.a + m.b + x - 1, z)
        body = 1 - ((m.alpha + T) / (m.alpha + T + t)) ** (m.r + x) * hyp
        denominator = 1 + (x > 0) * m.a / (m.b + x - 1) * ((m.alpha + T) / (m.alpha + t_x)) ** (m.r + x)
        printed = (m.a + m.b + x - 1) / (m.a - 1) * body / denominator
        assert float(vm.expected_purchases(m, t, x, t_x, T)) == pytest.approx(printed, rel=1e-10)
    unconditional = (
        (m.a + m.b - 1)
        / (m.a - 1)
        * (
            1
            - (m.alpha / (m.alpha + 78)) ** m.r * special.hyp2f1(m.r, m.b, m.a + m.b - 1, 78 / (m.alpha + 78))
        )
    )
    assert float(vm.expected_purchases_unconditional(m, 78.0)) == pytest.approx(unconditional, rel=1e-10)


@pytest.mark.parametrize(
    ("a", "b", "c", "z"),
    [
        (1.5, -0.2, 3.0, 0.5),
        (0.3, 2.0, 4.5, 0.9),
        (-0.7, 0.5, 0.8, 0.95),
        (2.0, 3.0, 100.0, 0.99),
        (1.2, 0.0, 2.0, 0.3),
    ],
)
def test_hypergeometric_series_equals_scipy(a: float, b: float, c: float, z: float) -> None:
    assert 1.0 + float(vm.hyp2f1_series(a, b, c, z)) == pytest.approx(special.hyp2f1(a, b, c, z), rel=1e-12)


def test_hypergeometric_series_lanes_are_summed_as_if_alone() -> None:
    """A batch whose lanes need from 1 to thousands of terms: each lane's sum is the one it gets alone
    (same terms, same order, to the last bit), whether a and b are shared (the scorer's case) or per lane."""
    rng = np.random.default_rng(7)
    z = np.concatenate([[0.0, 1e-12, 0.5, 0.99, 0.999], rng.uniform(0.0, 0.98, 200)])
    c = np.concatenate([[0.8, 2.0, 100.0, 3.0, 5000.0], rng.uniform(0.5, 400.0, 200)])
    for a, b in [(1.3, -0.4), (rng.uniform(-0.9, 2.0, z.size), rng.uniform(-0.9, 2.0, z.size))]:
        batch = vm.hyp2f1_series(a, b, c, z)
        a_i, b_i = np.broadcast_to(a, z.shape), np.broadcast_to(b, z.shape)
        alone = np.array([vm.hyp2f1_series(a_i[i], b_i[i], c[i], z[i]) for i in range(z.size)])
        assert np.array_equal(batch, alone)
        assert 1.0 + batch == pytest.approx(special.hyp2f1(a_i, b_i, c, z), rel=1e-11)


def test_hypergeometric_series_in_blocks_sums_each_lane_as_in_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lanes summed block by block (SERIES_BLOCK) give every lane's sum to the last bit, whatever the block size."""
    rng = np.random.default_rng(11)
    z = np.concatenate([[0.0, 0.999], rng.uniform(0.0, 0.98, 301)])
    c = np.concatenate([[0.8, 5000.0], rng.uniform(0.5, 400.0, 301)])
    a = rng.uniform(-0.9, 2.0, z.size)
    whole = vm.hyp2f1_series(a, 1.3, c, z)
    for block in (1, 7, 64, 302):
        monkeypatch.setattr(vm, "SERIES_BLOCK", block)
        assert np.array_equal(vm.hyp2f1_series(a, 1.3, c, z), whole)
        assert np.array_equal(
            vm.hyp2f1_series(a.reshape(3, 101), 1.3, c.reshape(3, 101), z.reshape(3, 101)),
            whole.reshape(3, 101),
        )


def test_hypergeometric_series_reports_the_lane_that_does_not_converge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lanes that converged leave the batch; the one still summing at the term limit is the one reported."""
    monkeypatch.setattr(vm, "MAX_SERIES_TERMS", 1000)
    z = np.array([0.1, 0.5, 0.9999, 0.2, 0.999])
    with pytest.raises(ValueFitError, match=r"did not converge in 1,000 terms \(z up to 0\.99990000\)"):
        vm.hyp2f1_series(1.0, 1.0, 2.0, z)
    assert np.isfinite(vm.hyp2f1_series(1.0, 1.0, 2.0, z[[0, 1, 3]])).all()


def test_hypergeometric_series_refuses_z_at_one() -> None:
    with pytest.raises(ValueError, match="0 <= z < 1"):
        vm.hyp2f1_series(1.0, 1.0, 2.0, 1.0)


def test_p_alive_for_heavy_buyers_is_finite_and_matches_the_ratio_form() -> None:
    x = np.array([0, 1, 50, 1000, 5000, 5000])
    t_x = np.array([0, 10, 300, 3000, 3649, 1000])
    T = np.array([5, 30, 365, 3650, 3650, 3650])
    with np.errstate(all="raise"):
        alive = vm.p_alive(DAYS, x, t_x, T)
    assert np.isfinite(alive).all() and ((alive >= 0) & (alive <= 1)).all()
    assert alive[0] == 1.0
    # the printed ratio form, in exact rational powers via logs of Python floats where it is representable
    for i in range(1, 5):
        log_ratio = (DAYS.r + x[i]) * (math.log(DAYS.alpha + T[i]) - math.log(DAYS.alpha + t_x[i]))
        if log_ratio < 700:
            expected = 1 / (1 + DAYS.a / (DAYS.b + x[i] - 1) * math.exp(log_ratio))
            assert alive[i] == pytest.approx(expected, rel=1e-12)
    assert alive[5] == 0.0 or alive[5] < 1e-300  # stopped buying 7 years ago after 5,000 purchases


def test_gamma_gamma_conditional_mean_is_the_published_weighted_average() -> None:
    g = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
    population = g.p * g.gamma / (g.q - 1)
    x, mean = np.array([0, 1, 10, 3, 2]), np.array([np.nan, 20.0, 35.5, 0.0, -4.0])
    weight = g.p * x / (g.p * x + g.q - 1)
    expected = (1 - weight) * population + weight * np.array([0, 20.0, 35.5, 0.0, 0.0])
    assert vm.expected_order_value(g, x, mean) == pytest.approx(expected, rel=1e-14)
    assert vm.expected_order_value(g, 0, np.nan) == pytest.approx(population)


def test_clv_is_the_discounted_sum_of_period_increments() -> None:
    m, g = DAYS, GammaGammaParams(p=6.25, q=3.74, gamma=15.44)
    x, t_x, T, mean = (
        np.array([0, 3, 12]),
        np.array([0, 100, 250]),
        np.array([20, 200, 300]),
        np.array([np.nan, 40, 12]),
    )
    ends = [30 * k for k in range(1, 13)] + [365]
    cumulative = np.array([vm.expected_purchases(m, t, x, t_x, T) for t in ends])
    increments = np.diff(np.vstack([np.zeros(3), cumulative]), axis=0)
    factors = np.array([1.1 ** (-t / 365) for t in ends])
    expected = 0.3 * vm.expected_order_value(g, x, mean) * (factors @ increments)
    assert vm.clv(m, g, x, t_x, T, mean, 365, 0.1, 0.3) == pytest.approx(expected, rel=1e-12)
    undiscounted = vm.clv(m, g, x, t_x, T, mean, 365, 0.0, 1.0)
    assert undiscounted == pytest.approx(vm.expected_order_value(g, x, mean) * cumulative[-1], rel=1e-12)
    assert vm.discount_schedule(45, 0.0)[0].tolist() == [30.0, 45.0]


@pytest.mark.parametrize(
    ("horizon", "rate", "margin"), [(0, 0.1, 1.0), (365.5, 0.1, 1.0), (365, -0.1, 1.0), (365, 0.1, -1.0)]
)
def test_clv_settings_out_of_range_are_refused(horizon: object, rate: float, margin: float) -> None:
    with pytest.raises(ValueFitError, match="customer_value"):
        vm.clv(DAYS, GammaGammaParams(6.25, 3.74, 15.44), [1], [1], [2], [10.0], horizon, rate, margin)


# ---------------------------------------------------------------------------------------------
# Fitting: gradients, weighting, heavy buyers, refusals
# ---------------------------------------------------------------------------------------------


def test_analytic_gradients_match_finite_differences(cdnow: pd.DataFrame) -> None:
    x, t_x, T = (cdnow[c].to_numpy(float) / (1 if c == "x" else 7) for c in ("x", "t_x", "T"))
    point = np.array([0.3, 4.0, 0.9, 2.0])
    _, d_r, d_alpha, d_ab = vm._bgnbd_terms(point, x, t_x, T)
    analytic = np.array([d_r.sum(), d_alpha.sum(), d_ab[0].sum(), d_ab[1].sum()])
    numeric = []
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-6 * point[j]
        up = vm._bgnbd_terms(point + step, x, t_x, T)[0].sum()
        down = vm._bgnbd_terms(point - step, x, t_x, T)[0].sum()
        numeric.append((up - down) / (2 * step[j]))
    assert analytic == pytest.approx(numeric, rel=1e-5)
    grouped = vm._bgnbd_terms(point, x, t_x, T, np.unique(x, return_inverse=True))  # what the fit uses
    for mine, theirs in zip(grouped, vm._bgnbd_terms(point, x, t_x, T)):
        assert np.asarray(mine) == pytest.approx(np.asarray(theirs), rel=1e-13)
    keep = cdnow["x"] > 0
    gg_point = np.array([5.0, 3.0, 12.0])
    xs, ms = cdnow["x"][keep].to_numpy(float), cdnow["mean_value"][keep].to_numpy(float)
    grads = vm._gg_terms(gg_point, xs, ms)[1].sum(axis=1)
    grouped = vm._gg_terms(gg_point, xs, ms, np.unique(xs, return_inverse=True))
    assert grouped[0] == pytest.approx(vm._gg_terms(gg_point, xs, ms)[0], rel=1e-13)
    assert grouped[1].sum(axis=1) == pytest.approx(grads, rel=1e-13)
    for j in range(3):
        step = np.zeros(3)
        step[j] = 1e-6 * gg_point[j]
        diff = vm._gg_terms(gg_point + step, xs, ms)[0].sum() - vm._gg_terms(gg_point - step, xs, ms)[0].sum()
        assert grads[j] == pytest.approx(diff / (2 * step[j]), rel=1e-5)


def test_weighted_rows_give_the_same_fit_as_repeated_rows(cdnow: pd.DataFrame, fit_days: FitResult) -> None:
    counted = cdnow.groupby(["x", "t_x", "T"]).size().reset_index(name="n")
    weighted = vm.fit_bgnbd(counted["x"], counted["t_x"], counted["T"], weight=counted["n"])
    assert weighted.n_customers == 2357 and weighted.n_rows == len(counted) == fit_days.n_rows
    assert weighted.log_likelihood == pytest.approx(fit_days.log_likelihood, abs=1e-6)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(weighted.params, name) == pytest.approx(getattr(fit_days.params, name), rel=1e-5)


def simulate_bgnbd(
    m: BGNBDParams, n: int, T_max: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers simulated from the BG/NBD story (independent of the likelihood code), in days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(m.r, 1 / m.alpha, n)
    p = rng.beta(m.a, m.b, n)
    T = np.floor(rng.uniform(0, T_max, n))
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        clock = 0.0
        while True:
            clock += rng.exponential(1 / lam[i])
            if clock > T[i]:
                break
            x[i] += 1
            t_x[i] = clock
            if rng.uniform() < p[i]:
                break
    return x, t_x, T


def test_fit_recovers_simulated_heavy_buyers_over_ten_years() -> None:
    """Daily buyers with little dropout, over up to ten years: x in the thousands, no overflow, no NaN."""
    truth = BGNBDParams(r=4.0, alpha=6.0, a=0.5, b=400.0)
    x, t_x, T = simulate_bgnbd(truth, 1500, 3650, seed=7)
    assert x.max() > 3000
    with np.errstate(over="raise"):
        fit = vm.fit_bgnbd(x, t_x, T)
    assert fit.converged and np.isfinite(fit.log_likelihood)
    assert fit.params.r / fit.params.alpha == pytest.approx(truth.r / truth.alpha, rel=0.1)
    alive = vm.p_alive(fit.params, x, t_x, T)
    future = vm.expected_purchases(fit.params, 365, x, t_x, T)
    assert np.isfinite(alive).all() and np.isfinite(future).all() and (future >= 0).all()


def test_no_repeat_customer_is_refused_clearly() -> None:
    with pytest.raises(ValueFitError, match="No customer in the sample bought twice"):
        vm.fit_bgnbd(np.zeros(50), np.zeros(50), np.arange(50.0))


def test_too_few_customers_are_refused() -> None:
    with pytest.raises(ValueFitError, match="at least 10 customers"):
        vm.fit_bgnbd([1, 0, 2], [5, 0, 9], [10, 10, 10])
    with pytest.raises(ValueFitError, match="at least 3 customers"):
        vm.fit_gamma_gamma([1, 0, 2, 4], [5.0, np.nan, 0.0, 3.0])


def test_unidentifiable_data_are_refused_not_fitted() -> None:
    """Every customer buys every 10 days and nobody ever stops: no dropout to learn, a runs off."""
    x = np.arange(1, 60, dtype=float)
    t_x = 10.0 * x
    T = t_x + 5
    with pytest.raises(ValueFitError, match="edge of the model.*no dropout signal"):
        vm.fit_bgnbd(x, t_x, T)


def test_same_spend_for_everyone_is_refused() -> None:
    with pytest.raises(ValueFitError, match="same mean spend"):
        vm.fit_gamma_gamma([1, 2, 3, 4], [10.0, 10.0, 10.0, 10.0])


def test_inconsistent_summaries_are_refused() -> None:
    with pytest.raises(ValueFitError, match=r"t_x .* must lie in \[0, T\]"):
        vm.fit_bgnbd([1] * 20, [30] * 20, [20] * 20)
    with pytest.raises(ValueFitError, match="whole number"):
        vm.fit_bgnbd([1.5] * 20, [3] * 20, [20] * 20)
    with pytest.raises(ValueFitError, match="NaN"):
        vm.fit_bgnbd([1, np.nan] * 10, [3, 0] * 10, [20] * 20)


# ---------------------------------------------------------------------------------------------
# Registry record
# ---------------------------------------------------------------------------------------------


def make_model(version: str, status: str = "READY") -> ValueModel:
    return ValueModel(
        version=version,
        trained_at="2026-12-05T06:00:00+00:00",
        segmentation_model_version="seg-1",
        bgnbd=FitResult(BGNBDParams(0.243, 30.898, 0.793, 2.426), -14363.5, 2357, 1016, 0.05, True),
        gamma_gamma=FitResult(GammaGammaParams(6.25, 3.74, 15.44), -4055.9, 946, 760, 0.02, True),
        settings={"horizon_days": 365, "annual_discount_rate": 0.1, "margin": 1.0, "sample_size": 2357},
        metrics={"holdout": {"total_error": float("nan"), "by_frequency": [{"frequency": 0, "actual": 0.2}]}},
        status=status,
    )


def test_record_round_trips_through_strict_json() -> None:
    model = make_model("v1")
    record = model.to_record()
    assert set(record) == {
        "VERSION",
        "TRAINED_AT",
        "SEGMENTATION_MODEL_VERSION",
        "STATUS",
        "PARAMS",
        "METRICS",
    }
    text = {k: json.dumps(v, allow_nan=False) if k in ("PARAMS", "METRICS") else v for k, v in record.items()}
    back = ValueModel.from_record(text)
    assert back.bgnbd == model.bgnbd and back.gamma_gamma == model.gamma_gamma
    assert back.settings == model.settings and back.segmentation_model_version == "seg-1"
    assert back.metrics["holdout"]["total_error"] is None  # NaN stored as null
    lower = ValueModel.from_record({k.lower(): v for k, v in record.items()})
    assert lower.bgnbd == model.bgnbd


def test_record_without_parameters_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="refit"):
        ValueModel.from_record({"VERSION": "v1", "PARAMS": "{}", "METRICS": None})


def test_active_value_model_follows_the_segmentation_rule() -> None:
    rows = pd.DataFrame(
        [make_model(v, s).to_record() for v, s in (("v3", "FAILED"), ("v2", "READY"), ("v1", "READY"))]
    )
    assert vm.active_value_model(rows).version == "v2"
    assert vm.active_value_model(rows, pinned="v1").version == "v1"
    assert vm.active_value_model(rows.rename(columns=str.lower)).version == "v2"
    assert vm.active_value_model(pd.DataFrame()) is None
    with pytest.raises(UnknownModelVersionError, match="v9"):
        vm.active_value_model(rows, pinned="v9")


def test_a_fit_that_stops_early_is_refused_not_returned(
    cdnow: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An optimiser stopped after 2 iterations (as on a hard likelihood surface) leaves a large gradient."""
    import scipy.optimize

    real = scipy.optimize.minimize

    def stopped(*args: object, **kwargs: object) -> object:
        kwargs["options"] = {**dict(kwargs.get("options") or {}), "maxiter": 2}
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", stopped)
    with pytest.raises(ValueFitError, match="did not converge"):
        vm.fit_bgnbd(cdnow["x"], cdnow["t_x"], cdnow["T"])


# ---------------------------------------------------------------------------------------------
# Robustness: damaged parameters, boundary solutions, inputs the models cannot use
# ---------------------------------------------------------------------------------------------

GOOD = BGNBDParams(0.243, 30.898, 0.793, 2.426)
SPEND = GammaGammaParams(6.25, 3.74, 15.44)


@pytest.mark.parametrize(
    "damaged",
    [
        BGNBDParams(0.243, 0.0, 0.793, 2.426),  # alpha = 0: math.log raised "math domain error"
        BGNBDParams(0.243, float("nan"), 0.793, 2.426),  # NaN: the likelihood was NaN, silently
        BGNBDParams(-1.0, 30.9, 0.793, 2.426),
        BGNBDParams(0.243, 30.9, 0.0, 2.426),
        BGNBDParams(0.243, 30.9, 0.793, float("inf")),
    ],
)
@pytest.mark.filterwarnings("error")
def test_damaged_bgnbd_parameters_are_refused_with_the_fix(damaged: BGNBDParams) -> None:
    x, t_x, T = [2, 0], [10, 0], [30, 30]
    calls = [
        lambda: vm.bgnbd_log_likelihood(damaged, x, t_x, T),
        lambda: vm.p_alive(damaged, x, t_x, T),
        lambda: vm.expected_purchases(damaged, 30, x, t_x, T),
        lambda: vm.expected_purchases_unconditional(damaged, 30),
    ]
    for call in calls:
        with pytest.raises(ValueFitError, match=r"must be finite numbers > 0.*Refit"):
            call()
    record = make_model("v1").to_record()
    record["PARAMS"]["bgnbd"]["params"] = dict(vars(damaged))
    with pytest.raises(ValueFitError, match="finite numbers > 0"):
        ValueModel.from_record({**record, "PARAMS": json.dumps(record["PARAMS"])})


def test_damaged_gamma_gamma_parameters_are_refused_with_the_fix() -> None:
    for damaged in (GammaGammaParams(6.25, float("nan"), 15.44), GammaGammaParams(6.25, 3.74, 0.0)):
        with pytest.raises(ValueFitError, match="must be finite numbers > 0"):
            vm.expected_order_value(damaged, [1, 0], [5.0, np.nan])
        with pytest.raises(ValueFitError, match="must be finite numbers > 0"):
            vm.gamma_gamma_log_likelihood(damaged, [1, 2], [5.0, 6.0])
    with pytest.raises(ValueFitError, match="q = 0.5 <= 1"):
        vm.expected_order_value(GammaGammaParams(6.25, 0.5, 15.44), [1, 0], [5.0, np.nan])


def regular_buyers(n: int = 300, every: float = 14.0, seed: int = 5) -> tuple[np.ndarray, ...]:
    """Every customer buys every `every` days from their first purchase up to the reference date."""
    rng = np.random.default_rng(seed)
    T = rng.integers(200, 400, n).astype(float)
    x = np.floor((T - 1) / every)
    return x, x * every, T


@pytest.mark.filterwarnings("error")
def test_no_dropout_signal_is_refused_with_its_cause_and_the_fix() -> None:
    """Nobody ever stops buying: the fit runs a to 0 and b to infinity (dropout probability 0)."""
    x, t_x, T = regular_buyers()
    with pytest.raises(ValueFitError, match="edge of the model") as raised:
        vm.fit_bgnbd(x, t_x, T)
    message = str(raised.value)
    assert "no dropout signal" in message and "every customer is still buying regularly" in message
    assert "What to do" in message and "longer history" in message


def test_the_boundary_guard_is_one_place_in_the_fit() -> None:
    """a, b above MAX_SHAPE (Beta collapsed to one value) is refused even inside the log-limits, by the fit
    itself (the pipeline's own a, b > 1e4 check is gone), with the cause named."""
    vm._refuse_bgnbd_boundary(np.log([0.243, 4.4, 0.793, 2.426]))  # the CDNOW fit: accepted
    with pytest.raises(ValueFitError, match="no spread in dropout"):
        vm._refuse_bgnbd_boundary(np.log([0.5, 1.0, 2.0e4, 5.0e4]))
    with pytest.raises(ValueFitError, match="no dropout signal"):
        vm._refuse_bgnbd_boundary(np.log([0.5, 1.0, 0.9, 3.0e4]))
    with pytest.raises(ValueFitError, match="almost no customer buys again"):
        vm._refuse_bgnbd_boundary(np.array([-20.0, 0.0, 0.0, 0.0]))
    import customer_segmentation.pipelines.customer_value.nodes as value_nodes

    assert not hasattr(value_nodes, "MAX_DROPOUT_SHAPE")


@pytest.mark.filterwarnings("error")  # a clear error, not a scipy/numpy warning on the way
def test_gamma_gamma_without_spread_between_customers_is_refused_clearly() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(1, 10, 50).astype(float)
    # equal means up to the last bits of a SQL average: no spread, not a garbage fit
    with pytest.raises(ValueFitError, match=r"same mean spend \(20"):
        vm.fit_gamma_gamma(x, 20.0 + rng.normal(0.0, 1e-12, 50))
    # a single repeat customer (five identical rows collapse into one)
    with pytest.raises(ValueFitError, match="same mean spend.*one summary row"):
        vm.fit_gamma_gamma([3], [20.0], [5])
    # two distinct means only: p runs off, refused with its cause
    with pytest.raises(ValueFitError, match=r"edge of the model \(p -> infinity.*order amounts"):
        vm.fit_gamma_gamma([3, 2], [20.0, 30.0], [5, 5])


@pytest.mark.filterwarnings("error")
def test_spend_that_the_model_cannot_use_is_refused_clearly() -> None:
    x = np.arange(1.0, 21.0)
    spend = np.linspace(5.0, 50.0, 20)
    with pytest.raises(ValueFitError, match=r"0 or negative \(20 customers\).*AMOUNT"):
        vm.fit_gamma_gamma(x, np.zeros(20))
    with pytest.raises(ValueFitError, match=r"0 or negative \(20 customers\)"):
        vm.fit_gamma_gamma(x, -spend)
    with pytest.raises(ValueFitError, match=r"at least 3 customers.*2 more have a mean spend of 0 or less"):
        vm.fit_gamma_gamma([1, 2, 3, 4], [5.0, 7.0, 0.0, -3.0])
    with pytest.raises(ValueFitError, match=r"missing \(NaN\) for 1 customer"):
        vm.fit_gamma_gamma(x, np.where(x == 4, np.nan, spend))
    with pytest.raises(ValueFitError, match="infinite"):
        vm.fit_gamma_gamma(x, np.where(x == 4, np.inf, spend))
    with pytest.raises(ValueFitError, match="whole number"):
        vm.fit_gamma_gamma(x + 0.5, spend)
    # NaN where x = 0 is the summary's rule (no repeat purchase): fine
    rng = np.random.default_rng(2)
    repeat = rng.integers(1, 8, 400).astype(float)
    nu = rng.gamma(4.0, 1 / 15.0, 400)  # Gamma-Gamma: nu ~ Gamma(q, gamma), spend ~ Gamma(p, nu)
    means = np.array([rng.gamma(6.0, 1 / n, int(k)).mean() for n, k in zip(nu, repeat)])
    fit = vm.fit_gamma_gamma(np.append(repeat, 0.0), np.append(means, np.nan))
    assert fit.n_customers == 400 and fit.converged


def test_closed_forms_refuse_inconsistent_summaries() -> None:
    with pytest.raises(
        ValueFitError, match=r"t_x .* must lie in \[0, T\] \(1 row\(s\), e.g. x = 1, t_x = 10, T = 5\)"
    ):
        vm.p_alive(GOOD, [1, 0], [10, 0], [5, 5])
    with pytest.raises(ValueFitError, match=r"t_x .* must lie in \[0, T\]"):
        vm.expected_purchases(GOOD, 30, [1], [10], [5])
    with pytest.raises(ValueFitError, match="whole number"):
        vm.p_alive(GOOD, [1.5], [3], [10])
    with pytest.raises(ValueFitError, match="whole number"):
        vm.expected_purchases(GOOD, 30, [1.5], [3], [10])
    with pytest.raises(ValueFitError, match="NaN"):
        vm.p_alive(GOOD, [1], [np.nan], [10])
    with pytest.raises(ValueFitError, match="T >= 0"):
        vm.alive_purchase_curve(GOOD, 1, -3, 30)


def test_value_lookup_in_blocks_gives_each_pair_its_values_to_the_last_bit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lookup works through the (x, T) pairs in blocks (SERIES_BLOCK lanes): a pair's values do
    not depend on the block it falls in, nor on which pairs came with it."""
    rng = np.random.default_rng(5)
    x = np.concatenate([[0, 5000, 0], rng.integers(0, 60, 500)]).astype(float)
    T = np.concatenate([[0, 3650, 3650], rng.integers(0, 2000, 500)]).astype(float)
    whole = vm.alive_value_lookup(DAYS, x, T, 365, 0.1)
    for block in (1, 13, 40, 1_000_000):  # a pair at a time (13 periods) ... all in one block
        monkeypatch.setattr(vm, "SERIES_BLOCK", block)
        for got, want in zip(vm.alive_value_lookup(DAYS, x, T, 365, 0.1), whole, strict=True):
            assert np.array_equal(got, want)
    alone = [vm.alive_value_lookup(DAYS, x[i : i + 1], T[i : i + 1], 365, 0.1) for i in (0, 1, 7)]
    assert [float(a[1][0]) for a in alone] == [float(whole[1][i]) for i in (0, 1, 7)]
    assert vm.alive_value_lookup(DAYS, x[:0], T[:0], 365, 0.1)[0].shape == (0,)
