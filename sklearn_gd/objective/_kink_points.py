"""The dual point of a piecewise-linear loss's kink set: rows away from a
kink keep their piece's slope, the free rows solve a small LP on the host;
and such a loss's conjugate."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linprog, minimize

from ._gap_rows import correlations, gather_rows


def piecewise_conjugate(shape, beta, sign, Y):
    """``l*(beta)`` per row: ``h*(h'(u))``, ``h*(t) = max_k (k t - h(k))``
    over the kinks ``k`` (plus ``beta y`` for a residual loss)."""
    slope = beta * sign  # h'(u)
    conj = None
    for k in shape.kinks:
        hk = max(a * k + c for a, c in zip(shape.slopes, shape.intercepts))
        term = k * slope - hk
        conj = term if conj is None else torch.maximum(conj, term)
    return conj if shape.margin else conj + beta * Y


# the kink set's least-squares problems gather at most this many entries of
# X (their rows times the coordinates of the optimality equations) to the host
KINK_MAX_ENTRIES = 4_000_000
# each output's free set: the rows nearest a kink, this many times as many
# as the equations they must meet (an LP vertex has as many rows at kinks),
# or the rows the smoothing keeps on its curved part, up to twice that: the
# LP over a larger set is never worse, only slower (one set, as each check
# of a fit that cannot be certified pays for it)
KINK_SIZE = 4
# with an L2 part, the free entries' least-gap problem (a dense quadratic
# program, cubic in their number) is solved for at most this many of them
KINK_QP_MAX = 400


def _kink_split(at):
    """Per row and output: the distance of ``u`` to its nearest kink, the
    dual value of the linear piece ``u`` is on, and the box ``beta`` spans
    at that kink (the slopes on its two sides)."""
    shape = at.shape
    U = at.Y * at.P if shape.margin else at.Y - at.P
    kinks = torch.tensor(shape.kinks, dtype=U.dtype, device=U.device)
    slopes = torch.tensor(shape.slopes, dtype=U.dtype, device=U.device)
    delta, near = (U[..., None] - kinks).abs().min(-1)
    fixed = at.sign * slopes[(U[..., None] > kinks).sum(-1)]
    left, right = at.sign * slopes[near], at.sign * slopes[near + 1]
    # a free beta's Fenchel-Young gap s (l(p) + l*(beta) - beta p) is linear
    # in beta on its box: l*(beta) = k sign beta - h(k) (+ beta y) there
    offset = 0.0 if shape.margin else at.Y
    cost = at.s * (kinks[near] * at.sign + offset - at.P)
    lo, hi = torch.minimum(left, right), torch.maximum(left, right)
    return delta, fixed, lo, hi, cost


def optimality_equations(at):
    """Each output's optimality equalities ``(X~' s beta)_j = S r_j``: its
    coordinates ``j`` (all without an L1 part, else where ``w_j != 0``; the
    intercept as ``d``) and ``S r_j = -S (l1 sign(w_j) + l2 w_j)`` (0 for
    the intercept)."""
    pen, d = at.pen, at.d
    w = at.theta[:d].reshape(d, -1).double().cpu().numpy()
    out = []
    for c in range(w.shape[1]):
        cols = np.flatnonzero(w[:, c]) if pen.l1 else np.arange(d)
        rhs = -at.S * (pen.l1 * np.sign(w[cols, c]) + pen.l2 * w[cols, c])
        if at.oracle.fit_intercept:
            cols, rhs = np.append(cols, d), np.append(rhs, 0.0)
        out.append((cols, rhs))
    return out


def _free_sets(at, delta, equations, mu):
    """Each output's free set: the rows nearest a kink (see KINK_SIZE)."""
    n, gaps = delta.shape[0], np.diff(at.shape.slopes)
    curved = (delta < mu * float(gaps.max())).sum(0).tolist()
    nearest = []
    for c, (cols, _) in enumerate(equations):
        m = KINK_SIZE * len(cols)
        q = min(n, max(m, min(curved[c], 2 * m)))
        nearest.append(torch.topk(delta[:, c], q, largest=False).indices.cpu().numpy())
    return nearest


def _cheapest(at, XF, base, cols, equations, cost, lo, hi):
    """The free entries with the least Fenchel-Young gap (``cost' x``, linear
    on each entry's box) that meet the equalities and, with an L1 part,
    ``|X' s beta|_j <= S l1`` on the other gathered coordinates: a small LP
    (HiGHS), its equalities then met to rounding by the least-norm change of
    its entries inside their boxes (None where it fails)."""
    eqs = np.searchsorted(cols, equations[0])
    if not len(eqs):
        return None
    M, t = XF[:, eqs].T, equations[1] - base[eqs]
    others = np.setdiff1d(np.arange(min(len(cols), at.d)), eqs)
    ub = {}
    if at.pen.l1 and len(others):
        A = XF[:, others].T
        bound = at.S * at.pen.l1
        ub = dict(
            A_ub=np.vstack([A, -A]),
            b_ub=np.concatenate([bound - base[others], bound + base[others]]),
        )
    try:
        res = linprog(cost, A_eq=M, b_eq=t, bounds=np.c_[lo, hi], method="highs", **ub)
    except ValueError:
        return None
    if res.status != 0:
        return None
    x = res.x
    inside = (x > lo) & (x < hi)
    if inside.any():  # HiGHS meets its constraints to 1e-7 only
        x = x.copy()
        x[inside] += np.linalg.lstsq(M[:, inside], t - M @ x, rcond=None)[0]
    return np.clip(x, lo, hi)


