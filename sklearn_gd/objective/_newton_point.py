"""The Newton-refined dual point of a smooth loss: the plain point moved
by the loss's curvature along Newton's step on the optimality equations."""

from __future__ import annotations

import numpy as np
import torch

from ._gap_rows import correlations, correlations_rows, weighted_grams
from ._kink_points import optimality_equations
from ._linalg import guarded_solve

# the Newton-refined dual point's Hessians cost n (d + 1)^2 multiply-adds an
# output: computed where that is at most this many, or this many passes over
# X (a certificate otherwise costing one or two)
NEWTON_MAX_WORK = 10**8
NEWTON_MAX_PASSES = 64


def newton_betas(at, beta):
    """``beta`` refined by the loss's curvature, ``beta + h (X~ step)``
    (clipped into its box), ``step`` each output's Newton step on the
    optimality equations (:func:`~._kink_points.optimality_equations`: the
    coordinates an L1 part keeps, the intercept) with the data term's
    Hessian ``X~' diag(s h) X~`` plus the L2 part, ``h`` the loss's second
    derivative; and the entries strictly inside their boxes on the curved
    part (``h > 0``), the ones an unpenalised projection may move. None
    where the Hessians cost too much (``NEWTON_MAX_WORK``).

    The plain point ``beta = l'(p)`` leaves the penalty's conjugate with
    the gradient's residual: a gap of about ``||grad||^2 / (2 l2)`` with an
    L2 part, which a weak ``l2`` makes a thousand times the objective's
    true gap (the L1 ball's scaling and the intercept's centring likewise).
    The refined point moves that residual onto the loss's conjugate, whose
    curvature is ``1 / h``: its gap is then about Newton's decrement, the
    estimate of the true gap that the data's own curvature gives.

    Where the solver gave its own Newton direction at ``theta``
    (``at.direction``: Newton's method, whose Hessian and gradient are
    these equations' divided by ``S``), that is the step: no Hessian is
    built and nothing solved here, one product with X."""
    if at.direction is not None:
        h = at.second
        if h is None:
            h = at.loss.second_derivative(at.Y, at.P).double()
        Z = at.direction.to(device=beta.device, dtype=torch.float64)
        return _refined(at, beta, h, correlations_rows(at.oracle, at.pieces, Z))
    n, k = beta.shape
    q = at.d + bool(at.oracle.fit_intercept)
    work = n * q * q * k
    if work > max(NEWTON_MAX_WORK, NEWTON_MAX_PASSES * n * q * k):
        return None
    h = at.loss.second_derivative(at.Y, at.P).double()
    grams = weighted_grams(at.oracle, at.pieces, at.s * h)
    sb = at.s * beta
    r = correlations(at.oracle, at.pieces, sb).reshape(at.d, -1)
    if at.oracle.fit_intercept:
        r = torch.cat([r, sb.sum(0, keepdim=True)])
    r = r.double().cpu().numpy()
    steps = np.zeros((q, k))
    for c, (cols, rhs) in enumerate(optimality_equations(at)):
        if not len(cols):
            continue
        A = grams[c][np.ix_(cols, cols)]
        A[np.arange(len(cols)), np.arange(len(cols))] += (
            at.S * at.pen.l2 * (cols < at.d)
        )
        scale = np.sqrt(np.maximum(np.diag(A), 1e-300))
        z, ok = guarded_solve(
            A[None], (r[cols, c] - rhs)[None], lambda j: np.diag(scale**2)
        )
        if ok[0]:
            steps[cols, c] = -z[0]
    Z = torch.as_tensor(steps, dtype=torch.float64, device=beta.device)
    return _refined(at, beta, h, correlations_rows(at.oracle, at.pieces, Z))


def _refined(at, beta, h, moved):
    """``beta + h moved`` clipped into the box (``moved``: ``X~`` times the
    step, per row), and the entries that the unpenalised projection may
    move (see :func:`newton_betas`; None with a penalty, which moves
    none)."""
    if at.joint:
        return _refined_joint(at, beta, h, moved), None
    refined = torch.minimum(torch.maximum(beta + h * moved, at.lo), at.hi)
    if at.pen.l1 or at.pen.l2:
        return refined, None
    room = 1e-8 * (beta.abs() + 1.0)
    movable = (h > 0) & (refined > at.lo + room) & (refined < at.hi - room)
    return refined, movable


def _refined_joint(at, beta, probs, moved):
    """A softmax's refined point: ``beta`` moved by each row's Hessian
    ``diag(s) - s s'`` (``probs``: ``s``) times ``moved``, a move whose
    row sums are 0, taken as far towards it as keeps ``beta + y`` in the
    simplex (a row's fraction of it: the largest up to 1 with no entry
    below 0), so that each row stays a dual point of its loss."""
    delta = probs * moved
    delta = delta - probs * delta.sum(1, keepdim=True)
    room = (beta + at.Y).clamp_min(0.0)
    need = (-delta).clamp_min(0.0)
    ratio = torch.where(need > 0, room / need.clamp_min(1e-300), torch.inf)
    frac = ratio.amin(1, keepdim=True).clamp(max=1.0)
    return beta + frac * delta
