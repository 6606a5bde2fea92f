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
one (:func:`newton_betas`) the second, which is tight where the first is
loose by ``1 / l2``.

This module assembles the gaps; the steps live beside it: the passes over
``X`` in ``_gap_rows.py``, the moves into dual feasibility and the dual
values in ``_dual_moves.py``, the kink set's point in ``_kink_points.py``,
the Newton-refined point in ``_newton_point.py``.
"""

from __future__ import annotations

import math

import torch

from ._dual_moves import NULL_FLOOR, dual_values
from ._gap_rows import predictions
from ._kink_points import KINK_MAX_ENTRIES, kink_betas, piecewise_conjugate
from ._newton_point import newton_betas

__all__ = ["duality_gaps", "smooth_duality_gap"]


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
            self.P = predictions(self.oracle, self.pieces, theta, self.d)
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
        return piecewise_conjugate(self.shape, beta, self.sign, self.Y)

    def relative_gap(self, dual) -> float:
        """``(P - D) / |P|`` summed over the outputs, ``|P|`` floored at
        ``NULL_FLOOR`` times the zero model's objective: an optimum of 0
        (separable data without a penalty) has no relative gap, and its
        fits are measured against the problem's scale, as
        ``tests/_sweep.py``'s gap measures them."""
        primal = float(self.primal.sum())
        gap = primal - float(dual.sum())
        return max(gap, 0.0) / self._scale(primal)

    def _scale(self, primal: float) -> float:
        """``|P|`` floored, the relative gap's denominator (``primal``: P)."""
        return max(abs(primal), NULL_FLOOR * self.null, 1e-300)

    def open_outputs(self, dual, enough: float):
        """The outputs whose part of the relative gap at ``dual`` is above
        ``enough`` over twice their number: the others together hold at
        most half of ``enough``, and a better dual point for them could not
        decide a check (host booleans)."""
        k = dual.numel()
        scale = self._scale(float(self.primal.sum()))
        share = (self.primal - dual).cpu().numpy() / scale
        return share > enough / (2 * k)


