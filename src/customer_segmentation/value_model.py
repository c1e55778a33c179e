"""The customer value model: BG/NBD purchase counts, Gamma-Gamma spend, CLV; fitted and evaluated here.

Beside the segmentation model (``model.py``) in the domain floor: maximum-likelihood fits, the closed
forms used to score, and the registry record (one row of CUSTOMER_VALUE_MODELS per version). The
warehouse scoring (``value_sql.py``) compiles the same closed forms into SQL and joins the one part
that SQL cannot evaluate exactly, the Gauss hypergeometric function, from a lookup computed here.

scipy is imported inside the functions that need it (fits, special functions), so that importing this
module (the pipeline registry does) stays light.

Sources (docs/customer-value-formulas.md holds every formula with its source and equation number):

- [FHL05] Fader, Hardie & Lee (2005), "'Counting Your Customers' the Easy Way: An Alternative to
  the Pareto/NBD Model", Marketing Science 24(2), 275-284.
- [FHL08] Fader, Hardie & Lee (2008), "Computing P(alive) Using the BG/NBD Model" (note).
- [FHLb05] Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", Journal of Marketing Research 42(4), 415-430; Colombo & Jiang (1999), "A stochastic
  RFM model", Journal of Interactive Marketing 13(3), 2-12; Fader & Hardie (2013), "The Gamma-Gamma
  Model of Monetary Value" (note 025).
- [DLMF] NIST Digital Library of Mathematical Functions, 15.2.1 (the 2F1 series) and 15.8.1
  (Euler's transformation).

Inputs per customer (days are the time unit throughout, as in the warehouse summary): ``x`` repeat
transactions (transaction days - 1), ``t_x`` days from the first to the last transaction day, ``T``
days from the first transaction day to the reference date, ``mean_value`` the mean net value of the
repeat transactions. Only ``alpha`` (BG/NBD) and ``gamma`` (Gamma-Gamma, money) carry units.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation.errors import MissingModelError, SegmentationError, UnknownModelVersionError
from customer_segmentation.model import json_safe

__all__ = [
    "BGNBDParams",
    "DAYS_PER_YEAR",
    "FitResult",
    "GammaGammaParams",
    "PERIOD_DAYS",
    "ValueFitError",
    "ValueModel",
    "active_value_model",
    "alive_purchase_curve",
    "alive_value_lookup",
    "clv",
    "check_clv_settings",
    "discount_schedule",
    "expected_order_value",
    "expected_purchases",
    "expected_purchases_unconditional",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "hyp2f1_series",
    "p_alive",
]

#: CLV discounting (docs/customer-value-formulas.md, "CLV"): the horizon is cut into periods of
#: PERIOD_DAYS days (the last one shorter when the horizon is not a multiple), and the purchases
#: expected in a period are discounted from its end, at (1 + annual rate) ** (-end_day / DAYS_PER_YEAR).
PERIOD_DAYS = 30
DAYS_PER_YEAR = 365.0

#: Fewest customers (sum of weights) a BG/NBD fit accepts, and fewest repeat customers for Gamma-Gamma.
MIN_CUSTOMERS = 10
MIN_REPEAT_CUSTOMERS = 3
#: A fitted log-parameter beyond this (in the fit's scaled units) means the likelihood keeps improving
#: as the parameter runs to 0 or infinity: the data do not identify it, and the "fit" would be garbage.
LOG_PARAM_LIMIT = 18.0
#: Most series terms one 2F1 evaluation may take (z within 1e-5 of 1 needs millions: refuse instead).
MAX_SERIES_TERMS = 2_000_000
#: Lanes of the 2F1 series summed together (arrays of 512 KiB).
SERIES_BLOCK = 65_536


class ValueFitError(SegmentationError, ValueError):
    """The data cannot support a value model fit (or the fit failed): says what is lacking and what to do."""


@dataclass(frozen=True)
class BGNBDParams:
    """BG/NBD parameters [FHL05]: purchase rate ~ Gamma(r, alpha) (alpha in days), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def in_units_of(self, days: float) -> BGNBDParams:
        """The same model with time measured in units of ``days`` days (only alpha scales)."""
        return BGNBDParams(self.r, self.alpha / days, self.a, self.b)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters [FHLb05]: spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float


@dataclass(frozen=True)
class FitResult:
    """A maximum-likelihood fit: parameters, log-likelihood (in the data's units), sample and effort.

    ``n_customers`` is the sum of the weights (customers), ``n_rows`` the distinct rows the likelihood
    summed over (identical rows collapsed into one weighted row).
    """

    params: Any  # BGNBDParams or GammaGammaParams
    log_likelihood: float
    n_customers: int
    n_rows: int
    seconds: float
    converged: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": {k: float(v) for k, v in vars(self.params).items()},
            "log_likelihood": float(self.log_likelihood),
            "n_customers": int(self.n_customers),
            "n_rows": int(self.n_rows),
            "seconds": float(self.seconds),
            "converged": bool(self.converged),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], kind: type) -> FitResult:
        return cls(
            params=kind(**{k: float(v) for k, v in dict(data["params"]).items()}),
            log_likelihood=float(data["log_likelihood"]),
            n_customers=int(data["n_customers"]),
            n_rows=int(data["n_rows"]),
            seconds=float(data["seconds"]),
            converged=bool(data["converged"]),
        )


# ---------------------------------------------------------------------------------------------
# Input checks and weighting
# ---------------------------------------------------------------------------------------------


