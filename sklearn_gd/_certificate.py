"""The duality gap of a piecewise-linear loss: :class:`Smoothing`'s certificate.

For ``min (1 / S) sum_i s_i l(y_i, x_i w + b) + l1 ||w||_1 + l2 / 2 ||w||^2``
every ``beta`` with ``beta_i`` in the range of ``l``'s derivatives (a box
holding 0: each loss here has its minimum 0), ``sum_i s_i beta_i = 0``
(with an intercept), and, without an L2 part, ``||X' s beta / S||_inf <=
l1`` is a dual point, whose value bounds the optimum from below.
The smoothed loss's derivatives at the iterate are such a point up to the
constraints, which are then met by moves that keep ``beta`` in its box:

* the intercept's sum, by moving each ``beta_i`` towards the bound the sum
  must go to, in proportion to its room there;
* with an L2 part, none more (its conjugate is finite everywhere);
* with an L1 part only, a scaling of each output's ``beta`` towards 0 (the
  constraint set is star-shaped about 0);
* with no penalty (``X' s beta = 0``), the smallest correction that meets
  the equations (a least-squares solve of ``n_features + 1`` unknowns), then
  a scaling back into the box.

At the smoothed optimum the constraints hold already (up to the smoothing's
own optimality), so each move is small and the gap is a tight bound.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._linalg import guarded_solve

__all__ = ["duality_gap"]

# the unpenalised projection's normal equations are (n_features + 1)^2 floats
# and one pass over X: beyond this many features the fit stays uncertified
PROJECTION_MAX_FEATURES = 2048


def _predictions(oracle, pieces, theta, d):
    """Every row's predictions and targets, one piece of X at a time."""
    Ps, Ys = [], []
    for j, piece in enumerate(pieces):
        Xb, _ = oracle._rows(piece)
        P = Xb @ theta[:d]
        Ps.append(P + theta[d] if oracle.fit_intercept else P)
        Ys.append(oracle.Y[oracle._index(piece)])
        oracle._rows_done(pieces, j)
    return torch.cat(Ps), torch.cat(Ys)


def _correlations(oracle, pieces, sb: torch.Tensor) -> torch.Tensor:
    """``X' sb`` (shape (d, n_outputs)), one piece of X at a time."""
    out, start = None, 0
    for j, piece in enumerate(pieces):
        _, XbT = oracle._rows(piece)
        m = XbT.shape[1]
        part = XbT @ sb[start : start + m]
        out = part if out is None else out + part
        start += m
        oracle._rows_done(pieces, j)
    return out


def _gram(oracle, pieces, s2: torch.Tensor) -> np.ndarray:
    """``X~' diag(s2) X~`` (float64 host), ``X~`` X with a column of ones
    when the model has an intercept."""
    out, start = 0.0, 0
    for j, piece in enumerate(pieces):
        Xb, _ = oracle._rows(piece)
        Xb = (Xb if Xb.layout == torch.strided else Xb.to_dense()).double()
        if oracle.fit_intercept:
            Xb = torch.cat([Xb, torch.ones_like(Xb[:, :1])], 1)
        w = s2[start : start + Xb.shape[0], None].double()
        out = out + (Xb.T @ (w * Xb)).cpu().numpy()
        start += Xb.shape[0]
        oracle._rows_done(pieces, j)
    return out


def _centred(beta, s, lo, hi):
    """``beta`` with ``sum(s beta) = 0`` per output, each entry moved towards
    the bound the sum must go to, in proportion to its room there (None
    where the box cannot hold the sum)."""
    need = (s * beta).sum(0)
    bound = torch.where(need > 0, lo, hi)
    total = (s * (beta - bound)).sum(0)
    if bool((need.abs() > total.abs()).any()):
        return None
    share = torch.where(total != 0, need / total, torch.zeros_like(need))
    return beta - (beta - bound) * share


def _into_box(beta, lo, hi):
    """The largest ``c <= 1`` per output with ``c beta`` in ``[lo, hi]``."""
    tiny = torch.finfo(beta.dtype).tiny
    up = torch.where(beta > hi, hi / beta.clamp_min(tiny), torch.ones_like(beta))
    down = torch.where(beta < lo, lo / beta.clamp_max(-tiny), torch.ones_like(beta))
    return torch.minimum(up, down).clamp(0.0, 1.0).amin(0)


