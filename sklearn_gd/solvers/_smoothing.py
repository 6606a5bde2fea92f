"""A non-smooth loss by continuation on its Moreau envelope."""

from __future__ import annotations

import math

import torch

from ..model._smoothing import MoreauSmoothed
from ..objective._certificate import duality_gaps
from ._preconditioned import Preconditioned
from ._solver import Solver

__all__ = ["Smoothing"]

# the kink set's dual point is tried at levels whose smoothing bias is at
# most this many times the target gap (see Smoothing._duality_gaps)
KINK_BIAS = 100.0


class Smoothing(Solver):
    """A non-smooth loss by continuation: the inner solver (Newton or
    L-BFGS, or FISTA with an L1 part) on the loss's Moreau envelope, whose
    parameter ``mu`` shrinks tenfold until the loss's own duality gap is
    small enough.

    The smoothed objective is below the loss's by at most ``bias = mu G^2 /
    2`` per output (:class:`~sklearn_gd.model._smoothing.MoreauSmoothed`). Each time
    the inner solver's estimate of its own gap (half the Newton or L-BFGS
    decrement ``-g'd``, or ``||G||^2 / 2L`` for FISTA) is below a tenth of
    ``max(bias, target)`` relative to the objective, the fit is checked by
    a duality gap: the envelope's derivatives are a dual point of the loss,
    and the gap between the loss's objective and that dual point's bounds
    the distance to the optimum. Above ``target``, ``mu`` shrinks when the
    smoothing's bias is a sizeable part of the gap; otherwise the inner
    solver goes on. ``optimality`` is that gap, relative to the
    objective, once computed (a penalty with no L2 part has no bounded
    dual of this form: its gap is infinite, and such fits end with a
    warning). The reported objectives are the smoothed ones, within
    ``bias`` of the loss's.
    """

    full_batch = True
    auto_eta0 = 1.0
    measures_optimality = True
    auto_tol = 1e-4  # a relative duality gap

    def __init__(
        self, *, inner: Preconditioned, target: float | str | None = "auto", **kwargs
    ):
        super().__init__(**kwargs)
        self.inner = inner
        # None (tol=None): no target; the smoothing is sharpened until the
        # data's precision (the floor of ``mu``) or max_iter ends the fit
        self.target = {"auto": self.auto_tol, None: 0.0}.get(target, target)

    @property
    def supports_prox(self):  # noqa: D401 - mirrors the class attribute
        return self.inner.supports_prox

    def setup(self, problem, theta) -> None:
        oracle = problem.oracle
        self.base = oracle.loss
        self.shape = self.base.pieces()
        if self.shape.margin:
            self.mu = 1.0  # margins are O(1) whatever the data's scale
        else:  # a tenth of the typical residual of a constant model
            Y = oracle.Y
            spread = float((Y - Y.median(0).values).abs().mean())
            self.mu = max(0.1 * spread, 1e-8)
        # below this the smoothing is finer than the data's precision resolves
        self._mu_floor = self.mu * 1e-2 * torch.finfo(theta.dtype).eps ** 0.5
        self.smoothed = self._smoothed_problem(problem)
        self.inner.curvature = self.smoothed.oracle.loss.curvature
        self.inner.setup(self.smoothed, theta)
        self.optimality = None
        self.stuck = self.at_precision = False
        self._since_check = self._wait = 0
        self._previous = None  # the solution of the level before
        self._certificate = math.inf  # the last duality gap computed
        self._kink_every = self._kink_wait = 0  # see _duality_gaps
        self._last_checked = False  # see last_check

    @property
    def measure_name(self) -> str:
        """What :attr:`optimality` is, for the warnings."""
        if math.isfinite(self._certificate):
            return "relative duality gap at the last check"
        return "estimated relative gap (no duality gap could be certified)"

    def start(self, param, lr, state=None):
        self.inner.start(param, lr, state)

    def reset(self, lr):
        self.inner.reset(lr)

    def state_dict(self):
        return None

    def prox_step(self, lr):
        return self.inner.prox_step(lr)

    def step(self, problem, idx, lr):
        objective, weight = self.inner.step(self.smoothed, idx, lr)
        scale = max(abs(float(objective)), 1e-300)
        bias = self.smoothed.oracle.loss.bias / scale
        gap = self.inner.gap_estimate / (scale * problem.sum_scale)
        # until a duality gap is computed, only the inner solver's estimate
        # (above the target: it certifies nothing); after, the last gap
        self.optimality = max(gap, bias, self.target * 1.01)
        if math.isfinite(self._certificate):
            self.optimality = self._certificate
        self._since_check += 1
        # the smoothed problem solved to a tenth of what smoothing costs
        level = max(bias, self.target)
        solved = gap <= 0.1 * level
        if self.inner.stuck or (solved and self._since_check > self._wait):
            self._since_check = 0
            smoothed, certificate = self._duality_gaps(
                problem, self.inner.parameter, bias
            )
            self._certificate = certificate
            if math.isfinite(certificate):
                self.optimality = certificate
            if certificate <= self.target:  # certified: the rule stops here
                pass
            # the continuation follows the smoothed point's own gap: the
            # kink set's, far tighter, would shrink mu before each level is
            # solved, and the inner solver then crawls at the small mu
            elif (
                bias > 0.1 * smoothed  # the smoothing is what keeps the gap
                or gap <= 1e-6 * level  # or nothing else can
                or self.inner.stuck
                or (math.isinf(smoothed) and bias > self.target)
            ):
                self._shrink(problem)
            else:  # the inner solver's estimate was early: go on, check later
                self._wait = self.inner.check_every
        # stuck: the smoothing is fine enough, or as fine as the precision
        # allows; converged there when the certificate is negligible (a
        # hundredth of the package's 1e-4 promise, as for the inner solvers)
        floor = self.mu <= self._mu_floor
        precise = self._certificate <= self.inner.precision_gap
        self.stuck = (floor and precise) or (
            self.inner.stuck and (bias <= self.target or floor)
        )
        if self.stuck and self.optimality > self.target > 0:
            self.last_check()  # the fit ends here: its last chance to certify
        self.at_precision = self.stuck and precise
        return objective, weight

    def last_check(self) -> None:
        """Where the fit would end above its target (stuck, or at
        ``max_iter``): the kink set's point of least gap with an L2 part
        (:func:`~sklearn_gd.objective._certificate.duality_gaps`'s
        ``least_gap``), whose small quadratic program per output costs more
        than a check's: run once here, it certifies fits within 4e-9..7e-7
        of their optimum whose equalities the kink set's exact point meets
        only far from the kinks, or not at all in the boxes (sweep seeds 420,
        941, 1196, 1300), and costs nothing to the fits that certify before.
        """
        l2 = self.smoothed.penalty.l2  # per-output strengths: no kink point
        if self._last_checked or isinstance(l2, torch.Tensor) or not l2:
            return
        self._last_checked = True
        _, best = duality_gaps(
            self.smoothed,
            self.inner.parameter,
            self.base,
            self.smoothed.oracle.loss,
            enough=self._enough,
            least_gap=True,
        )
        if best < self._certificate:
            self._certificate = self.optimality = best

    def _shrink(self, problem):
        if self.mu <= self._mu_floor:  # as sharp as the precision allows
            if self.target > 0:
                self.inner.stuck = True
            else:  # tol=None: solve on at the floor, and check again later
                self._wait = self.inner.check_every
            return
        self._wait = 0
        self._kink_every = self._kink_wait = 0  # a new level: try it at once
        theta = self.inner.parameter
        previous, self._previous = self._previous, theta.clone()
        self.mu /= 10.0
        self.smoothed = self._smoothed_problem(problem)
        self.inner.set_curvature(self.smoothed.oracle.loss.curvature)
        if previous is not None:
            # the smoothed solutions are piecewise linear in mu: on the last
            # two levels' line, a tenth of their step on from this one
            start = theta + 0.1 * (theta - previous)
            idx = problem.oracle.full_batch()
            here = self.inner.evaluate(self.smoothed, theta, idx)
            there = self.inner.evaluate(self.smoothed, start, idx)
            if there[0] < here[0]:
                theta.copy_(start)

    def _smoothed_problem(self, problem):
        """``problem`` on the loss's Moreau envelope at the current ``mu``:
        the data term's copy for that loss (``Oracle.with_loss``), the data
        shared; ``problem`` itself keeps the loss."""
        smoothed = MoreauSmoothed(self.base, self.mu)
        return problem.with_oracle(problem.oracle.with_loss(smoothed))

    @property
    def _enough(self) -> float:
        """The gap a check certifies: the target, or for tol=None what
        counts as precise."""
        return self.target if self.target > 0 else self.inner.precision_gap

    def _duality_gaps(self, problem, theta, bias: float) -> tuple[float, float]:
        """The relative duality gaps of the loss itself at ``theta``, the
        smoothed point's and the best one
        (:func:`~sklearn_gd.objective._certificate.duality_gaps`).

        The kink set's dual points cost a few passes over X and a small LP
        per output: they are tried only where the first gap is above the
        target (or, for tol=None, above what counts as precise), and after
        each try that does not certify, only every 2nd, 4th, ... up to 16th
        check, but always once the inner solver is stuck, where the fit may
        end (seed 37 of the sweep: 186 checks until max_iter took 5.5 s of
        its 7.3), and only at a level whose smoothing costs at most
        ``KINK_BIAS`` times the target (``bias``, relative): the kink set's
        point is tight only where the iterate is near the loss's own
        optimum, and the smoothed optimum is within ``bias`` of it, not
        nearer, until the smoothing is fine (the first levels' points read
        gaps of 0.03 to 14, and took half of a small fit's time)."""
        enough = self._enough
        fine = bias <= KINK_BIAS * enough
        due = (self._kink_wait <= 0 and fine) or self.inner.stuck
        loss = self.smoothed.oracle.loss
        gaps = duality_gaps(
            self.smoothed, theta, self.base, loss, enough=enough if due else math.inf
        )
        if not due and fine:  # the wait counts the levels fine enough only
            self._kink_wait -= 1
        elif gaps[0] > enough:  # tried: wait longer unless it certified
            certified = gaps[1] <= enough
            self._kink_every = 0 if certified else min(2 * self._kink_every or 1, 16)
            self._kink_wait = self._kink_every
        return gaps
