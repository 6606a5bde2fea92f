"""The alpha grids of the cross-validation estimators.

With an L1 part (``penalty="l1"``, or ``"elasticnet"`` with ``l1_ratio >
0``) the grid is LassoCV's: ``n_alphas`` values spaced evenly in log from
``alpha_max`` down to ``eps * alpha_max``, where ``alpha_max`` is the
smallest alpha whose solution is all zeros,

    alpha_max = max_j |sum_i s_i x_ij L'(y_i, b0)| / (sum_i s_i * l1_ratio)

with ``b0`` the best intercept-only model (the weighted mean of ``y`` for the
squared loss, where this is LassoCV's formula; the log of the class
frequencies for softmax; found by bisection for any other convex loss).

Without an L1 part no alpha gives zeros, and the grid is spaced evenly in
log over six decades below the curvature of the data term, from ``c`` down
to ``1e-6 * c`` with ``c = curvature(L) * mean_j var(x_j)`` (1 for
standardised features and the squared loss): from a model shrunk to about
half its size (the penalty as curved as the data term along an average
direction) to one that the penalty barely changes. (RidgeCV's default
alphas, 0.1 to 10 in Ridge's units, are below ``c`` for any ten samples or
more. Larger alphas are not only rarely chosen: they shrink the automatic
learning rate, so that the unpenalised intercept of unscaled data learns
slowly, and a model that has barely learnt may win a test fold by chance.)
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import torch

from ..model._losses import SquaredError

__all__ = [
    "L2_DECADES",
    "alpha_grid",
    "explicit_alphas",
    "l1_ratios",
    "penalty_shares",
]

_F64 = torch.float64

# the L2 grid: from L2_DECADES[0] * c down to L2_DECADES[1] * c
L2_DECADES = (1.0, 1e-6)


def explicit_alphas(alphas) -> np.ndarray | None:
    """The alphas to search, checked, in decreasing order (None where
    ``alphas`` is a number of them: the grid comes from the data)."""
    if isinstance(alphas, Integral):
        return None
    out = np.asarray(alphas, dtype=np.float64)
    if out.ndim != 1 or out.size == 0 or not np.all(np.isfinite(out)):
        raise ValueError(f"alphas must be a non-empty 1-D array, got {out}.")
    if np.any(out < 0):
        raise ValueError(f"alphas must be non-negative, got {out}.")
    return np.sort(out)[::-1]


def l1_ratios(l1_ratio, penalty) -> np.ndarray:
    """The l1_ratios to search, checked (``l1_ratio``: the parameter's
    value, None standing for 0)."""
    ratios = np.atleast_1d(np.asarray(l1_ratio, dtype=np.float64))
    if ratios.ndim != 1 or ratios.size == 0:
        raise ValueError(f"l1_ratio must be a float or a 1-D list, got {ratios}.")
    if np.any((ratios < 0) | (ratios > 1)):
        raise ValueError(f"l1_ratio values must be in [0, 1], got {ratios}.")
    if ratios.size > 1 and penalty != "elasticnet":
        raise ValueError(
            f"A list of l1_ratio needs penalty='elasticnet' (got penalty="
            f"{penalty!r}, which does not read l1_ratio)."
        )
    return ratios


def penalty_shares(penalty, ratio):
    """The L1 and L2 parts' shares of alpha, for ``l1_ratio`` ``ratio``."""
    l1 = {None: 0.0, "l2": 0.0, "l1": 1.0}.get(penalty, ratio)
    l2 = {None: 0.0, "l2": 1.0, "l1": 0.0}.get(penalty, 1.0 - ratio)
    return l1, l2


def alpha_grid(
    oracle,
    Y: torch.Tensor,
    sample_weight: torch.Tensor | None,
    loss,
    *,
    l1_ratio: float,
    n_alphas: int,
    eps: float,
    fit_intercept: bool,
    moments=None,
) -> np.ndarray:
    """The decreasing grid of ``n_alphas`` alphas for one ``l1_ratio``.

    ``oracle`` is a column row oracle over all the samples (it serves
    ``xt_dot`` and ``feature_moments``); ``Y`` the float targets it trains on;
    ``l1_ratio`` the weight of the L1 part (1 for ``penalty="l1"``, 0
    without one). ``moments``, the :class:`~sklearn_gd.objective._cv_oracles.Moments`
    of all rows under the squared loss, give the grid without a pass over
    ``X``.
    """
    n = Y.shape[0]
    Y = Y.to(_F64)
    s = (
        torch.ones(n, dtype=_F64, device=Y.device)
        if sample_weight is None
        else sample_weight.to(_F64)
    )
    wsum = s.sum()
    if l1_ratio > 0:
        if moments is not None:  # X' (y - b0) s / sum(s) of the squared loss
            G = moments.Cc[0]
            if not fit_intercept:
                G = G + moments.mx[0][:, None] * moments.my[0][None, :]
        else:
            D0 = intercept_only_derivative(Y, s, loss, fit_intercept)
            G = oracle.xt_dot(D0 * s[:, None]) / wsum
        alpha_max = float(G.abs().max()) / l1_ratio
        resolution = np.finfo(np.float64).resolution
        if not alpha_max > resolution:
            return np.full(n_alphas, resolution)
        return np.geomspace(alpha_max, alpha_max * eps, num=n_alphas)
    if moments is not None:
        mean, var = moments.mx[0], torch.diagonal(moments.Gc[0])
    else:
        mean, var = oracle.feature_moments(s)
    # the curvature of the data term in w: the covariance of x, or without an
    # intercept its second moment
    second = var if fit_intercept else var + mean * mean
    scale = loss.curvature * float(second.mean())
    if not (math.isfinite(scale) and scale > 0):
        scale = 1.0
    hi, lo = L2_DECADES
    return np.geomspace(hi * scale, lo * scale, num=n_alphas)


def intercept_only_derivative(Y, s, loss, fit_intercept) -> torch.Tensor:
    """``L'(y_i, b0)``: the loss derivative at the best intercept-only model
    (``b0 = 0`` without an intercept), float64 of ``Y``'s shape."""
    n, k = Y.shape
    if not fit_intercept:
        return loss.derivative(Y, torch.zeros_like(Y))
    if loss.joint:  # softmax: b0 = log of the class frequencies
        freq = (s[:, None] * Y).sum(0) / s.sum()
        return loss.derivative(Y, torch.log(freq).expand(n, k))
    if type(loss) is SquaredError:  # b0 = the weighted mean
        return loss.derivative(Y, ((s[:, None] * Y).sum(0) / s.sum()).expand(n, k))

    def slope(b):  # sum_i s_i L'(y_i, b), non-decreasing in b (convex L)
        return (loss.derivative(Y, b.expand(n, k)) * s[:, None]).sum(0)

    lo, hi = Y.amin(0) - 1.0, Y.amax(0) + 1.0
    for _ in range(64):  # widen until the root is bracketed
        low, high = slope(lo) > 0, slope(hi) < 0
        if not bool((low | high).any()):
            break
        width = hi - lo
        lo = torch.where(low, lo - width, lo)
        hi = torch.where(high, hi + width, hi)
    for _ in range(64):  # to the float64 resolution of the bracket
        mid = 0.5 * (lo + hi)
        below = slope(mid) < 0
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
        if bool(((hi - lo) <= 1e-15 * (1.0 + mid.abs())).all()):
            break
    return loss.derivative(Y, (0.5 * (lo + hi)).expand(n, k))
