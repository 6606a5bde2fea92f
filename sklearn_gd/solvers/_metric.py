"""The full-batch solvers' preconditioner ``P`` and the optimality measure
taken in its metric."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..objective._protocol import check_moments_finite

__all__ = [
    "dense_metric",
    "feature_scales",
    "metric_inv",
    "GradientMapping",
    "Metric",
]


def feature_scales(mean, second):
    """Each feature's scale in the metric: its variance about ``mean``, or
    its second moment where it has no variance to speak of (a nearly
    constant feature) or there is no intercept (``mean`` None); host
    arrays."""
    if mean is None:
        return second
    var = second - mean * mean
    return np.where(var > 1e-10 * second, var, second)


def dense_metric(m, Dw, Db) -> np.ndarray:
    """``P = [[diag(Dw) + Db m m', Db m], [Db m', Db]]`` (float64 host; the
    diagonal ``diag(Dw)`` without an intercept, ``m`` None)."""
    if m is None:
        return np.diag(Dw)
    d = m.shape[0]
    dense = np.diag(np.append(Dw, Db))
    dense[:d, :d] += Db * np.outer(m, m)
    dense[d, :d] = dense[:d, d] = Db * m
    return dense


def metric_inv(v: torch.Tensor, m, Dw, Db) -> torch.Tensor:
    """``P^-1 v`` column by column, ``m`` of shape (d, 1) (None without an
    intercept) and ``Dw`` of shape (d, 1) or (d, n_columns): a new tensor."""
    if m is None:
        return v / Dw
    d = m.shape[0]
    a = (v[:d] - m * v[d:]) / Dw  # D^-1 T^-T v, coefficient rows
    c = v[d:] / Db
    return torch.cat([a, c - (m * a).sum(0, keepdim=True)])


class Metric:
    """The preconditioner ``P = T' diag(D) T``, with ``T`` the change of
    variables ``(w, b) -> (w, b + m'w)`` (``m`` the columns' means).

    In ``T``'s coordinates the problem is that of centred features (the
    intercept no longer couples with a feature's mean), and ``D`` scales
    each one by its curvature: ``curvature * Var(x_j) + l2`` for the
    coefficients, ``curvature`` for the intercept. Every product with
    ``P`` or ``P^-1`` costs O(n_features * n_outputs).
    """

    def __init__(self, problem, curvature: float, dtype):
        mean, second = problem.oracle.column_moments()
        self.device, self.dtype = second.device, dtype
        # the scales are small vectors: built on the host (one transfer each
        # way), where an operation costs far less than a tensor operation
        both = second if mean is None else torch.stack([second, mean])
        both = both.double().cpu().numpy().reshape(-1, second.shape[0])
        second = both[0]
        check_moments_finite(second, "the columns' second moments")
        d = problem.d
        self.d = d
        fit_intercept = mean is not None and problem.oracle.fit_intercept
        self._m = both[1] if fit_intercept else None
        self.second = second  # the columns' second moments (host)
        var = feature_scales(self._m, second)
        self.m = None if self._m is None else self._tensor(self._m)[:, None]
        l2 = problem.penalty.l2
        self.l2 = l2.cpu().numpy() if isinstance(l2, torch.Tensor) else l2
        self.var = var
        self.set_curvature(curvature)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    # below this many rows of theta, P and P^-1 are kept as dense matrices:
    # one product each instead of a handful of small tensor operations
    dense_max = 512

    def set_curvature(self, curvature: float) -> None:
        """Rescale to the loss's curvature bound (no pass over the data)."""
        Dw = curvature * self.var + self.l2
        # a column of zeros has a zero gradient too: any positive scale will do
        self._Dw = np.where(Dw > 0, Dw, 1.0)
        self.Dw = self._tensor(self._Dw)[:, None]
        self.Db = curvature
        self._dense = self._inv_dense = None
        if self._small:
            # P^-1 = [[diag(1 / Dw), -m / Dw], [-(m / Dw)', m'(m / Dw) + 1 / Db]]
            m, Dw, d = self._m, self._Dw, self.d
            r = m / Dw
            inv = np.diag(np.append(1.0 / Dw, m @ r + 1.0 / curvature))
            inv[d, :d] = inv[:d, d] = -r
            self._inv_host = inv
            self._inv_dense = self._tensor(inv)

    @property
    def _small(self) -> bool:
        return self.m is not None and self.d + 1 <= self.dense_max

    def _dense_host(self) -> np.ndarray:
        return dense_metric(self._m, self._Dw, self.Db)

    def _dense_P(self):
        """``P`` as a dense tensor, built when first needed (the solvers that
        only divide by ``P`` never do)."""
        if self._dense is None and self._small:
            self._dense = self._tensor(self._dense_host())
        return self._dense

    def _tilde(self, v):
        """``T v``'s intercept row (None without an intercept)."""
        if self.m is None:
            return None
        return v[self.d :] + (self.m * v[: self.d]).sum(0, keepdim=True)

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``P v``, a new tensor."""
        if self._dense_P() is not None:
            return self._dense @ v
        d = self.d
        if self.m is None:
            return v * self.Dw
        tb = self._tilde(v) * self.Db
        return torch.cat([v[:d] * self.Dw + self.m * tb, tb])

    def matrix(self) -> np.ndarray:
        """``P`` as a dense float64 host array (for a few features only)."""
        return self._dense_host()

    def inner(self, a, b) -> float:
        """``a' P b``, from the factors: ``(T a)' D (T b)``. Through the
        dense ``P`` in float32 the ``Db m m'`` block swamps ``diag(Dw)``
        where the means are large against the spreads, and ``a' P a`` came
        out negative: FISTA's curvature term then ran its backtracking
        uphill (sweep seed 266)."""
        d = self.d
        value = (a[:d] * b[:d] * self.Dw).sum()
        if self.m is not None:
            value = value + (self._tilde(a) * self._tilde(b)).sum() * self.Db
        return float(value)

    def inv(self, v: torch.Tensor) -> torch.Tensor:
        """``P^-1 v``, a new tensor."""
        if self._inv_dense is not None:
            return self._inv_dense @ v
        return metric_inv(v, self.m, self.Dw, self.Db)

    def inv_host(self, v: np.ndarray) -> np.ndarray:
        """``P^-1 v`` for a float64 host array (few features)."""
        if self._small:
            return self._inv_host @ v
        if self.m is None:
            return v / self._Dw[:, None]
        return self.inv(self._tensor(v)).double().cpu().numpy()

    def prox_l1(self, z: torch.Tensor, thresh: float) -> None:
        """``z`` <- the proximal point of ``thresh * ||w||_1`` in ``P``'s
        metric, in place: soft-thresholding of each coefficient by
        ``thresh / D_j``, and the intercept moved so that ``b + m'w`` is
        unchanged (the intercept is free, not penalised)."""
        d = self.d
        W = z[:d]
        shrunk = torch.sign(W) * torch.clamp(W.abs() - thresh / self.Dw, min=0)
        if self.m is not None:
            z[d:] -= (self.m * (shrunk - W)).sum(0, keepdim=True)
        W.copy_(shrunk)


class GradientMapping:
    """The full-batch solvers' optimality measure, taken at any iterate (for
    the solvers that do not measure their own): the norm of the proximal
    gradient mapping in ``P^-1``'s metric, ``||theta - prox(theta - P^-1
    g)||_P``, relative to its value at the start. One full-batch gradient a
    measure; ``P`` costs one pass over ``X``, once."""

    def __init__(self, curvature: float):
        self.curvature = curvature

    def start(self, problem, theta) -> None:
        self.problem = problem
        self.P = Metric(problem, self.curvature, theta.dtype)
        self.idx = problem.oracle.full_batch()
        self.first = self._norm(theta) or 1.0

    def _norm(self, theta) -> float:
        _, _, grad = self.problem.evaluate(theta, self.idx, with_l2=True)
        z = theta - self.P.inv(grad)
        if self.problem.penalty.l1:
            self.P.prox_l1(z, self.problem.penalty.l1)
        diff = theta - z
        return math.sqrt(max(self.P.inner(diff, diff), 0.0))

    def __call__(self, theta) -> float:
        return self._norm(theta) / self.first
