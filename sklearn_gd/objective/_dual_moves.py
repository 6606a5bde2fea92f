"""Dual feasibility: the moves that make a dual point of the certificates
feasible (the intercept's centring, the scaling into the box or the L1
ball, the unpenalised projection) and each output's dual value there."""

from __future__ import annotations

import math

import numpy as np
import torch

from ._gap_rows import correlations, correlations_rows, gather_rows, weighted_grams
from ._linalg import guarded_solve

# the unpenalised projection's normal equations are (n_features + 1)^2 floats
# and one pass over X: beyond this many features the fit stays uncertified
PROJECTION_MAX_FEATURES = 2048


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
    r = correlations(oracle, pieces, sb)
    if oracle.fit_intercept:
        r = torch.cat([r, sb.sum(0, keepdim=True)])
    R = r.double().cpu().numpy().T  # (n_outputs, q)
    ok = torch.ones(beta.shape[1], dtype=torch.bool, device=beta.device)
    if movable is not None:
        correction, ok = _moved(at, R, movable)
        correction, ok = correction.to(beta), ok.to(beta.device)
    else:
        if at.gram is None:  # one pass over X for every beta checked at theta
            at.gram = weighted_grams(oracle, pieces, s * s)[0]
        A, q = at.gram, at.gram.shape[0]
        z, _ = guarded_solve(np.repeat(A[None], R.shape[0], 0), R, lambda j: np.eye(q))
        Z = torch.as_tensor(z.T, dtype=beta.dtype, device=beta.device)
        # diag(s) X~ z: the minimum-norm solution of X~' s delta = -r
        correction = s * correlations_rows(oracle, pieces, Z)
    beta = beta - correction
    return _scaled(beta, _into_box(beta, lo, hi), at.joint)[0], ok


def _moved(at, R, movable):
    """The smallest change of the ``movable`` entries with ``X~' s delta =
    -r`` per output (rows ``R``), gathered to the host: as ``correction``
    in :func:`_projected`, and a mask of the outputs where it meets them
    to rounding."""
    rows = np.flatnonzero(movable.any(1).cpu().numpy())
    cols = np.arange(at.d + bool(at.oracle.fit_intercept))
    XR = gather_rows(at, rows, cols) * at.s[rows, 0].double().cpu().numpy()[:, None]
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


# the fraction of the zero model's objective below which an objective counts
# as 0 in a relative gap (tests/_sweep.py's floor)
NULL_FLOOR = 1e-8


def _scaled(beta, factor, joint):
    """``beta`` times ``factor`` (one per output): for a joint loss the
    smallest for every output, so that each row keeps its sum of 0."""
    if joint:
        factor = factor.min().expand_as(factor)
    return beta * factor, factor


def dual_values(at, beta, movable=None, gradient=None):
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
        v = correlations(at.oracle, at.pieces, beta if s is None else s * beta) / at.S
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