def _projected(oracle, pieces, beta, s, lo, hi):
    """``beta`` corrected to ``X~' s beta = 0`` by its smallest change, then
    scaled back into its box (None where X has too many features)."""
    if oracle.X.shape[1] + 1 > PROJECTION_MAX_FEATURES:
        return None
    sb = s * beta
    r = _correlations(oracle, pieces, sb)
    if oracle.fit_intercept:
        r = torch.cat([r, sb.sum(0, keepdim=True)])
    A = _gram(oracle, pieces, (s * s)[:, 0])
    q = A.shape[0]
    R = r.double().cpu().numpy().T  # (n_outputs, q)
    z, _ = guarded_solve(np.repeat(A[None], R.shape[0], 0), R, lambda j: np.eye(q))
    Z = torch.as_tensor(z.T, dtype=beta.dtype, device=beta.device)
    # beta -= diag(s) X~ z: the minimum-norm solution of X~' s delta = -r
    correction = _correlations_rows(oracle, pieces, Z)
    beta = beta - s * correction
    return beta * _into_box(beta, lo, hi)


def _correlations_rows(oracle, pieces, Z):
    """``X~ Z`` row by row (``Z`` of shape (d [+ 1], n_outputs))."""
    d = oracle.X.shape[1]
    parts = []
    for j, piece in enumerate(pieces):
        Xb, _ = oracle._rows(piece)
        part = Xb @ Z[:d]
        parts.append(part + Z[d:] if oracle.fit_intercept else part)
        oracle._rows_done(pieces, j)
    return torch.cat(parts)


def duality_gap(problem, theta, base, smoothed) -> float:
    """``(P(theta) - D(beta)) / |P(theta)|`` for the non-smooth loss
    ``base``, with ``beta`` its smoothing's (``smoothed``) derivatives at
    ``theta`` made dual feasible (see the module's docstring); ``inf`` where
    that is not possible."""
    shape = base.pieces()
    pen, oracle, d = problem.penalty, problem.oracle, problem.d
    pieces = list(oracle._pieces(oracle.full_batch()))
    P, Y = _predictions(oracle, pieces, theta, d)
    s = oracle.sw
    s = torch.ones_like(P[:, :1]) if s is None else s[:, None].to(P.dtype)
    S = float(s.sum())
    beta = smoothed.derivative(Y, P)
    # beta's range: h'(u) in [a_0, a_J], u = y p (margin) or y - p
    a0, aJ = shape.slopes[0], shape.slopes[-1]
    sign = Y if shape.margin else -torch.ones_like(Y)
    lo, hi = torch.minimum(sign * a0, sign * aJ), torch.maximum(sign * a0, sign * aJ)
    if not pen.l1 and not pen.l2:
        beta = _projected(oracle, pieces, beta, s, lo, hi)
    elif oracle.fit_intercept:
        beta = _centred(beta, s, lo, hi)
    if beta is None:
        return math.inf
    v = -_correlations(oracle, pieces, s * beta) / S
    if not pen.l2 and pen.l1:  # into the L1 ball of radius l1, per output
        scale = (pen.l1 / v.abs().amax(0).clamp_min(1e-300)).clamp(max=1.0)
        beta, v = beta * scale, v * scale
    primal = (s * base.value(Y, P)).sum() / S + pen.total(theta[:d])
    dual = -(s * _conjugate(shape, beta, sign, Y)).sum() / S
    if pen.l2:
        dual = dual - (torch.clamp(v.abs() - pen.l1, min=0) ** 2).sum() / (2 * pen.l2)
    gap = float(primal - dual)
    return max(gap, 0.0) / max(abs(float(primal)), 1e-300)


def _conjugate(shape, beta, sign, Y):
    """``l*(beta)`` per row: ``h*(h'(u))``, ``h*(t) = max_k (k t - h(k))``
    over the kinks ``k`` (plus ``beta y`` for a residual loss)."""
    slope = beta * sign  # h'(u)
    conj = None
    for k in shape.kinks:
        hk = max(a * k + c for a, c in zip(shape.slopes, shape.intercepts))
        term = k * slope - hk
        conj = term if conj is None else torch.maximum(conj, term)
    return conj if shape.margin else conj + beta * Y
