"""Duality gaps: :class:`Smoothing`'s certificate of a piecewise-linear loss,
and the smooth losses' (:func:`smooth_duality_gap`), which the stopping
rule asks for before it takes a small gradient mapping for convergence.

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

Not so at a tiny smoothing width: rows at a kink then get derivatives that
meet ``X' s beta / S + l1 sign(w) + l2 w = 0`` only roughly, and the moves
above (the 1 / l2 of a weak L2 part, the scaling into the L1 ball) turn
small misses into gaps of 0.03 to 2e5 at fits within 1e-6 of the optimum.
Where that gap is above the target, a second point is built from the
primal's kink set: rows farther from a kink than the free set keep their
piece's slope (their Fenchel-Young gap is 0), and the free rows (about as
many as there are equations, at an LP vertex) get the values that meet the
equalities at the least Fenchel-Young gap, a small LP on the host; that
point then goes through the same moves, so it counts only once dual
feasible. Every sum is in float64: in float32 a near-exact fit's gap
rounds to 0.

A smooth loss has its own conjugate (:meth:`~sklearn_gd.model._losses.Loss.
conjugate`, finite on :meth:`~sklearn_gd.model._losses.Loss.dual_box`, a box that
may be unbounded: the intercept's move then gives an unbounded entry a
finite room; a joint loss's rows are simplices, which the intercept's move
mixes with one distribution instead and every scaling keeps whole). Its
derivatives at ``theta`` are the first dual point, and the Newton-refined
one (:func:`_newton_betas`) the second, which is tight where the first is
loose by ``1 / l2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linprog

from ._linalg import guarded_solve

__all__ = ["duality_gaps"]

# the unpenalised projection's normal equations are (n_features + 1)^2 floats
# and one pass over X: beyond this many features the fit stays uncertified
PROJECTION_MAX_FEATURES = 2048


# rows of a float32 X converted to float64 at a time
BLOCK_ROWS = 1 << 16


def _blocks(oracle, pieces):
    """``(start, X, X')`` over X's rows in order, in float64 a block at a
    time: the certificate's sums must not round at the data's precision
    (float32's rounds the gap of a near-exact fit, 1e-4 of an objective
    of 1e-4 of the targets' scale, to 0, and certified a 48% gap)."""
    start = 0
    for j, piece in enumerate(pieces):
        Xb, XbT = oracle.rows_of(piece)
        if Xb.dtype == torch.float64:
            yield start, Xb, XbT
        elif Xb.layout == torch.strided:
            for lo in range(0, Xb.shape[0], BLOCK_ROWS):
                block = Xb[lo : lo + BLOCK_ROWS].double()
                yield start + lo, block, block.T
        else:
            block = Xb.to(torch.float64)
            yield start, block, block.t()
        start += Xb.shape[0]
        oracle.rows_read(pieces, j)


def _predictions(oracle, pieces, theta, d):
    """Every row's predictions (float64), one block of X at a time."""
    theta = theta.double()
    Ps = [Xb @ theta[:d] for _, Xb, _ in _blocks(oracle, pieces)]
    P = torch.cat(Ps)
    return P + theta[d] if oracle.fit_intercept else P


def _correlations(oracle, pieces, sb: torch.Tensor) -> torch.Tensor:
    """``X' sb`` (shape (d, n_outputs)), one block of X at a time."""
    out = None
    for start, _, XbT in _blocks(oracle, pieces):
        part = XbT @ sb[start : start + XbT.shape[1]]
        out = part if out is None else out + part
    return out


def _gram(oracle, pieces, weights: torch.Tensor) -> np.ndarray:
    """``X~' diag(w) X~`` (float64 host) for each column ``w`` of
    ``weights`` (rows by columns; shape (columns, q, q)), ``X~`` X with a
    column of ones when the model has an intercept: one pass over X."""
    out = 0.0
    for start, Xb, _ in _blocks(oracle, pieces):
        Xb = Xb if Xb.layout == torch.strided else Xb.to_dense()
        if oracle.fit_intercept:
            Xb = torch.cat([Xb, torch.ones_like(Xb[:, :1])], 1)
        w = weights[start : start + Xb.shape[0]].double()
        grams = [Xb.T @ (w[:, c, None] * Xb) for c in range(w.shape[1])]
        out = out + torch.stack(grams).cpu().numpy()
    return out


def _centred(beta, s, lo, hi, bounded=False):
    """``beta`` with ``sum(s beta) = 0`` per output, each entry moved towards
    the bound the sum must go to, in proportion to its room there (an entry
    unbounded that way has the output's largest ``|beta|`` plus 1 as its
    room: any is inside; ``bounded`` says there is none), and a mask of the
    outputs whose box cannot hold the sum (left as they were). ``s`` None:
    every weight is 1."""
    need = (beta if s is None else s * beta).sum(0)
    room = torch.where(need > 0, beta - lo, hi - beta)
    if not bounded:
        spare = beta.abs().amax(0) + 1.0
        room = torch.where(torch.isfinite(room), room, spare.expand_as(room))
    total = (room if s is None else s * room).sum(0)
    ok = need.abs() <= total
    # the signed share of each entry's room the output moves by
    share = torch.where(ok & (total != 0), need / total, torch.zeros_like(need))
    return beta - share * room, ok


def _centred_jointly(beta, s, Y):
    """Rows of the shifted simplex (``beta + y`` a distribution) with
    ``sum(s beta) = 0`` per class: the mix ``(1 - c) beta + c (q - y)``
    with the one distribution ``q`` and the smallest ``c`` that meet the
    sums (each row stays in its simplex; per-output moves as
    :func:`_centred`'s would leave it), and the mask of the classes (all
    fail together where some class has no weight)."""
    need = (s * beta).sum(0)  # sums to 0 over the classes
    weight = (s * Y).sum(0)  # each class's weight, summing to S
    # q = (weight - t need) / S >= 0 for t = (1 - c) / c
    ratio = torch.where(need > 0, weight / need.clamp_min(1e-300), torch.inf)
    t = float(ratio.min().clamp(max=1e300))
    c = 1.0 / (1.0 + t)
    q = (weight - t * need) / float(s.sum())
    ok = bool((weight > 0).all()) or not bool((need != 0).any())
    out = (1.0 - c) * beta + c * (q.clamp_min(0.0) - Y)
    return out, torch.full_like(need, ok, dtype=torch.bool)


def _into_box(beta, lo, hi):
    """The largest ``c <= 1`` per output with ``c beta`` in ``[lo, hi]``."""
    tiny = torch.finfo(beta.dtype).tiny
    up = torch.where(beta > hi, hi / beta.clamp_min(tiny), torch.ones_like(beta))
    down = torch.where(beta < lo, lo / beta.clamp_max(-tiny), torch.ones_like(beta))
    return torch.minimum(up, down).clamp(0.0, 1.0).amin(0)


def _projected(at, beta, lo, hi, movable=None):
    """``beta`` corrected to ``X~' s beta = 0`` by its smallest change, then
    scaled back into its box, and a mask of the outputs where it worked
    (None where X has too many features). Where ``movable`` (rows by
    outputs) is given, only those entries change, as an entry at a bound of
    0 that the correction pushed out would scale the whole output to 0, and
    outputs whose entries cannot meet the equations fail."""
    oracle, pieces, s = at.oracle, at.pieces, at.s
    if oracle.X.shape[1] + 1 > PROJECTION_MAX_FEATURES:
        return None
    sb = s * beta
    r = _correlations(oracle, pieces, sb)
    if oracle.fit_intercept:
        r = torch.cat([r, sb.sum(0, keepdim=True)])
    R = r.double().cpu().numpy().T  # (n_outputs, q)
    ok = torch.ones(beta.shape[1], dtype=torch.bool, device=beta.device)
    if movable is not None:
        correction, ok = _moved(at, R, movable)
        correction, ok = correction.to(beta), ok.to(beta.device)
    else:
        if at.gram is None:  # one pass over X for every beta checked at theta
            at.gram = _gram(oracle, pieces, s * s)[0]
        A, q = at.gram, at.gram.shape[0]
        z, _ = guarded_solve(np.repeat(A[None], R.shape[0], 0), R, lambda j: np.eye(q))
        Z = torch.as_tensor(z.T, dtype=beta.dtype, device=beta.device)
        # diag(s) X~ z: the minimum-norm solution of X~' s delta = -r
        correction = s * _correlations_rows(oracle, pieces, Z)
    beta = beta - correction
    return _scaled(beta, _into_box(beta, lo, hi), at.joint)[0], ok


def _moved(at, R, movable):
    """The smallest change of the ``movable`` entries with ``X~' s delta =
    -r`` per output (rows ``R``), gathered to the host: as ``correction``
    in :func:`_projected`, and a mask of the outputs where it meets them
    to rounding."""
    rows = np.flatnonzero(movable.any(1).cpu().numpy())
    cols = np.arange(at.d + bool(at.oracle.fit_intercept))
    XR = _gather(at, rows, cols) * at.s[rows, 0].double().cpu().numpy()[:, None]
    mask = movable[rows].cpu().numpy()
    theta = at.theta.double().abs().reshape(len(cols), -1).cpu().numpy()
    floor = NULL_FLOOR * at.null
    scales = np.maximum(at.primal.abs().cpu().numpy(), floor)
    out = np.zeros((movable.shape[0], R.shape[0]))
    ok = np.zeros(R.shape[0], dtype=bool)
    for c in range(R.shape[0]):
        B = XR[mask[:, c]].T
        # np.linalg.lstsq: the least-norm solution
        delta = np.linalg.lstsq(B, R[c], rcond=None)[0] if B.size else np.zeros(0)
        out[rows[mask[:, c]], c] = delta
        miss = R[c] - (B @ delta if B.size else 0.0)
        # met to rounding: relative to R, or (an R already near 0, whose
        # rounding lstsq cannot beat) off the dual value by a negligible
        # miss' theta / S at this theta (a fit at 2e-16 of its optimum
        # missed 1e-9 of an R of 2e-8, and was left uncertified)
        negligible = np.abs(miss) @ theta[:, c] / at.S <= 1e-12 * scales[c]
        ok[c] = np.linalg.norm(miss) <= 1e-9 * np.linalg.norm(R[c]) or negligible
    return torch.as_tensor(out, device=movable.device), torch.as_tensor(ok)


def _correlations_rows(oracle, pieces, Z):
    """``X~ Z`` row by row (``Z`` of shape (d [+ 1], n_outputs))."""
    d = oracle.X.shape[1]
    parts = [Xb @ Z[:d] for _, Xb, _ in _blocks(oracle, pieces)]
    out = torch.cat(parts)
    return out + Z[d:] if oracle.fit_intercept else out


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


# the kink set's least-squares problems gather at most this many entries of
# X (their rows times the coordinates of the optimality equations) to the host
KINK_MAX_ENTRIES = 4_000_000
# each output's free set: the rows nearest a kink, this many times as many
# as the equations they must meet (an LP vertex has as many rows at kinks),
# or the rows the smoothing keeps on its curved part, up to twice that: the
# LP over a larger set is never worse, only slower (one set, as each check
# of a fit that cannot be certified pays for it)
KINK_SIZE = 4


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


def _equations(at):
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


def _gather(at, rows, cols):
    """``X~[rows][:, cols]`` (``rows`` sorted positions, ``cols`` sorted,
    ``d`` the intercept's column of ones) as a float64 host array, one
    block of X at a time."""
    d, out = at.d, []
    features = cols[cols < d]
    for start, Xb, _ in _blocks(at.oracle, at.pieces):
        lo, hi = np.searchsorted(rows, [start, start + Xb.shape[0]])
        if hi == lo:
            continue
        local = torch.as_tensor(rows[lo:hi] - start, device=Xb.device)
        pick = torch.as_tensor(features, device=Xb.device)
        if Xb.layout == torch.strided:
            sub = Xb[local][:, pick]
        else:  # sparse: its columns by a product with a selection
            E = torch.zeros(d, len(features), dtype=Xb.dtype, device=Xb.device)
            E[pick, torch.arange(len(features), device=Xb.device)] = 1.0
            sub = (Xb @ E)[local]
        out.append(sub.cpu().numpy())
    X = np.concatenate(out) if out else np.zeros((0, len(features)))
    return np.hstack([X, np.ones((len(rows), len(cols) - len(features)))])


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


def _kink_betas(at, mu):
    """A dual point of the kink set at ``theta``: each row farther from a
    kink than its output's free set has its piece's slope, and the free rows
    the values in their boxes that meet the optimality conditions with the
    least gap (:func:`_cheapest`); and the free entries strictly inside
    their boxes, which alone the unpenalised projection may move (None
    where the problems are too large to gather)."""
    delta, fixed, flo, fhi, cost = _kink_split(at)
    equations = _equations(at)
    nearest = _free_sets(at, delta, equations, mu)
    rows = np.unique(np.concatenate(nearest))
    cols = np.arange(at.d + 1)  # every coordinate, for the L1 part's checks
    if not at.pen.l1 or len(rows) * len(cols) > KINK_MAX_ENTRIES:
        cols = np.unique(np.concatenate([c for c, _ in equations]))
    if len(rows) * len(cols) > KINK_MAX_ENTRIES:
        return None
    XR = _gather(at, rows, cols)
    sb = at.s * fixed
    r = _correlations(at.oracle, at.pieces, sb).reshape(at.d, -1)
    r = torch.cat([r, sb.sum(0, keepdim=True)]).double().cpu().numpy()
    host = [t.double().cpu().numpy() for t in (fixed, flo, fhi, cost, at.s[:, 0])]
    beta, movable = fixed.clone(), torch.zeros_like(fixed, dtype=torch.bool)
    for c, eqs in enumerate(equations):
        F = np.sort(nearest[c])
        XF = XR[np.searchsorted(rows, F)] * host[4][F, None]
        fix, lo, hi, g = (h[F, c] for h in host[:4])
        # X~' s beta = r - XF' fixed_F + XF' beta_F
        x = _cheapest(at, XF, r[cols, c] - XF.T @ fix, cols, eqs, g, lo, hi)
        if x is None:  # the equalities cannot be met here: the pieces'
            x = fix  # slopes, as far as the repair makes them feasible
        room = 1e-8 * (hi - lo)
        idx = torch.as_tensor(F, device=fixed.device)
        beta[idx, c] = torch.as_tensor(x).to(fixed)
        inside = torch.as_tensor((x > lo + room) & (x < hi - room))
        movable[idx, c] = inside.to(fixed.device)
    return beta, movable


def _constants(oracle, pieces, loss, shape, cache=None):
    """What does not depend on ``theta`` (kept in ``cache``): the targets,
    weights and their sum, the dual box, the zero model's objective (the
    scale of an optimum of 0), for a piecewise-linear loss the sign of
    ``beta`` against the slopes, and whether the box is bounded; None for a
    smooth loss without a known conjugate (no dual box)."""
    if cache is not None and "constants" in cache:
        return cache["constants"]
    index = oracle.index_of
    if len(pieces) == 1:
        Y = oracle.Y[index(pieces[0])].double()
    else:
        Y = torch.cat([oracle.Y[index(p)] for p in pieces]).double()
    sw = oracle.sw
    s = torch.ones_like(Y[:, :1]) if sw is None else sw[:, None].double()
    S = float(Y.shape[0]) if sw is None else float(s.sum())
    sign = None
    if shape is None:
        box = loss.dual_box(Y)
        if box is None:
            if cache is not None:
                cache["constants"] = None
            return None
        lo, hi = box
    else:  # beta's range: h'(u) in [a_0, a_J], u = y p (margin) or y - p
        a0, aJ = shape.slopes[0], shape.slopes[-1]
        sign = Y if shape.margin else -torch.ones_like(Y)
        lo = torch.minimum(sign * a0, sign * aJ)
        hi = torch.maximum(sign * a0, sign * aJ)
    zero = loss.value(Y, torch.zeros_like(Y))
    null = float((zero if sw is None else s * zero).sum()) / S
    # the widths hi - lo are small or infinite (never NaN: lo <= hi)
    bounded = math.isfinite(float((hi - lo).sum()))
    out = Y, s, S, lo, hi, null, sign, bounded
    if cache is not None:
        cache["constants"] = out
    return out


class _AtTheta:
    """Everything the dual points at ``theta`` are checked against: each
    row's predictions, targets, weight and dual box, and each output's
    primal value (per output: the outputs are independent problems, or
    with a joint loss one problem whose dual moves keep each row's sum).

    ``loss`` is piecewise linear (its kinks give the box and conjugate) or
    smooth with its own :meth:`~sklearn_gd.model._losses.Loss.conjugate`;
    ``cache`` keeps the unpenalised projection's Gram matrix from one
    ``theta`` to the next (it depends on the weights only)."""

    def __init__(
        self, problem, theta, loss, cache=None, direction=None, primal=None, rows=None
    ):
        self.pen, self.oracle, self.d = problem.penalty, problem.oracle, problem.d
        self.joint = bool(problem.joint)
        self.loss, self.theta, self.gram = loss, theta, None
        self.cache = cache
        if cache is not None:
            self.gram = cache.get("gram")
        self.shape = None if loss.smooth else loss.pieces()
        self.pieces = self.oracle.pieces_of(self.oracle.full_batch())
        self.direction = direction
        self.first = self.second = None
        if rows is not None:  # the solver's predictions and derivatives here
            self.P, self.first, self.second = rows
        else:
            self.P = _predictions(self.oracle, self.pieces, theta, self.d)
        constants = _constants(self.oracle, self.pieces, loss, self.shape, cache)
        (self.Y, self.s, self.S, self.lo, self.hi, self.null) = constants[:6]
        self.weighted = self.oracle.sw is not None
        self.sign, self.bounded = constants[6:]
        # the loss's values, and (a smooth loss) its derivatives at P
        if primal is not None:  # each output's objective, from the solver
            self.primal = torch.as_tensor(primal, dtype=torch.float64)
            if self.first is None and self.shape is None:
                self.first = loss.derivative(self.Y, self.P)
        else:
            if self.shape is None:
                values, self.first = loss.value_and_derivative(self.Y, self.P)
            else:
                values = loss.value(self.Y, self.P)
            self.primal = (self.s * values).sum(0) / self.S + self.pen.column_values(
                theta[: self.d].double()
            )

    def keep(self) -> None:
        """Keep the Gram matrix built here for the next ``theta``."""
        if self.cache is not None and self.gram is not None:
            self.cache["gram"] = self.gram

    def conjugate(self, beta) -> torch.Tensor:
        """``l*(beta)`` per row and output."""
        if self.shape is None:
            return self.loss.conjugate(self.Y, beta)
        return _conjugate(self.shape, beta, self.sign, self.Y)

    def relative_gap(self, dual) -> float:
        """``(P - D) / |P|`` summed over the outputs, ``|P|`` floored at
        ``NULL_FLOOR`` times the zero model's objective: an optimum of 0
        (separable data without a penalty) has no relative gap, and its
        fits are measured against the problem's scale, as
        ``tests/_sweep.py``'s gap measures them."""
        primal = float(self.primal.sum())
        gap = primal - float(dual.sum())
        scale = max(abs(primal), NULL_FLOOR * self.null, 1e-300)
        return max(gap, 0.0) / scale


# the fraction of the zero model's objective below which an objective counts
# as 0 in a relative gap (tests/_sweep.py's floor)
NULL_FLOOR = 1e-8


def _scaled(beta, factor, joint):
    """``beta`` times ``factor`` (one per output): for a joint loss the
    smallest for every output, so that each row keeps its sum of 0."""
    if joint:
        factor = factor.min().expand_as(factor)
    return beta * factor, factor


def _dual_values(at, beta, movable=None, gradient=None):
    """Each output's dual value at ``beta`` once made dual feasible;
    ``-inf`` where that is not possible.

    ``gradient``: ``(g, m2)``, the objective's gradient at ``theta`` and the
    columns' weighted second moments, for ``beta`` the loss's derivatives
    there (the plain point): ``X' s beta / S`` is then ``g``'s coefficient
    rows less the L2 part's, and no pass over X is made; the centring's
    move ``delta`` is bounded instead, ``|X_j' s delta| / S <= sqrt(m2_j)
    sqrt(sum s delta^2 / S)`` (Cauchy-Schwarz), a looser ``|v|`` and so a
    lower dual value, by the intercept's gradient (negligible at a stop)."""
    pen, lo, hi = at.pen, at.lo, at.hi
    # without sample weights every s is 1: no products with them (on the
    # small problems Newton serves, each tensor operation is the cost)
    s = at.s if at.weighted else None
    ok = None
    plain = beta
    if not pen.l1 and not pen.l2:
        gradient = None  # the projection's correction is exact, and a pass
        projected = _projected(at, beta, lo, hi, movable)
        if projected is None:
            shape, dtype = (beta.shape[1],), at.P.dtype
            return torch.full(shape, -math.inf, dtype=dtype, device=beta.device)
        beta, ok = projected
    elif at.oracle.fit_intercept and at.joint:
        beta, ok = _centred_jointly(beta, at.s, at.Y)
    elif at.oracle.fit_intercept:
        beta, ok = _centred(beta, s, lo, hi, at.bounded)
    # v = -X' s beta / S, whose sign no term below reads
    if gradient is not None:  # |v| bounded from the solver's gradient
        g, m2 = gradient
        W = at.theta[: at.d].double()
        v = (g[: at.d].double() - pen.l2 * W).abs()
        if plain is not beta:  # the centring's move, bounded
            square = (beta - plain) ** 2
            spread = ((square if s is None else s * square).sum(0) / at.S).sqrt()
            m2 = torch.as_tensor(m2, dtype=v.dtype, device=v.device)
            v = v + m2.clamp_min(0.0).sqrt()[:, None] * spread
    else:
        v = _correlations(at.oracle, at.pieces, beta if s is None else s * beta) / at.S
    if not pen.l2 and pen.l1:  # into the L1 ball of radius l1, per output
        scale = (pen.l1 / v.abs().amax(0).clamp_min(1e-300)).clamp(max=1.0)
        beta, scale = _scaled(beta, scale, at.joint)
        v = v * scale
    conj = at.conjugate(beta)
    dual = (conj if s is None else s * conj).sum(0) / -at.S
    if pen.l2:
        excess = torch.clamp(v.abs() - pen.l1, min=0) if pen.l1 else v
        dual = dual - (excess * excess).sum(0) / (2 * pen.l2)
    return dual if ok is None else dual.masked_fill(~ok, -math.inf)


def duality_gaps(problem, theta, base, smoothed, enough: float = 0.0):
    """Relative duality gaps ``(P(theta) - D(beta)) / |P(theta)|`` of the
    non-smooth loss ``base`` at ``theta``: the one of its smoothing's
    (``smoothed``) derivatives made dual feasible (see the module's
    docstring), and the best one, where above ``enough`` the dual points
    of the kink set (:func:`_kink_betas`) are tried too and each output
    keeps its largest dual value. ``inf`` where no point is feasible."""
    at = _AtTheta(problem, theta, base)
    dual = _dual_values(at, smoothed.derivative(at.Y, at.P).double())
    first = best = at.relative_gap(dual)
    if first > enough:
        kinked = _kink_betas(at, smoothed.mu)
        if kinked is not None:
            more = _dual_values(at, *kinked)
            best = min(first, at.relative_gap(torch.maximum(dual, more)))
    return first, best


# the Newton-refined dual point's Hessians cost n (d + 1)^2 multiply-adds an
# output: computed where that is at most this many, or this many passes over
# X (a certificate otherwise costing one or two)
NEWTON_MAX_WORK = 10**8
NEWTON_MAX_PASSES = 64


def _newton_betas(at, beta):
    """``beta`` refined by the loss's curvature, ``beta + h (X~ step)``
    (clipped into its box), ``step`` each output's Newton step on the
    optimality equations of :func:`_equations` (the coordinates an L1 part
    keeps, the intercept) with the data term's Hessian ``X~' diag(s h)
    X~`` plus the L2 part, ``h`` the loss's second derivative; and the
    entries strictly inside their boxes on the curved part (``h > 0``),
    the ones an unpenalised projection may move. None where the Hessians
    cost too much (``NEWTON_MAX_WORK``).

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
        return _refined(at, beta, h, _correlations_rows(at.oracle, at.pieces, Z))
    n, k = beta.shape
    q = at.d + bool(at.oracle.fit_intercept)
    work = n * q * q * k
    if work > max(NEWTON_MAX_WORK, NEWTON_MAX_PASSES * n * q * k):
        return None
    h = at.loss.second_derivative(at.Y, at.P).double()
    grams = _gram(at.oracle, at.pieces, at.s * h)
    sb = at.s * beta
    r = _correlations(at.oracle, at.pieces, sb).reshape(at.d, -1)
    if at.oracle.fit_intercept:
        r = torch.cat([r, sb.sum(0, keepdim=True)])
    r = r.double().cpu().numpy()
    steps = np.zeros((q, k))
    for c, (cols, rhs) in enumerate(_equations(at)):
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
    return _refined(at, beta, h, _correlations_rows(at.oracle, at.pieces, Z))


def _refined(at, beta, h, moved):
    """``beta + h moved`` clipped into the box (``moved``: ``X~`` times the
    step, per row), and the entries that the unpenalised projection may
    move (see :func:`_newton_betas`; None with a penalty, which moves
    none)."""
    refined = torch.minimum(torch.maximum(beta + h * moved, at.lo), at.hi)
    if at.pen.l1 or at.pen.l2:
        return refined, None
    room = 1e-8 * (beta.abs() + 1.0)
    movable = (h > 0) & (refined > at.lo + room) & (refined < at.hi - room)
    return refined, movable


def smooth_duality_gap(
    problem,
    theta,
    cache: dict | None = None,
    enough: float = 0.0,
    direction: torch.Tensor | None = None,
    primal=None,
    rows=None,
    gradient=None,
) -> float | None:
    """The relative duality gap ``(P(theta) - D(beta)) / |P(theta)|`` of a
    smooth loss at ``theta`` (floored as :meth:`_AtTheta.relative_gap`),
    ``beta`` the loss's derivatives there made dual feasible (see the
    module's docstring; the loss's own
    :meth:`~sklearn_gd.model._losses.Loss.conjugate`) and, where that gap is above
    ``enough``, the point :func:`_newton_betas` refines from them, each
    output keeping its larger dual value.

    ``direction``: the solver's Newton direction at ``theta`` (same shape;
    Newton's method has it), the refined point's step, so that no Hessian
    is built here; ``primal``: each output's objective at ``theta``, and
    ``rows``: the predictions and the loss's first and second derivatives
    per row, where the solver has them in float64 (on the small problems
    Newton serves the certificate's cost is its number of tensor
    operations, not its passes over X); ``gradient``: ``(g, m2)``, the
    objective's gradient there and the columns' second moments, which
    spare the plain point its pass for ``X' s beta`` (:func:`_dual_values`;
    L-BFGS on float64 data). ``cache`` (one dict per fit) keeps what does
    not change with ``theta``.

    At the optimum ``beta`` is the dual optimum, so the gap is 0; near it
    the gap bounds the distance to the optimum whatever the loss's
    curvature, unlike the gradient mapping (a modified_huber fit without
    penalty on separable data stopped on the mapping at 1.55 times its
    objective away). Never above ``|P| / scale``: ``beta = 0`` is always a
    dual point, of value 0. None where no gap is defined here (a loss
    without a known conjugate, per-output penalty strengths, an oracle
    without rows: a Gram matrix), or where the plain point's is above
    ``enough`` and no refined point is affordable (a joint loss, whose
    Hessian couples the outputs, or one too large): the plain gap there is
    loose by ``1 / l2``, and it would hold
    fits at their optimum for want of proof."""
    oracle, pen = problem.oracle, problem.penalty
    loss = getattr(oracle, "loss", None)
    if (
        loss is None
        or not getattr(oracle, "supports_certificate", False)
        or any(isinstance(v, torch.Tensor) for v in (pen.l1, pen.l2))
    ):
        return None
    cache = {} if cache is None else cache
    pieces = oracle.pieces_of(oracle.full_batch())
    if _constants(oracle, pieces, loss, None, cache) is None:
        return None  # no dual box: no conjugate known
    if problem.joint:
        direction = None  # its Hessian couples the outputs: no refined point
    at = _AtTheta(problem, theta, loss, cache, direction, primal, rows)
    beta = at.first
    unpenalised = not pen.l1 and not pen.l2
    if direction is not None and not unpenalised:
        # Newton's step in hand, the refined point costs one product more
        # than the plain one and is the tighter near a stop (where a weak
        # L2 part leaves the plain one loose by 1 / l2): it goes first, the
        # plain one only where it does not certify
        refined, _ = _newton_betas(at, beta)
        dual = _dual_values(at, refined).clamp_min(0.0)
        gap = at.relative_gap(dual)
        if gap <= enough:
            return gap
        dual = torch.maximum(dual, _dual_values(at, beta))
        return at.relative_gap(dual)
    # every loss here has its infimum 0, so beta = 0 (always feasible, with
    # D(0) = 0) bounds each output's optimum from below: a separable fit at
    # P = 1e-14 is certified by it where no other dual point is feasible
    dual = torch.zeros_like(at.primal)
    # an unpenalised beta must meet X~' s beta = 0: the plain point's
    # projection moves the entries at a bound of 0 (rows past the margin)
    # out of their boxes, and scales the whole output to 0; the refined
    # point's moves only those on the curved part
    if not unpenalised or at.joint:
        dual = _dual_values(at, beta, gradient=gradient).clamp_min(0.0)
        at.keep()
    gap = at.relative_gap(dual)
    if gap <= enough:
        return gap
    refined = None if at.joint else _newton_betas(at, beta)
    if refined is None:
        return None
    beta, movable = refined
    q = at.d + bool(oracle.fit_intercept)
    if unpenalised and int(movable.any(1).sum()) * q > KINK_MAX_ENTRIES:
        return None  # the projection's rows are too many to gather
    dual = torch.maximum(dual, _dual_values(at, beta, movable))
    return at.relative_gap(dual)
