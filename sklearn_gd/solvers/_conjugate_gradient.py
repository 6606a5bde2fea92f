"""Preconditioned conjugate gradients, for a quadratic objective."""

from __future__ import annotations

import math

import torch

from ._preconditioned import AUTO_TOL
from ._quasi_newton import QuasiNewton

__all__ = ["ConjugateGradient"]


class ConjugateGradient(QuasiNewton):
    """Preconditioned conjugate gradients, for a quadratic objective (the
    squared loss with an L2 penalty): :class:`QuasiNewton`'s exact line
    search along ``d = -P^-1 g + beta d_prev``, ``beta`` the ratio of
    successive ``g' P^-1 g``. It keeps no history: two vector operations a
    step, and the solution in at most ``n_features + 1`` steps in exact
    arithmetic."""

    def _certificate_reuse(self) -> tuple[tuple, dict]:
        """None: its gradient may be followed from ``A d``, not evaluated."""
        return (), {}

    def setup(self, problem, theta) -> None:
        super().setup(problem, theta)
        # its steps are cheap and its iterate's sensitivity to rounding is
        # that of the problem's conditioning: "auto" goes near the data's
        # precision, so that equal problems (weights or repeated rows) agree;
        # stopped by rounding before that, it has converged below AUTO_TOL
        self.auto_tol = max(1e-10, 10.0 * torch.finfo(theta.dtype).eps)
        self.precision_tol = AUTO_TOL

    def _forget(self):
        super()._forget()
        self._gBg = None
        self._followed = False  # the last objective came from A d, not X

    def _learn(self, s, y, Bg_new) -> None:
        """Conjugacy needs no pairs: the previous direction is the memory."""

    # below this optimality measure the gradient is evaluated afresh at each
    # step: updated as g + t A d it drifts by rounding, and conjugacy with it
    fresh_below = 1e-3

    def _line_search(self, problem, x, idx, d, lr, slope):
        """The exact minimiser along ``d``. ``A d`` is one small product with
        a Gram oracle, else the gradient's change from a trial evaluation;
        with a Gram oracle and far from the optimum the objective and
        gradient follow from it exactly (a quadratic). Armijo backtracking
        where ``d'A d`` is not positive (no curvature along ``d``)."""
        hessian_vector = getattr(problem.oracle, "hessian_vector", None)
        if hessian_vector is not None:
            Ad = hessian_vector(d)
            problem.penalty.add_gradient_(Ad[: problem.d], d[: problem.d])
        else:  # A d from the gradient at the trial point x + lr d
            _, g_trial = self.evaluate(problem, x + lr * d, idx)
            Ad = g_trial.sub_(self._g).div_(lr)
        dAd = float((d * Ad).sum())
        if not dAd > 0:
            return super()._line_search(problem, x, idx, d, lr, slope)
        t = -slope / dAd
        followable = hessian_vector is not None and self.optimality is not None
        if followable and self.optimality > self.fresh_below:
            self._followed = True
            f_new = self._f + t * slope + 0.5 * t * t * dAd
            return t, f_new, Ad.mul_(t).add_(self._g)
        f_new, g_new = self.evaluate(problem, x + t * d, idx)
        # a followed objective and an evaluated one differ by rounding: only
        # two evaluated ones tell whether rounding is all that is left
        followed, self._followed = self._followed, False
        return (t, f_new, g_new) if followed or f_new <= self._f else None

    def _next(self, g, Bg) -> None:
        d_prev = self._d
        if d_prev is None or self._gBg is None:
            (gBg,) = ((g * Bg).sum()[None]).tolist()
            d, slope = -Bg, -gBg
        else:
            both = torch.stack([Bg, d_prev]).reshape(2, -1) @ g.reshape(-1)
            gBg, g_dprev = both.tolist()
            beta = gBg / self._gBg
            d = Bg.neg().add_(d_prev, alpha=beta)
            slope = -gBg + beta * g_dprev
        self._measure(math.sqrt(max(gBg, 0.0)))
        self._gBg = gBg
        self._d, self._slope = d, slope
        self.gap_estimate = max(0.0, 0.5 * gBg)
