"""FISTA in the preconditioner's metric, for penalties with an L1 part."""

from __future__ import annotations

import math

import torch

from ._preconditioned import Preconditioned

__all__ = ["AcceleratedProximal"]


class AcceleratedProximal(Preconditioned):
    """FISTA in ``P``'s metric: backtracked step, adaptive restart, and the
    L1 part by its per-coordinate proximal operator."""

    supports_prox = True
    check_every = 10  # steps between certificates of a smoothing (Smoothing)
    # a step that ends this far (relative) above the best objective so far is
    # a climb, not rounding: it is taken back (see :meth:`_take_back`)
    climb = 1e-3

    def _forget(self):
        self._y = self._x_prev = None
        self._t = 1.0
        self._L = 1.0
        self._F_best = None
        self._rejected = 0
        self.gap_estimate = math.inf

    def prox_step(self, lr):
        return None  # the proximal step is taken inside :meth:`step`

    def _split(self, problem, theta, idx):
        """The smooth part of the objective (sum scale) and its gradient."""
        total, grad = self.evaluate(problem, theta, idx)
        return total - self._l1_value(problem, theta), grad

    def _total(self, problem, theta, idx) -> float:
        """The reported objective at ``theta``."""
        return self.evaluate(problem, theta, idx)[0] / problem.sum_scale

    @staticmethod
    def _l1_value(problem, theta) -> float:
        l1 = problem.penalty.l1
        return float(l1 * problem.coef(theta).abs().sum()) if l1 else 0.0

    def _prox(self, problem, z: torch.Tensor, L: float) -> torch.Tensor:
        if problem.penalty.l1:
            self._P.prox_l1(z, problem.penalty.l1 / L)
        return z

    def step(self, problem, idx, lr):
        x = self._param
        if self._y is None:
            self._y, self._x_prev = x.clone(), x.clone()
        f_y, g_y = self._split(problem, self._y, idx)
        # the objective's rounding: in float32 a sum over the rows is exact
        # to a few epsilons of it, and a test tighter than that doubled L
        # until the step rounded to nothing, a zero gradient mapping that
        # read as convergence (sweep seeds 59, 125: gaps 0.74 and 5.6e-4)
        slack = max(1e-12, self.resolution * self._eps) * abs(f_y)
        L, x_new, diff, f_new = self._backtrack(problem, idx, f_y, g_y, slack)
        self._L = L
        total = f_new + self._l1_value(problem, x_new)
        if self._climbs(total, slack):
            self._take_back(L)
            return self._total(problem, x, idx), 1.0
        if L * self._eps > 1.0:
            # a step shrunk by 1/eps is ruled by rounding, not curvature
            # (the metric bounds the curvature to within the features'
            # correlation): its gradient mapping, rounded towards zero, is
            # no measure of optimality. Sweep seed 266 (float32) read one as
            # convergence at a gap of 0.10: stuck instead, and warned.
            self.stuck = True
            self.at_precision = False
            return self._total(problem, x, idx), 1.0
        # gradient mapping G = L P (y - x_new): its P^-1 norm, and
        # ||G||^2 / (2 L) as the estimate of f - f*
        self._measure(L * math.sqrt(self._P.inner(diff, diff)))
        self.gap_estimate = 0.5 * L * self._P.inner(diff, diff)
        self._accelerate(x_new, diff, total)
        x.copy_(x_new)
        return total / problem.sum_scale, 1.0

    def _backtrack(self, problem, idx, f_y, g_y, slack):
        """The proximal gradient step from ``y`` with the smallest ``L``
        (from ``0.8`` times the last, doubled) whose quadratic bound holds
        within ``slack``: ``(L, x_new, x_new - y, f(x_new))``, the smooth
        part's objective."""
        y = self._y
        L = self._L * 0.8  # let the step grow back
        for _ in range(60):
            x_new = self._prox(problem, y - self._P.inv(g_y) / L, L)
            diff = x_new - y
            f_new, _ = self._split(problem, x_new, idx)
            curve = 0.5 * L * self._P.inner(diff, diff)
            bound = f_y + float((g_y * diff).sum()) + curve
            if f_new <= bound + slack:
                break
            L *= 2.0
        return L, x_new, diff, f_new

    def _climbs(self, total: float, slack: float) -> bool:
        """Whether a step that ends at objective ``total`` climbed: well
        above the best iterate (``climb`` of it, or ``slack``)."""
        if self._F_best is None:
            return False
        return not total <= self._F_best + max(slack, self.climb * abs(self._F_best))

    def _take_back(self, L: float) -> None:
        """A safeguard against climbing (MFISTA's, with room for rounding):
        the step ended well above the best iterate. Sweep seed 266 (float32,
        column means 1e4 times their spread) climbed from 326 to 3.5e5 in
        500 steps, raising DivergenceError in a default fit: X w rounds to
        eps |X| |w|, far above the 10 eps |f| the backtracking allows, so the
        test passed for steps that went up. Momentum is dropped and the step
        retried from x_prev; when even that plain proximal gradient step
        goes up, with a shorter step (L doubled) each time, and after 40
        doublings rounding rules the objective: stuck there (the estimator
        warns), never climbing."""
        if self._t == 1.0 and torch.equal(self._y, self._x_prev):
            self._L = 2.5 * L  # twice L after the next step's 0.8
            self._rejected += 1
            if self._rejected > 40:
                self.stuck = True
                self.at_precision = False
        self._t = 1.0
        self._y = self._x_prev.clone()

    def _accelerate(self, x_new, diff, total: float) -> None:
        """Accept ``x_new`` (objective ``total``, ``diff = x_new - y``): the
        adaptive restart, the next extrapolated point ``y`` and the best
        objective so far."""
        step = x_new - self._x_prev
        if self._P.inner(-diff, step) > 0:  # adaptive restart
            self._t = 1.0
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * self._t * self._t)) / 2.0
        self._y = x_new + ((self._t - 1.0) / t_next) * step
        self._t = t_next
        self._x_prev = x_new
        self._F_best = total if self._F_best is None else min(self._F_best, total)
        self._rejected = 0