def duality_gaps(
    problem, theta, base, smoothed, enough: float = 0.0, least_gap: bool = False
):
    """Relative duality gaps ``(P(theta) - D(beta)) / |P(theta)|`` of the
    non-smooth loss ``base`` at ``theta``: the one of its smoothing's
    (``smoothed``) derivatives made dual feasible (see the module's
    docstring), and the best one, where above ``enough`` the dual points
    of the kink set (:func:`kink_betas`; ``least_gap``: with an L2 part,
    its point of least gap, a costlier problem for a fit's last check) are
    tried too and each output keeps its largest dual value. ``inf`` where
    no point is feasible."""
    at = _AtTheta(problem, theta, base)
    dual = dual_values(at, smoothed.derivative(at.Y, at.P).double())
    first = best = at.relative_gap(dual)
    if first > enough:
        # the kink set's LP for the outputs that can still decide the check
        outputs = at.open_outputs(dual, enough) if enough > 0 else None
        kinked = kink_betas(at, smoothed.mu, least_gap=least_gap, outputs=outputs)
        if kinked is not None:
            more = dual_values(at, *kinked)
            best = min(first, at.relative_gap(torch.maximum(dual, more)))
    return first, best


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
    ``enough``, the point :func:`newton_betas` refines from them, each
    output keeping its larger dual value.

    ``direction``: the solver's Newton direction at ``theta`` (same shape;
    Newton's method has it), the refined point's step, so that no Hessian
    is built here; ``primal``: each output's objective at ``theta``, and
    ``rows``: the predictions and the loss's first and second derivatives
    per row, where the solver has them in float64 (on the small problems
    Newton serves the certificate's cost is its number of tensor
    operations, not its passes over X); ``gradient``: ``(g, m2)``, the
    objective's gradient there and the columns' second moments, which
    spare the plain point its pass for ``X' s beta`` (:func:`dual_values`;
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
    ``enough``, the penalty has an L2 part and no refined point is
    affordable (a joint loss without the solver's step: its Hessian couples
    the outputs; or Hessians too large): the plain gap there is loose by
    ``1 / l2``, and it would hold fits at their optimum for want of proof.
    A softmax with the solver's step (``direction``) gets its refined point
    from it (see :func:`~._newton_point.newton_betas`)."""
    oracle, pen = problem.oracle, problem.penalty
    loss = _certifiable_loss(problem)
    if loss is None:
        return None
    cache = {} if cache is None else cache
    pieces = oracle.pieces_of(oracle.full_batch())
    if _constants(oracle, pieces, loss, None, cache) is None:
        return None  # no dual box: no conjugate known
    at = _AtTheta(problem, theta, loss, cache, direction, primal, rows)
    beta = at.first
    unpenalised = not pen.l1 and not pen.l2
    if direction is not None and not unpenalised:
        return _newton_first_gap(at, beta, enough)
    # every loss here has its infimum 0, so beta = 0 (always feasible, with
    # D(0) = 0) bounds each output's optimum from below: a separable fit at
    # P = 1e-14 is certified by it where no other dual point is feasible
    dual = torch.zeros_like(at.primal)
    # an unpenalised beta must meet X~' s beta = 0: the plain point's
    # projection moves the entries at a bound of 0 (rows past the margin)
    # out of their boxes, and scales the whole output to 0; the refined
    # point's moves only those on the curved part
    if not unpenalised or at.joint:
        dual = dual_values(at, beta, gradient=gradient).clamp_min(0.0)
        at.keep()
    gap = at.relative_gap(dual)
    if gap <= enough:
        return gap
    return _refined_gap(at, beta, dual, unpenalised)


def _certifiable_loss(problem):
    """The loss of ``problem``'s data term where a gap can be defined for
    it: a loss, rows to read (:attr:`~._protocol.Oracle.supports_certificate`)
    and penalty strengths shared by the outputs; else None."""
    oracle, pen = problem.oracle, problem.penalty
    loss = getattr(oracle, "loss", None)
    if (
        loss is None
        or not getattr(oracle, "supports_certificate", False)
        or any(isinstance(v, torch.Tensor) for v in (pen.l1, pen.l2))
    ):
        return None
    return loss


def _newton_first_gap(at, beta, enough):
    """The gap with Newton's step in hand (``at.direction``): the refined
    point costs one product more than the plain one and is the tighter near
    a stop (where a weak L2 part leaves the plain one loose by 1 / l2): it
    goes first, the plain one only where it does not certify."""
    refined, _ = newton_betas(at, beta)
    dual = dual_values(at, refined).clamp_min(0.0)
    gap = at.relative_gap(dual)
    if gap <= enough:
        return gap
    dual = torch.maximum(dual, dual_values(at, beta))
    return at.relative_gap(dual)


def _refined_gap(at, beta, dual, unpenalised):
    """The gap of the better of ``dual`` (each output's best dual value so
    far) and the Newton-refined point's. Where that point is not
    affordable (a joint loss, Hessians too large), ``dual``'s own gap with
    an L1 part only, else None; None too where, unpenalised, the
    projection has too many rows to gather."""
    refined = None if at.joint else newton_betas(at, beta)
    if refined is None:
        # without an L2 part the plain point is not loose by 1 / l2: at the
        # optimum of an L1 fit ||X' s beta / S||_inf <= l1 holds exactly, so
        # its scaling into the ball tends to 1 and its gap to 0; a gap above
        # ``enough`` there is a fit still short of its optimum (multinomial
        # L1 fits stopped silently at gaps of 4e-3 to 2e-2 on the gradient
        # mapping alone)
        return at.relative_gap(dual) if at.pen.l1 and not at.pen.l2 else None
    beta, movable = refined
    q = at.d + bool(at.oracle.fit_intercept)
    if unpenalised and int(movable.any(1).sum()) * q > KINK_MAX_ENTRIES:
        return None  # the projection's rows are too many to gather
    dual = torch.maximum(dual, dual_values(at, beta, movable))
    return at.relative_gap(dual)