def _as_float(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if not np.isfinite(array).all():
        raise ValueFitError(f"{name} holds NaN or infinite values: summarise the customers again.")
    return array


def _validate_rfm(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    """Raise ValueFitError when (x, t_x, T) (finite float arrays of one shape) break the summary's rules:
    x a whole number >= 0, 0 <= t_x <= T, t_x = 0 when x = 0. The message counts the rows and shows one."""
    rules = (
        ((x < 0) | (x != np.round(x)), "x (repeat transactions) must be a whole number >= 0"),
        ((t_x < 0) | (t_x > T * (1 + 1e-12)), "t_x (first to last transaction) must lie in [0, T]"),
        ((x == 0) & (t_x != 0), "t_x must be 0 for a customer without repeat transactions (x = 0)"),
    )
    problems = []
    for bad, rule in rules:
        if bad.any():
            first = np.flatnonzero(bad.reshape(-1))[0]
            problems.append(
                f"{rule} ({int(bad.sum())} row(s), e.g. x = {x.reshape(-1)[first]:g}, "
                f"t_x = {t_x.reshape(-1)[first]:g}, T = {T.reshape(-1)[first]:g})"
            )
    if problems:
        raise ValueFitError(
            "The customer summary is inconsistent: "
            + "; ".join(problems)
            + ". Summarise the customers again (`kedro run --pipelines customer_value`); if it persists, "
            "the order dates are wrong (an order after the reference date?)."
        )


def _checked_rfm(x: Any, t_x: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, t_x, T as float arrays of one length, checked: x a whole number >= 0, 0 <= t_x <= T."""
    x, t_x, T = _as_float(x, "x"), _as_float(t_x, "t_x"), _as_float(T, "T")
    if not (len(x) == len(t_x) == len(T)):
        raise ValueFitError(f"x, t_x and T differ in length ({len(x)}, {len(t_x)}, {len(T)}).")
    _validate_rfm(x, t_x, T)
    return x, t_x, T


def _broadcast_rfm(x: Any, t_x: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, t_x, T broadcast to one shape (any), finite and checked as ``_checked_rfm`` does."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(x, t_x, T))
    for name, values in (("x", x), ("t_x", t_x), ("T", T)):
        if not np.isfinite(values).all():
            raise ValueFitError(f"{name} holds NaN or infinite values: summarise the customers again.")
    _validate_rfm(x, t_x, T)
    return x, t_x, T


def _check_params(params: Any, what: str) -> None:
    """Fitted parameters must be finite and > 0 (the closed forms take their logarithms): a clear
    ValueFitError instead of a bare "math domain error" or a NaN score."""
    values = {k: v for k, v in vars(params).items()}
    bad = {
        k: v
        for k, v in values.items()
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0)
    }
    if bad:
        shown = ", ".join(f"{k} = {v!r}" for k, v in bad.items())
        raise ValueFitError(
            f"The {what} parameters must be finite numbers > 0, but {shown}: the model was damaged or built "
            "by hand. Refit it with `kedro run --pipelines customer_value`, or pin another version "
            "(customer_value.model_version)."
        )


def _weights(weight: Any, n: int) -> np.ndarray:
    if weight is None:
        return np.ones(n)
    w = _as_float(weight, "weight")
    if len(w) != n:
        raise ValueFitError(f"weight has {len(w)} values for {n} customers.")
    if (w < 0).any():
        raise ValueFitError("weight (count of identical rows) must be >= 0.")
    return w


def _collapse(columns: list[np.ndarray], weight: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Identical rows merged into one row weighted by the sum of their weights (exact for a likelihood)."""
    keep = weight > 0
    stacked = np.column_stack([c[keep] for c in columns]) if len(columns) else np.empty((0, 0))
    if not len(stacked):
        return [c[keep] for c in columns], weight[keep]
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    summed = np.bincount(inverse.reshape(-1), weights=weight[keep], minlength=len(unique))
    return [unique[:, j] for j in range(unique.shape[1])], summed


# ---------------------------------------------------------------------------------------------
# Gauss hypergeometric function
# ---------------------------------------------------------------------------------------------


def hyp2f1_series(a: Any, b: Any, c: Any, z: Any, *, rtol: float = 1e-15) -> np.ndarray:
    """2F1(a, b; c; z) - 1 by its power series [DLMF 15.2.1], summed until the tail is provably below
    ``rtol`` (relative, or 1e-300 absolute), for 0 <= z < 1, elementwise over broadcast arrays.

    The first term (1) is left out so that callers can form 1 - (1 - z)^k * 2F1 without cancellation.
    Tail bound: from term n on (n past every sign change, i.e. n > -a, -b, -c), each ratio of
    successive terms, z (a + k)(b + k) / ((c + k)(1 + k)), is a product of factors (P + k) / (Q + k)
    monotone in k towards 1, so all later ratios are below q = z max(1, (a+n)/(c+n)) max(1, (b+n)/(1+n))
    and, when q < 1, the tail is below |term_n| q / (1 - q). Raises ValueFitError when the series
    would need more than MAX_SERIES_TERMS terms (z too close to 1).
    """
    a, b, c, z = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(a, b, c, z))
    shape = a.shape
    a, b, c, z = a.reshape(-1), b.reshape(-1), c.reshape(-1), z.reshape(-1)
    if ((z < 0) | (z >= 1)).any():
        raise ValueError("hyp2f1_series needs 0 <= z < 1.")
    # in blocks of SERIES_BLOCK lanes: each lane's terms do not depend on the others, and a block's
    # arrays (0.5 MB) stay in the CPU's cache and well below glibc's mmap threshold (malloc_tuning.py),
    # above which every temporary array of a large batch would be a fresh mapping
    total = np.empty(a.shape)
    for lo in range(0, a.size, SERIES_BLOCK):
        block = slice(lo, lo + SERIES_BLOCK)
        total[block] = _hyp2f1_block(a[block], b[block], c[block], z[block], rtol)
    return total.reshape(shape)


def _hyp2f1_block(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray, rtol: float) -> np.ndarray:
    """:func:`hyp2f1_series` over flat arrays of lanes (no checks)."""
    total = np.zeros(a.shape)
    # the lanes still summed (positions into the flat arrays) and their parameters, partial sums and
    # last terms; a lane that converges is masked out (its term set to 0, its sum frozen) and the
    # lanes are compacted only once half of them are done: the same additions in the same order as
    # compacting every term, without copying every array at every term
    lanes = np.arange(a.size)
    tstart = np.maximum.reduce([np.zeros_like(a), -a, -b, -c])
    # a and b are usually one value for every lane (the model's): then scalars, not arrays
    ta = a[0] if a.size and (a == a[0]).all() else a
    tb = b[0] if b.size and (b == b[0]).all() else b
    tc, tz = c, z
    tt, acc, live = np.ones(a.shape), np.zeros(a.shape), np.ones(a.shape, dtype=bool)
    n = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while lanes.size:
            tt = tt * ((ta + n) * (tb + n) / ((tc + n) * (n + 1.0))) * tz
            np.add(acc, tt, out=acc, where=live)
            n += 1
            q = tz * np.maximum(1.0, (ta + n) / (tc + n)) * np.maximum(1.0, (tb + n) / (1.0 + n))
            tail = np.abs(tt) * q / (1.0 - q)
            done = (n > tstart) & (q < 1.0) & (tail <= np.maximum(rtol * np.abs(acc), 1e-300))
            done |= tt == 0.0
            done &= live
            if done.any():
                live &= ~done
                tt[done] = 0.0
                alive = int(np.count_nonzero(live))
                if 2 * alive <= lanes.size:
                    total[lanes] = acc
                    lanes, tc, tz, tt, tstart, acc = (v[live] for v in (lanes, tc, tz, tt, tstart, acc))
                    ta, tb = (v if np.ndim(v) == 0 else v[live] for v in (ta, tb))
                    live = np.ones(alive, dtype=bool)
            if n > MAX_SERIES_TERMS and live.any():
                raise ValueFitError(
                    f"The hypergeometric series did not converge in {MAX_SERIES_TERMS:,} terms (z up to "
                    f"{float(tz[live].max()):.8f}): the horizon is too long for this model's alpha; use a "
                    "shorter customer_value.horizon_days."
                )
    return total


def alive_purchase_curve(m: BGNBDParams, x: Any, T: Any, t: Any) -> np.ndarray:
    """Expected purchases in (T, T + t] of a customer alive at T with x repeat purchases [FHL05 eq. 10].

    E[Y(t) | x, t_x, T] = P(alive) * this; it depends on (x, T) and t only, not on t_x. With
    z = t / (alpha + T + t) and Euler's transformation [DLMF 15.8.1] of the 2F1 in [FHL05 eq. 10]:
    (a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t))^(a - 1)
    * 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z)], evaluated as
    K * [-expm1((a - 1) ln(1 - z)) - (1 - z)^(a - 1) * (2F1 - 1)] (no cancellation).
    """
    _check_params(m, "BG/NBD")
    x, T, t = np.broadcast_arrays(np.asarray(x, float), np.asarray(T, float), np.asarray(t, float))
    if not (np.isfinite(x).all() and np.isfinite(T).all() and np.isfinite(t).all()):
        raise ValueFitError(
            "x, T or the horizon holds NaN or infinite values: summarise the customers again."
        )
    if (x < 0).any() or (x != np.round(x)).any() or (T < 0).any() or (t < 0).any():
        raise ValueFitError(
            "Expected purchases need x a whole number >= 0, T >= 0 and a horizon >= 0 (days): summarise the "
            "customers again (`kedro run --pipelines customer_value`)."
        )
    r, alpha, a, b = m.r, m.alpha, m.a, m.b
    if abs(a - 1.0) < 1e-9:
        raise ValueFitError(
            "The BG/NBD closed form for expected purchases divides by a - 1, and this model has a = 1: refit."
        )
    log1mz = np.log(alpha + T) - np.log(alpha + T + t)  # ln(1 - z), exact for large T
    z = -np.expm1(log1mz)
    f_minus_1 = hyp2f1_series(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
    power = np.exp((a - 1.0) * log1mz)
    k = (a + b + x - 1.0) / (a - 1.0)
    return k * (-np.expm1((a - 1.0) * log1mz) - power * f_minus_1)


# ---------------------------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------------------------


def _bgnbd_terms(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, groups: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-row log-likelihood [FHL05 eq. 6] and its gradient w.r.t. (r, alpha, a, b), in log space.

    ln L = ln G(r+x) - ln G(r) + r ln alpha
           + logsumexp( lnB(a, b+x) - lnB(a, b) - (r+x) ln(alpha+T),
                        [x>0] lnB(a+1, b+x-1) - lnB(a, b) - (r+x) ln(alpha+t_x) ).
    ``groups`` = ``np.unique(x, return_inverse=True)``: the special functions of x are then evaluated
    once per distinct x (a few hundred) instead of once per row.
    """
    from scipy import special  # here, not at import: registering the pipelines must not load scipy

    r, alpha, a, b = params
    ux, inverse = groups if groups is not None else (x, None)
    urepeat = ux > 0
    usafe_b = np.where(urepeat, b + ux - 1.0, 1.0)
    psi = special.digamma
    ln_b_ab = special.betaln(a, b)
    psi_abx = psi(a + b + ux)
    by_x = [
        special.gammaln(r + ux) - special.gammaln(r),  # ln G(r+x) - ln G(r)
        special.betaln(a, b + ux) - ln_b_ab,
        np.where(urepeat, special.betaln(a + 1.0, usafe_b) - ln_b_ab, 0.0),
        psi(r + ux),
        psi(a) - psi_abx,
        psi(a + 1.0) - psi_abx,
        psi(b + ux) - psi_abx,
        np.where(urepeat, psi(usafe_b) - psi_abx, 0.0),
    ]
    if inverse is not None:
        by_x = [v[inverse] for v in by_x]
    g_r, b_2, b_3, psi_rx, da_2, da_3, db_2, db_3 = by_x
    repeat = x > 0
    ln_at, ln_atx = np.log(alpha + T), np.log(alpha + t_x)
    ln_alpha = np.log(alpha)  # not math.log: a step of the optimiser to alpha = 0 gives -inf, refused there
    a1 = g_r + r * ln_alpha
    a2 = b_2 - (r + x) * ln_at
    a3 = np.where(repeat, b_3 - (r + x) * ln_atx, -np.inf)
    mx = np.maximum(a2, a3)
    e2, e3 = np.exp(a2 - mx), np.exp(a3 - mx)
    ll = a1 + mx + np.log(e2 + e3)
    w2 = e2 / (e2 + e3)
    w3 = 1.0 - w2
    d_r = psi_rx - psi(r) + ln_alpha - w2 * ln_at - w3 * ln_atx
    d_alpha = r / alpha - (r + x) * (w2 / (alpha + T) + w3 / (alpha + t_x))
    d_a = w2 * da_2 + w3 * da_3 - (psi(a) - psi(a + b))
    d_b = w2 * db_2 + w3 * db_3 - (psi(b) - psi(a + b))
    return ll, d_r, d_alpha, np.stack([d_a, d_b])


def bgnbd_log_likelihood(m: BGNBDParams, x: Any, t_x: Any, T: Any, weight: Any = None) -> float:
    """The weighted BG/NBD log-likelihood [FHL05 eq. 6] of the data (in the data's time unit)."""
    _check_params(m, "BG/NBD")
    x, t_x, T = _checked_rfm(x, t_x, T)
    w = _weights(weight, len(x))
    ll = _bgnbd_terms(np.array([m.r, m.alpha, m.a, m.b]), x, t_x, T)[0]
    return float(np.dot(w, ll))


def _minimise(objective: Any, starts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``objective`` (value, gradient) over log-parameters: the best point and its gradient.

    The next start is tried only when the previous ones did not reach a small gradient inside the
    parameter limits (then the best is kept). Whether the point is usable (a boundary solution, no
    convergence) is each fit's call (``_refuse_boundary``, ``_refuse_unconverged``): one place per model.
    """
    from scipy import optimize  # here, not at import: registering the pipelines must not load scipy

    best = None
    for start in starts:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = optimize.minimize(objective, start, jac=True, method="BFGS", options={"gtol": 1e-9})
            if not np.isfinite(result.fun):
                continue
            # BFGS stops on precision loss near the optimum: a Newton-free polish from there is cheap
            if not result.success:
                polished = optimize.minimize(objective, result.x, jac=True, method="L-BFGS-B")
                if np.isfinite(polished.fun) and polished.fun <= result.fun:
                    result = polished
        if best is None or result.fun < best.fun:
            best = result
        settled = np.max(np.abs(objective(best.x)[1])) < 1e-6 and np.all(np.abs(best.x) <= LOG_PARAM_LIMIT)
        if settled:
            break
    if best is None:
        raise ValueFitError(
            "The likelihood could not be evaluated at any starting point: the customer summary holds values "
            "the model cannot use. Summarise the customers again (`kedro run --pipelines customer_value`)."
        )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gradient = objective(best.x)[1]
    return best.x, gradient


def _refuse_unconverged(what: str, theta: np.ndarray, gradient: np.ndarray, names: tuple[str, ...]) -> bool:
    """Raise ValueFitError unless the optimum's gradient is small (returns True: converged)."""
    if bool(np.all(np.isfinite(theta)) and np.max(np.abs(gradient)) < 1e-4):
        return True
    raise ValueFitError(
        f"The {what} maximum-likelihood fit did not converge (largest gradient "
        f"{float(np.max(np.abs(gradient))):.2e} at {dict(zip(names, np.exp(theta).round(6)))}): "
        "the data may not support the model; use a longer history or a larger sample "
        "(customer_value.sample_size)."
    )


#: Beyond this, a fitted shape parameter (BG/NBD r, a, b; Gamma-Gamma p, q) means its distribution has
#: collapsed to one value: a boundary solution, where the likelihood keeps improving as the parameter
#: grows and whose closed forms (the hypergeometric series) would not be evaluated reliably.
MAX_SHAPE = 1.0e4


def _at_boundary(theta: np.ndarray, names: tuple[str, ...], shapes: tuple[str, ...]) -> dict[str, str]:
    """The parameters of a fit at the edge of the model: {name: "0" or "infinity"}.

    ``theta``: the fitted log-parameters in the fit's scaled units (LOG_PARAM_LIMIT applies there);
    ``shapes``: the names whose value (unscaled) must also stay below MAX_SHAPE.
    """
    edge = {}
    for name, value in zip(names, theta):
        if value < -LOG_PARAM_LIMIT:
            edge[name] = "0"
        elif value > LOG_PARAM_LIMIT or (name in shapes and math.exp(min(value, 700.0)) > MAX_SHAPE):
            edge[name] = "infinity"
    return edge


def _refuse_bgnbd_boundary(theta: np.ndarray, time_scale: float = 1.0) -> None:
    """The one guard against BG/NBD boundary solutions: says what in the data causes it and what to do.

    r, alpha: purchase rates ~ Gamma(r, alpha); a, b: dropout probability ~ Beta(a, b) [FHL05].
    ``theta``: log-parameters with alpha in units of ``time_scale`` days (the fit's scaling).
    """
    edge = _at_boundary(theta, ("r", "alpha", "a", "b"), ("r", "a", "b"))
    if not edge:
        return
    r, alpha, a, b = np.exp(np.clip(theta, -700.0, 700.0)) * np.array([1.0, time_scale, 1.0, 1.0])
    found = ", ".join(f"{k} -> {v}" for k, v in edge.items())
    causes = []
    if edge.get("a") == "infinity" and edge.get("b") == "infinity":
        causes.append(
            "no spread in dropout: every customer looks equally likely to stop after a purchase (typically "
            "the history is too short to see who stops)"
        )
    elif edge.get("a") == "0" or edge.get("b") == "infinity":
        causes.append(
            "no dropout signal: the dropout probability runs to 0 because every customer is still buying "
            "regularly, so the history shows nobody who stopped"
        )
    elif edge.get("a") == "infinity" or edge.get("b") == "0":
        causes.append("every customer seems to stop right after a purchase: almost nobody buys again")
    if "r" in edge or "alpha" in edge:
        if edge.get("r") == "infinity" or edge.get("alpha") == "infinity":
            causes.append("no spread in purchase rates: every customer buys at the same pace")
        else:
            causes.append("almost no customer buys again within the history")
    raise ValueFitError(
        f"The BG/NBD fit ran to the edge of the model ({found}; r = {r:.3g}, alpha = {alpha:.3g}, "
        f"a = {a:.3g}, b = {b:.3g}): the data cannot identify it. Cause: {'; '.join(causes)}. What to do: "
        "fit on a longer history (one where some customers have stopped buying) or a larger, more varied "
        "sample (customer_value.sample_size); on demo or generated data, check how it was generated."
    )


def _refuse_gamma_gamma_boundary(theta: np.ndarray) -> None:
    """The one guard against Gamma-Gamma boundary solutions (p, q shapes; gamma scale) [FHLb05]."""
    edge = _at_boundary(theta, ("p", "q", "gamma"), ("p", "q"))
    if not edge:
        return
    p, q, g = np.exp(np.clip(theta, -700.0, 700.0))
    found = ", ".join(f"{k} -> {v}" for k, v in edge.items())
    if "q" in edge or "gamma" in edge:
        cause = (
            "the customers' mean spends hardly differ (all about the same), so the spread of spend between "
            "customers cannot be estimated"
        )
    else:
        cause = (
            "each customer's spend looks the same on every purchase, with too few repeat customers to tell "
            "their means apart"
        )
    raise ValueFitError(
        f"The Gamma-Gamma spend fit ran to the edge of the model ({found}; p = {p:.3g}, q = {q:.3g}, "
        f"gamma scaled = {g:.3g}): {cause}. What to do: check the order amounts (AMOUNT mapped to a "
        "constant or a price instead of the order value? see docs/sources.md), or fit on a longer history "
        "with more repeat customers."
    )


def fit_bgnbd(x: Any, t_x: Any, T: Any, weight: Any = None) -> FitResult:
    """Maximum-likelihood BG/NBD fit [FHL05 eq. 6] on log-parameters (scipy BFGS, analytic gradient).

    ``weight``: count of identical (x, t_x, T) rows (None = one each); identical rows are also merged
    here, which is exact. Time is rescaled internally (alpha is fitted in units of the mean T, and
    scaled back), so days and weeks give the same r, a, b and alpha in the data's unit. Raises
    ValueFitError when the data cannot support a fit: fewer than MIN_CUSTOMERS customers, no repeat
    customer, a boundary solution (``_refuse_bgnbd_boundary``: a parameter running to 0 or infinity,
    or a shape r, a, b above MAX_SHAPE), or no convergence.
    """
    started = time.perf_counter()
    x, t_x, T = _checked_rfm(x, t_x, T)
    w = _weights(weight, len(x))
    (x, t_x, T), w = _collapse([x, t_x, T], w)
    total = float(w.sum())
    if total < MIN_CUSTOMERS:
        raise ValueFitError(
            f"The BG/NBD fit needs at least {MIN_CUSTOMERS} customers; the sample holds {total:g}. "
            "Load more history before fitting the value model."
        )
    if not (w[x > 0].sum() > 0):
        raise ValueFitError(
            "No customer in the sample bought twice (every x = 0): BG/NBD cannot learn purchase rates or "
            "dropout from first purchases alone. Wait for repeat purchases or load a longer history."
        )
    if not (T > 0).any():
        raise ValueFitError("Every customer was first seen on the reference date (T = 0): nothing to fit.")
    scale = float(np.average(T, weights=w)) or 1.0
    xs, ts, Ts = x, t_x / scale, T / scale
    groups = np.unique(x, return_inverse=True)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, d_r, d_alpha, d_ab = _bgnbd_terms(params, xs, ts, Ts, groups)
        value = -float(np.dot(w, ll)) / total
        grad = -np.array([np.dot(w, d_r), np.dot(w, d_alpha), np.dot(w, d_ab[0]), np.dot(w, d_ab[1])])
        grad = grad * params / total
        if not np.isfinite(value) or not np.isfinite(grad).all():
            return np.inf, np.zeros(4)
        return value, grad

    starts = [np.log([1.0, 1.0, 1.0, 1.0]) + np.array([0.0, 0.0, 0.1, 0.0]), np.log([0.3, 0.5, 0.8, 2.5])]
    theta, gradient = _minimise(objective, starts)
    _refuse_bgnbd_boundary(theta, scale)
    converged = _refuse_unconverged("BG/NBD", theta, gradient, ("r", "alpha", "a", "b"))
    r, alpha_s, a, b = np.exp(theta)
    params = BGNBDParams(float(r), float(alpha_s * scale), float(a), float(b))
    ll = float(np.dot(w, _bgnbd_terms(np.array([r, alpha_s * scale, a, b]), x, t_x, T)[0]))
    return FitResult(params, ll, int(round(total)), len(x), time.perf_counter() - started, converged)


def p_alive(m: BGNBDParams, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """P(alive | x, t_x, T) [FHL08, its closed form for P(tau > T | r, alpha, a, b, x, t_x, T)]:
    1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x)), the ratio in log space
    (the power overflows for heavy buyers), as expit(-u), u = ln a - ln(b + x - 1) + (r + x) ln(...).
    """
    from scipy import special  # here, not at import: registering the pipelines must not load scipy

    _check_params(m, "BG/NBD")
    x, t_x, T = _broadcast_rfm(x, t_x, T)
    repeat = x > 0
    safe = np.where(repeat, m.b + x - 1.0, 1.0)
    u = math.log(m.a) - np.log(safe) + (m.r + x) * (np.log(m.alpha + T) - np.log(m.alpha + t_x))
    return np.where(repeat, special.expit(-u), 1.0)


def expected_purchases(m: BGNBDParams, t: Any, x: Any, t_x: Any, T: Any) -> np.ndarray:
    """E[Y(t) | x, t_x, T], repeat purchases expected in the next t [FHL05 eq. 10]:
    P(alive) * (a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t))^(r + x)
    * 2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))], the 2F1 Euler-transformed
    (``alive_purchase_curve``)."""
    return p_alive(m, x, t_x, T) * alive_purchase_curve(m, x, T, t)


def expected_purchases_unconditional(m: BGNBDParams, t: Any) -> np.ndarray:
    """E[X(t)], purchases a new customer makes in t after the first [FHL05 eq. 7]:
    (a + b - 1) / (a - 1) * [1 - (alpha / (alpha + t))^r 2F1(r, b; a + b - 1; t / (alpha + t))],
    the conditional form at x = 0, T = 0 (where P(alive) = 1)."""
    t = np.asarray(t, dtype=float)
    return alive_purchase_curve(m, np.zeros_like(t), np.zeros_like(t), t)


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------------------------


def _gg_terms(
    params: np.ndarray, x: np.ndarray, mv: np.ndarray, groups: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log density of the mean spend m_x of x transactions (the marginal of m_x ~ Gamma(px, nu x),
    nu ~ Gamma(q, gamma) [FHLb05; Fader & Hardie 2013]) and its gradient w.r.t. (p, q, gamma):
    ln G(px+q) - ln G(px) - ln G(q) + q ln gamma + (px-1) ln m_x + px ln x - (px+q) ln(gamma + x m_x).
    ``groups`` = ``np.unique(x, return_inverse=True)``: gamma/digamma once per distinct x.
    """
    from scipy import special  # here, not at import: registering the pipelines must not load scipy

    p, q, g = params
    ux, inverse = groups if groups is not None else (x, None)
    psi = special.digamma
    upx = p * ux
    by_x = [special.gammaln(upx + q) - special.gammaln(upx), psi(upx + q), psi(upx)]
    if inverse is not None:
        by_x = [v[inverse] for v in by_x]
    g_ratio, psi_pxq, psi_px = by_x
    px = p * x
    ln_gxm = np.log(g + x * mv)
    ln_m, ln_x = np.log(mv), np.log(x)
    ln_g = np.log(g)  # not math.log: an optimiser step to gamma = 0 gives -inf, refused there
    ll = g_ratio - special.gammaln(q) + q * ln_g + (px - 1.0) * ln_m + px * ln_x - (px + q) * ln_gxm
    d_p = x * (psi_pxq - psi_px + ln_m + ln_x - ln_gxm)
    d_q = psi_pxq - psi(q) + ln_g - ln_gxm
    d_g = q / g - (px + q) / (g + x * mv)
    return ll, np.stack([d_p, d_q, d_g])


def _spend_rows(x: Any, mean_value: Any, weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The rows a Gamma-Gamma fit uses (x > 0 and mean_value > 0), and the weight of the repeat customers
    left out because their mean spend is 0 or negative (net returns). Inconsistent input is refused:
    x not a whole number >= 0, a mean spend that is infinite, or missing (NaN) for a repeat customer."""
    x = _as_float(x, "x")
    mv = np.asarray(mean_value, dtype=float).reshape(-1)
    if len(mv) != len(x):
        raise ValueFitError(f"x and mean_value differ in length ({len(x)}, {len(mv)}).")
    w = _weights(weight, len(x))
    if (x < 0).any() or (x != np.round(x)).any():
        raise ValueFitError(
            f"x (repeat transactions) must be a whole number >= 0 ({int(((x < 0) | (x != np.round(x))).sum())} "
            "row(s) are not): summarise the customers again (`kedro run --pipelines customer_value`)."
        )
    repeat = (x > 0) & (w > 0)
    if np.isinf(mv).any():
        raise ValueFitError(
            f"mean_value (mean spend of the repeat purchases) is infinite in {int(np.isinf(mv).sum())} row(s): "
            "check the order amounts (AMOUNT) for overflowing values."
        )
    missing = repeat & np.isnan(mv)
    if missing.any():
        raise ValueFitError(
            f"mean_value (mean spend of the repeat purchases) is missing (NaN) for {int(missing.sum())} "
            "customer(s) with repeat purchases (x > 0): the summary is inconsistent. Summarise the customers "
            "again (`kedro run --pipelines customer_value`)."
        )
    keep = repeat & (mv > 0)
    left_out = float(w[repeat & (mv <= 0)].sum())
    return x[keep], mv[keep], w[keep], left_out


def gamma_gamma_log_likelihood(g: GammaGammaParams, x: Any, mean_value: Any, weight: Any = None) -> float:
    """The weighted Gamma-Gamma log-likelihood of the rows with x > 0 and mean_value > 0."""
    _check_params(g, "Gamma-Gamma")
    x, mv, w, _ = _spend_rows(x, mean_value, weight)
    return float(np.dot(w, _gg_terms(np.array([g.p, g.q, g.gamma]), x, mv)[0]))


def fit_gamma_gamma(x: Any, mean_value: Any, weight: Any = None) -> FitResult:
    """Maximum-likelihood Gamma-Gamma fit [FHLb05] on the customers with x > 0 and mean_value > 0.

    ``mean_value`` is the mean net value of a customer's repeat transactions (the first left out, as
    Fader & Hardie do); money is rescaled internally (gamma fitted in units of the mean spend).
    Raises ValueFitError with fewer than MIN_REPEAT_CUSTOMERS usable customers, when the spend is the
    same for everyone (nothing to fit), when q <= 1 (the population mean spend would be infinite),
    or when the fit does not settle.
    """
    started = time.perf_counter()
    x, mv, w, left_out = _spend_rows(x, mean_value, weight)
    (x, mv), w = _collapse([x, mv], w)
    total = float(w.sum())
    if total == 0 and left_out > 0:
        raise ValueFitError(
            f"Every repeat customer's mean spend is 0 or negative ({left_out:g} customers): the Gamma-Gamma "
            "spend fit has no positive spend to learn from. The order amounts are probably missing or "
            "mapped wrong (AMOUNT: a column that is empty or 0? see docs/sources.md), or every repeat "
            "order was returned."
        )
    if total < MIN_REPEAT_CUSTOMERS:
        excluded = f" ({left_out:g} more have a mean spend of 0 or less and are left out)" if left_out else ""
        raise ValueFitError(
            f"The Gamma-Gamma spend fit needs at least {MIN_REPEAT_CUSTOMERS} customers with a repeat "
            f"purchase of positive value; the sample holds {total:g}{excluded}. Wait for repeat purchases "
            "or load a longer history."
        )
    mean = float(np.average(mv, weights=w))
    spread = math.sqrt(float(np.average((mv - mean) ** 2, weights=w)))
    if len(x) < 2 or spread <= 1e-9 * mean:
        raise ValueFitError(
            f"Every repeat customer has the same mean spend ({mean:.6g}, {total:g} customers"
            f"{'' if len(x) > 1 else ' in one summary row'}): the Gamma-Gamma model has no spread to fit. "
            "Check the order amounts (AMOUNT mapped to a constant or a unit price instead of the order value? "
            "see docs/sources.md), or wait for more repeat customers."
        )
    scale = float(np.average(mv, weights=w))
    ms = mv / scale
    groups = np.unique(x, return_inverse=True)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, grads = _gg_terms(params, x, ms, groups)
        value = -float(np.dot(w, ll)) / total
        grad = -(grads @ w) * params / total
        if not np.isfinite(value) or not np.isfinite(grad).all():
            return np.inf, np.zeros(3)
        return value, grad

    starts = [np.log([1.0, 2.0, 1.0]), np.log([5.0, 4.0, 3.0])]
    theta, gradient = _minimise(objective, starts)
    _refuse_gamma_gamma_boundary(theta)  # log-limits in scaled units (gamma in units of the mean spend)
    converged = _refuse_unconverged("Gamma-Gamma", theta, gradient, ("p", "q", "gamma"))
    p, q, g_s = np.exp(theta)
    if q <= 1.0:
        raise ValueFitError(
            f"The Gamma-Gamma fit gives q = {q:.4f} <= 1: the model's population mean spend is infinite "
            "(spend too heavy-tailed for it). Check the order values for outliers or errors."
        )
    params = GammaGammaParams(float(p), float(q), float(g_s * scale))
    ll = float(np.dot(w, _gg_terms(np.array([p, q, g_s * scale]), x, mv)[0]))
    return FitResult(params, ll, int(round(total)), len(x), time.perf_counter() - started, converged)


def expected_order_value(g: GammaGammaParams, x: Any, mean_value: Any) -> np.ndarray:
    """Gamma-Gamma conditional mean spend per transaction [FHLb05 eq. 4 (working-paper numbering);
    Fader & Hardie 2013]:
    (q - 1) / (p x + q - 1) * p gamma / (q - 1) + p x / (p x + q - 1) * m_x
    = (p gamma + p x m_x) / (p x + q - 1). A NULL or negative m_x counts as 0 (net returns);
    at x = 0 it is the population mean p gamma / (q - 1)."""
    _check_params(g, "Gamma-Gamma")
    if g.q <= 1.0:
        raise ValueFitError(
            f"The Gamma-Gamma model has q = {g.q:g} <= 1: its population mean spend is infinite. Refit it "
            "(`kedro run --pipelines customer_value`) or pin another version (customer_value.model_version)."
        )
    x = np.asarray(x, dtype=float)
    mv = np.nan_to_num(np.asarray(mean_value, dtype=float), nan=0.0)
    mv = np.where(x > 0, np.maximum(mv, 0.0), 0.0)
    return (g.p * g.gamma + g.p * x * mv) / (g.p * x + g.q - 1.0)


# ---------------------------------------------------------------------------------------------
# CLV
# ---------------------------------------------------------------------------------------------


def check_clv_settings(horizon_days: Any, annual_discount_rate: Any, margin: Any) -> None:
    if not isinstance(horizon_days, (int, np.integer)) or isinstance(horizon_days, bool) or horizon_days < 1:
        raise ValueFitError(
            f"customer_value.horizon_days must be a whole number of days >= 1, not {horizon_days!r}."
        )
    if not (isinstance(annual_discount_rate, (int, float)) and 0.0 <= float(annual_discount_rate) < 10.0):
        raise ValueFitError(
            f"customer_value.annual_discount_rate must be a yearly rate in [0, 10) (0.1 = 10%), "
            f"not {annual_discount_rate!r}."
        )
    if not (isinstance(margin, (int, float)) and 0.0 <= float(margin) <= 1.0e6) or isinstance(margin, bool):
        raise ValueFitError(f"customer_value.margin must be a number >= 0 (1 = revenue), not {margin!r}.")


def discount_schedule(horizon_days: int, annual_discount_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Period ends t_k = min(k PERIOD_DAYS, horizon), k = 1..ceil(horizon / PERIOD_DAYS), and their
    discount factors (1 + annual_discount_rate) ** (-t_k / DAYS_PER_YEAR)."""
    check_clv_settings(horizon_days, annual_discount_rate, 1.0)
    periods = -(-int(horizon_days) // PERIOD_DAYS)
    ends = np.minimum(np.arange(1, periods + 1) * PERIOD_DAYS, int(horizon_days)).astype(float)
    return ends, (1.0 + float(annual_discount_rate)) ** (-ends / DAYS_PER_YEAR)


def alive_value_lookup(
    m: BGNBDParams, x: Any, T: Any, horizon_days: int, annual_discount_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each (x, T): the purchases an alive customer is expected to make within the horizon,
    U(horizon), and their discounted sum D = sum_k (U(t_k) - U(t_{k-1})) * factor_k (U(0) = 0).

    These carry every 2F1 evaluation and depend on (x, T) only: the warehouse scorer joins them on
    DISTINCT (X, T) and multiplies by P(alive) there.
    """
    ends, factors = discount_schedule(horizon_days, annual_discount_rate)
    x = np.asarray(x, dtype=float).reshape(-1)
    T = np.asarray(T, dtype=float).reshape(-1)
    purchases, discounted = np.empty(x.shape), np.empty(x.shape)
    # (x, T) pairs in blocks of about SERIES_BLOCK lanes (pairs x periods): a block's arrays stay in
    # the CPU's cache and well below glibc's mmap threshold (malloc_tuning.py); each row is its own
    rows = max(1, SERIES_BLOCK // len(ends))
    for lo in range(0, len(x), rows):
        block = slice(lo, lo + rows)
        curve = alive_purchase_curve(m, x[block, None], T[block, None], ends[None, :])
        steps = np.diff(np.concatenate([np.zeros((len(curve), 1)), curve], axis=1), axis=1)
        purchases[block] = curve[:, -1]
        # a row-wise sum, not a matrix product: BLAS may block rows differently by their position in
        # the batch, so the last bit of a row would depend on which other (x, T) pairs came with it
        discounted[block] = (steps * factors[None, :]).sum(axis=1)
    return purchases, discounted


def clv(
    m: BGNBDParams,
    g: GammaGammaParams,
    x: Any,
    t_x: Any,
    T: Any,
    mean_value: Any,
    horizon_days: int,
    annual_discount_rate: float,
    margin: float,
) -> np.ndarray:
    """CLV over the horizon (the warehouse scorer's reference; docs/customer-value-formulas.md, "CLV"):
    margin * E[order value] * P(alive) * sum_k (U(t_k) - U(t_{k-1})) (1 + d)^(-t_k / 365),
    i.e. the expected-purchase curve E[Y(t) | x, t_x, T] cut into PERIOD_DAYS periods, each period's
    purchases discounted from its end (as lifetimes' customer_lifetime_value, in days)."""
    check_clv_settings(horizon_days, annual_discount_rate, margin)
    x, t_x, T = (np.asarray(v, dtype=float).reshape(-1) for v in np.broadcast_arrays(x, t_x, T))
    _, discounted = alive_value_lookup(m, x, T, horizon_days, annual_discount_rate)
    value = expected_order_value(g, x, np.broadcast_to(np.asarray(mean_value, dtype=float), x.shape))
    return float(margin) * value * p_alive(m, x, t_x, T) * discounted


# ---------------------------------------------------------------------------------------------
# Registry record
# ---------------------------------------------------------------------------------------------


@dataclass
class ValueModel:
    """One stored version of the value model: both fits, the scoring settings and the evidence."""

    version: str
    trained_at: Any
    segmentation_model_version: str | None
    bgnbd: FitResult
    gamma_gamma: FitResult
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "READY"

    def to_record(self) -> dict[str, Any]:
        """The row of CUSTOMER_VALUE_MODELS: VERSION, TRAINED_AT, SEGMENTATION_MODEL_VERSION, STATUS,
        PARAMS and METRICS (plain JSON values, NaN/inf as null: ``json.dumps(..., allow_nan=False)`` works)."""
        params = {
            "bgnbd": self.bgnbd.to_dict(),
            "gamma_gamma": self.gamma_gamma.to_dict(),
            "settings": json_safe(self.settings),
            "time_unit": "day",
        }
        for fit in ("bgnbd", "gamma_gamma"):
            values = params[fit]["params"].values()
            if not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueFitError(f"The {fit} parameters {params[fit]['params']} cannot be stored: refit.")
        trained = self.trained_at
        return {
            "VERSION": str(self.version),
            "TRAINED_AT": trained.isoformat() if hasattr(trained, "isoformat") else str(trained),
            "SEGMENTATION_MODEL_VERSION": (
                None if self.segmentation_model_version is None else str(self.segmentation_model_version)
            ),
            "STATUS": str(self.status),
            "PARAMS": json_safe(params),
            "METRICS": json_safe(self.metrics),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ValueModel:
        """The model back from a record (keys in any case; PARAMS/METRICS as dicts or JSON text)."""
        row = {str(k).upper(): v for k, v in dict(record).items()}
        params = _json_value(row.get("PARAMS"), "PARAMS", row.get("VERSION"))
        metrics = _json_value(row.get("METRICS"), "METRICS", row.get("VERSION")) or {}
        try:
            bgnbd = FitResult.from_dict(params["bgnbd"], BGNBDParams)
            gamma_gamma = FitResult.from_dict(params["gamma_gamma"], GammaGammaParams)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"Value model record {row.get('VERSION')!r} lacks or garbles its fitted parameters ({error}): "
                "refit with `kedro run --pipelines customer_value`."
            ) from error
        _check_params(bgnbd.params, "BG/NBD")
        _check_params(gamma_gamma.params, "Gamma-Gamma")
        trained = row.get("TRAINED_AT")
        segmentation = row.get("SEGMENTATION_MODEL_VERSION")
        return cls(
            version=str(row.get("VERSION")),
            trained_at=trained.isoformat() if hasattr(trained, "isoformat") else trained,
            segmentation_model_version=None if _missing(segmentation) else str(segmentation),
            bgnbd=bgnbd,
            gamma_gamma=gamma_gamma,
            settings=dict(params.get("settings") or {}),
            metrics=dict(metrics),
            status=str(row.get("STATUS") or "READY"),
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _json_value(value: Any, name: str, version: Any) -> Any:
    if _missing(value):
        return None
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"Value model record {version!r}: {name} is not valid JSON ({error})."
            ) from error
    return value


def active_value_model(versions: pd.DataFrame, pinned: str | None = None) -> ValueModel | None:
    """The value model scoring uses: ``pinned`` if set, else the newest READY version (None when the
    warehouse holds none yet), the rule of ``model.active_version``.

    ``versions``: the CUSTOMER_VALUE_MODELS rows, newest first (column names in any case). A pin that
    is not stored raises UnknownModelVersionError; a pin names any stored version, READY or not.
    """
    if versions is None or not len(versions):
        if pinned not in (None, ""):
            raise UnknownModelVersionError(
                f"customer_value.model_version pins {pinned!r}, but the warehouse holds no value model yet. "
                "Set customer_value.model_version to null and run `kedro run --pipelines customer_value`."
            )
        return None
    frame = versions.rename(columns={c: str(c).upper() for c in versions.columns})
    available = [str(v) for v in frame["VERSION"]]
    if pinned not in (None, ""):
        if str(pinned) not in available:
            raise UnknownModelVersionError(
                f"customer_value.model_version pins {pinned!r}, which is not in CUSTOMER_VALUE_MODELS. "
                f"Available versions (newest first): {', '.join(available)}. Set customer_value.model_version "
                "to one of them, or to null to use the newest."
            )
        row = frame.iloc[available.index(str(pinned))].to_dict()
        if str(row.get("STATUS") or "READY").upper() == "FAILED":
            ready = [v for v, st in zip(available, frame.get("STATUS", [])) if str(st).upper() == "READY"]
            raise UnknownModelVersionError(
                f"customer_value.model_version pins {pinned!r}, a fit that failed (it holds no model; its "
                f"METRICS say why). Pin a READY version ({', '.join(ready) or 'none stored yet'}), or set "
                "customer_value.model_version to null."
            )
        return ValueModel.from_record(row)
    statuses = frame["STATUS"] if "STATUS" in frame.columns else pd.Series(["READY"] * len(frame))
    for position, status in enumerate(statuses):
        if str(status).upper() == "READY":
            return ValueModel.from_record(frame.iloc[position].to_dict())
    return None


def require_value_model(versions: pd.DataFrame, pinned: str | None = None) -> ValueModel:
    """``active_value_model``, raising MissingModelError (what to run) when there is none."""
    model = active_value_model(versions, pinned)
    if model is None:
        raise MissingModelError(
            "No READY customer value model in the warehouse: fit one with `kedro run` or "
            "`kedro run --pipelines customer_value`."
        )
    return model