def _least_gap(at, XF, base, cols, equations, cost, lo, hi, x0):
    """With an L2 part, the free entries with the least gap in all: the
    loss's Fenchel-Young gap (``cost' x``) plus the penalty's, which is
    ``(u_j - S r_j)^2 / (2 l2 S)`` on an equation's coordinate (``u = X~' s
    beta``) and ``S (|u_j| / S - l1)_+^2 / (2 l2)`` on another gathered one,
    both times ``S``, with the intercept's equality kept: a small convex
    problem in the free entries' boxes (SLSQP from ``x0``, up to
    ``KINK_QP_MAX`` entries). The equalities' exact solution
    (:func:`_cheapest`) is the best point only at the exact optimum: at fits
    within 1e-8 of it, they could be met only by moving rows far from their
    kinks (sweep seed 1300: a gap of 3e-4), or not at all within the boxes
    (seed 1196: 5e-3), where a miss costs only its square over ``l2``."""
    pen, S, d = at.pen, at.S, at.d
    eqs = np.searchsorted(cols, equations[0])
    rhs = np.zeros(len(cols))
    rhs[eqs] = equations[1]
    on = np.zeros(len(cols), dtype=bool)
    on[eqs] = True
    # the intercept's slot is gathered without an intercept too (L1 checks)
    intercept = (np.asarray(cols) == d) & bool(at.oracle.fit_intercept)
    on &= ~intercept  # the intercept's sum is the constraint
    off = ~on & (np.asarray(cols) < d)
    l1, l2 = float(pen.l1), float(pen.l2)

    def gap_and_gradient(x):
        u = base + XF.T @ x
        e = np.where(on, u - rhs, 0.0)
        excess = np.where(off, np.maximum(np.abs(u) - S * l1, 0.0), 0.0)
        value = cost @ x + ((e * e).sum() + (excess * excess).sum()) / (2 * l2 * S)
        du = (e + np.sign(u) * excess) / (l2 * S)
        return value, cost + XF @ du

    constraints = ()
    if intercept.any():
        a = XF[:, intercept][:, 0]
        b0 = float(base[intercept][0])
        constraints = dict(
            type="eq", fun=lambda x: np.array([b0 + a @ x]), jac=lambda x: a[None]
        )
    x0 = np.clip(x0, lo, hi)
    f0 = gap_and_gradient(x0)[0]
    scale = 1.0 / max(abs(f0), 1e-300)

    def scaled(x):
        value, gradient = gap_and_gradient(x)
        return (value - f0) * scale, gradient * scale

    res = minimize(
        scaled,
        x0,
        jac=True,
        method="SLSQP",
        bounds=np.c_[lo, hi],
        constraints=constraints,
        options=dict(maxiter=200, ftol=1e-16),
    )
    return np.clip(res.x, lo, hi)


def kink_betas(at, mu, least_gap: bool = False, outputs=None):
    """A dual point of the kink set at ``theta``: each row farther from a
    kink than its output's free set has its piece's slope, and the free rows
    the values in their boxes that meet the optimality conditions with the
    least gap (:func:`_cheapest`; with ``least_gap`` and an L2 part, the
    point of least gap in all, :func:`_least_gap`, a costlier problem kept
    for a fit's last check); and the free entries strictly inside
    their boxes, which alone the unpenalised projection may move (None
    where the problems are too large to gather). ``outputs`` (booleans):
    the outputs to solve for, the others keeping their pieces' slopes (the
    caller keeps a better point of theirs); None: all."""
    delta, fixed, flo, fhi, cost = _kink_split(at)
    equations = optimality_equations(at)
    nearest = _free_sets(at, delta, equations, mu)
    todo = range(len(equations))
    if outputs is not None:
        todo = [c for c in todo if outputs[c]]
        if not todo:
            return None
    rows = np.unique(np.concatenate([nearest[c] for c in todo]))
    cols = np.arange(at.d + 1)  # every coordinate, for the L1 part's checks
    if not at.pen.l1 or len(rows) * len(cols) > KINK_MAX_ENTRIES:
        cols = np.unique(np.concatenate([equations[c][0] for c in todo]))
    if len(rows) * len(cols) > KINK_MAX_ENTRIES:
        return None
    XR = gather_rows(at, rows, cols)
    sb = at.s * fixed
    r = correlations(at.oracle, at.pieces, sb).reshape(at.d, -1)
    r = torch.cat([r, sb.sum(0, keepdim=True)]).double().cpu().numpy()
    host = [t.double().cpu().numpy() for t in (fixed, flo, fhi, cost, at.s[:, 0])]
    beta, movable = fixed.clone(), torch.zeros_like(fixed, dtype=torch.bool)
    for c in todo:
        eqs = equations[c]
        F = np.sort(nearest[c])
        XF = XR[np.searchsorted(rows, F)] * host[4][F, None]
        fix, lo, hi, g = (h[F, c] for h in host[:4])
        # X~' s beta = r - XF' fixed_F + XF' beta_F
        base = r[cols, c] - XF.T @ fix
        x = _cheapest(at, XF, base, cols, eqs, g, lo, hi)
        if x is None:  # the equalities cannot be met here: the pieces'
            x = fix  # slopes, as far as the repair makes them feasible
        if least_gap and at.pen.l2 and len(F) <= KINK_QP_MAX:
            x = _least_gap(at, XF, base, cols, eqs, g, lo, hi, x)
        room = 1e-8 * (hi - lo)
        idx = torch.as_tensor(F, device=fixed.device)
        beta[idx, c] = torch.as_tensor(x).to(fixed)
        inside = torch.as_tensor((x > lo + room) & (x < hi - room))
        movable[idx, c] = inside.to(fixed.device)
    return beta, movable
