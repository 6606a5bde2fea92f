"""The stopping rules, and the held-out data early stopping scores."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "AccuracyValidation",
    "MeasuredProgress",
    "NoImprovement",
    "Optimality",
    "StoppingRule",
    "Validation",
]


@dataclass
class Validation:
    """Held-out data for early stopping, scored by R^2 (sklearn's ``score``)."""

    X: torch.Tensor
    Y: torch.Tensor
    sample_weight: torch.Tensor | None

    def __post_init__(self):
        sw = self.sample_weight
        w = (
            torch.ones(self.Y.shape[0], dtype=self.Y.dtype, device=self.Y.device)
            if sw is None
            else sw
        )
        self._w = w[:, None]
        mean = (self.Y * self._w).sum(0) / self._w.sum()
        self._sst = (((self.Y - mean) ** 2) * self._w).sum(0)

    def score(self, W, b) -> torch.Tensor:
        """R^2 averaged uniformly over outputs (a 0-dim tensor)."""
        P = self.X @ W + b
        sse = (((self.Y - P) ** 2) * self._w).sum(0)
        # sklearn's r2_score: a constant target scores 1 if fitted exactly, else 0
        r2 = torch.where(
            self._sst > 0,
            1 - sse / self._sst.clamp_min(1e-300),
            (sse == 0).to(sse.dtype),
        )
        return r2.mean()


class AccuracyValidation(Validation):
    """Held-out data for early stopping, scored by (weighted) accuracy.

    ``Y`` holds one column per class (+1 for the sample's class, -1 or 0
    elsewhere), or a single {-1, +1} column for a binary problem; the
    predicted class is the largest column, or the sign of the single one.
    """

    def score(self, W, b) -> torch.Tensor:
        P = self.X @ W + b
        if P.shape[1] == 1:
            hit = (P > 0) == (self.Y > 0)
        else:
            hit = (P.argmax(1) == self.Y.argmax(1))[:, None]
        w = self._w
        return (hit.to(w.dtype) * w).sum() / w.sum()


class StoppingRule:
    """What the training loop reads of a stopping rule, with the defaults of
    a rule that has nothing to say about a member.

    :meth:`update` records an epoch and says whether the training has
    stalled (or stopped); :attr:`final` whether that ends the fit, or is a
    stall the schedule may answer by shrinking its rate. ``best_loss`` and
    ``best_score`` are the best epoch's objective and validation score.

    A rule that declares ``batched`` judges every problem of a batch at
    once: its :meth:`update` takes and returns host arrays with one entry
    per problem, and its bests are such arrays. The others judge one
    problem, with floats.
    """

    batched = False  # whether it judges a batch of problems
    final = False  # a stall may shrink the step and go on (Restarts)
    floor_converges = True  # a stall at the schedule's floor is convergence
    reached = False  # whether a final stop was the criterion met
    value = None  # no optimality measure of its own: the solver's is reported
    measure_name = None  # what ``value`` is (None: the solver's measure)
    tol_used = None  # what the measure was compared with

    def __init__(self):
        self.best_loss = math.inf
        self.best_score = -math.inf

    def bind(self, problem, it) -> None:
        """Start on ``problem`` from the iterate ``it`` (an
        :class:`~sklearn_gd.engine._iterate.Iterate`): nothing to do here."""
        if problem.n_units != 1:
            raise ValueError(f"{type(self).__name__} judges one problem at a time")

    def update(self, loss: float, score: float | None, solver=None) -> bool:
        """Record an epoch; True when the training has stalled (or stops)."""
        raise NotImplementedError

    def reset(self, units=None) -> None:
        """Start again after the schedule shrank the step: nothing to reset."""

    def idles(self, solver) -> bool:
        """Whether the next epoch may be counted without being run (see
        :meth:`Optimality.idles`): never for the schedules' solvers."""
        return False

    def conclude(self, solver) -> bool:
        """At ``max_iter``, not converged: whether the fit converged anyway
        (not, here)."""
        return False


class NoImprovement(StoppingRule):
    """scikit-learn's SGD stopping rule.

    Without validation data an epoch makes no progress when its objective is
    above ``best - tol``; with it, when the validation score is below
    ``best + tol``. After ``n_iter_no_change`` such epochs in a row the
    training has stalled. ``tol=None`` never stalls.
    """

    batched = True

    def __init__(self, tol: float | None, n_iter_no_change: int):
        super().__init__()
        self.tol = -math.inf if tol is None else tol
        self.patience = n_iter_no_change
        self.count = 0

    def bind(self, problem, it) -> None:
        """One count and one best objective and score per problem."""
        n = problem.n_units
        self.best_loss = np.full(n, math.inf)
        self.best_score = np.full(n, -math.inf)
        self.count = np.zeros(n, dtype=np.int64)

    def update(self, loss, score, solver=None, on=None):
        """Record an epoch of the problems ``on`` (a mask; None: all), from
        their objectives ``loss`` and validation scores ``score`` (host
        arrays, or None); per problem, whether it has stalled."""
        on = np.ones(loss.shape, dtype=bool) if on is None else on
        with np.errstate(invalid="ignore"):
            if score is not None:
                worse = score < self.best_score + self.tol
                self.best_score[on] = np.maximum(self.best_score[on], score[on])
            else:
                worse = loss > self.best_loss - self.tol
        self.best_loss[on] = np.minimum(self.best_loss[on], loss[on])
        self.count[on] = np.where(worse[on], self.count[on] + 1, 0)
        return on & (self.count >= self.patience)

    def reset(self, units=None):
        """Start counting again (after the schedule shrank the step) for the
        problems ``units`` (a mask; None: all)."""
        self.count[slice(None) if units is None else units] = 0


class MeasuredProgress(NoImprovement):
    """The optimality measure, for gradient descent and the adaptive
    methods under ``tol="auto"``: it decides both the stalls the schedule
    reacts to and the ending.

    After each epoch the measure is taken at the reported parameters: the
    (proximal) gradient mapping's norm in the preconditioner's metric
    (:class:`~sklearn_gd.solvers._metric.GradientMapping`), relative to the
    start, as the full-batch solvers measure theirs. The fit converges when
    it reaches ``tol``. An epoch makes progress when it brings the measure
    1% below its best; ``n_iter_no_change`` epochs without progress are a
    stall, which shrinks an "adaptive" step as scikit-learn's rule does. A
    stall at the schedule's floor is not convergence: the fit ends with a
    warning that reports the measure.
    """

    batched = False
    floor_converges = False
    progress = 0.99

    def __init__(self, tol: float, n_iter_no_change: int, measure):
        super().__init__(None, n_iter_no_change)
        self.target = tol
        self.measure = measure
        self.reached = False
        self.value = None
        self.best_value = math.inf

    @property
    def final(self):  # the criterion met ends the fit
        return self.reached

    @property
    def tol_used(self):  # what the measure is compared with
        return self.target

    def bind(self, problem, it) -> None:
        """Start measuring on ``problem`` from the iterate's start."""
        StoppingRule.bind(self, problem, it)
        self.it = it
        self.measure.start(problem, it.current())

    def update(self, loss: float, score: float | None, solver=None) -> bool:
        self.best_loss = min(self.best_loss, loss)
        self.value = value = self.measure(self.it.current())
        if value <= self.target:
            self.reached = True
            return True
        if value < self.progress * self.best_value:
            self.best_value, self.count = value, 0
        else:
            self.count += 1
        return self.count >= self.patience

    def reset(self, units=None):
        self.count = 0
        self.best_value = math.inf


class Optimality(StoppingRule):
    """Stop when the solver's optimality measure reaches ``tol``.

    The measure (``solver.optimality``) is the norm of the (proximal)
    gradient mapping relative to its value at the start of the fit, so
    ``tol`` means the same on every data set and scale ("auto": the
    solver's ``auto_tol``, read at each update). A stop is final:
    ``reached`` says whether it was the criterion (True) or a solver that
    can make no more progress at this precision (False, and the estimator
    warns with the measure; with ``tol=0``, which sets no threshold, that
    is convergence). ``tol=None`` never stops: the fit runs ``max_iter``
    epochs, a solver that can make no more progress staying where it is.
    The best loss and score are tracked as by :class:`NoImprovement`, for
    early stopping and the result.

    With ``tol="auto"`` and a solver that certifies its gap
    (``solver.certify()``: a relative duality gap, or None where it has
    none), the measure only proposes a stop: without strong convexity a
    small gradient mapping bounds no objective gap (a modified_huber fit
    without penalty stopped 1.55 times its objective above the optimum), so
    the stop needs a certified gap of at most ``certified_tol``, and the
    fit goes on otherwise. A solver that can make no more progress, or
    ``max_iter`` (:meth:`conclude`), has converged where its certificate
    says so, whatever the measure (a fit at a gap of 1e-10 warned with a
    measure of 4e-5), and a certificate every ``first_check``, twice that,
    ... epochs ends a fit below ``precision_gap`` whose measure stalls.
    The last certified gap is then the reported measure (:attr:`value`).
    """

    final = True
    value = None  # the measure is the solver's own, until a gap is certified
    # the relative duality gap a certified stop proves: the package's promise
    # (objective within 1e-4 of the optimum, relative), as Smoothing's
    certified_tol = 1e-4
    # a certified gap this small ends the fit whatever the measure: a
    # hundredth of the promise, the solvers' own precision_gap
    precision_gap = 1e-6
    # epochs before the first periodic certificate, the wait doubling after
    # each: a few passes over X in all, against max_iter's thousand
    first_check = 16

    def __init__(self, tol: float | str | None):
        super().__init__()
        self.tol = tol
        self.tol_used = None
        self.reached = False
        self._certifying = tol == "auto"
        self._epochs = 0
        self._next_check = self.first_check
        self._candidate_after = 0
        self._checked = None  # (epoch, enough) of the last certificate

    def idles(self, solver) -> bool:
        """Whether the next epoch may be counted without being run: under
        ``tol=None`` a full-batch solver that can make no more progress
        (``stuck``) would only repeat the line search or certificate that
        found so, each epoch, and leave the parameters as they are."""
        return self.tol is None and solver.stuck

    def _certificate(self, solver, enough: float) -> float | None:
        """The solver's certified relative gap at its iterate (its cheaper
        bound where that is below ``enough``), recorded as the measure; None
        (and no more tries) where it has none."""
        certify = solver.certify if self._certifying else None
        last = self._checked
        again = last is not None and last[0] == self._epochs and last[1] <= enough
        if certify is not None and again:
            # this iterate's, to a bar as strict (max_iter's stop after a check)
            return self.value
        gap = None if certify is None else certify(enough)
        self._checked = (self._epochs, enough)
        if gap is None:
            self._certifying = False
            return None
        self.value, self.tol_used = gap, self.certified_tol
        self.measure_name = "relative duality gap at the last check"
        return gap

    def _certified_stop(self, solver, tol: float, value) -> bool | None:
        """The update of a certifying fit: whether it stops, or None where
        the solver has no certificate (the measure's rule then decides)."""
        self._epochs += 1
        proposed = value is not None and value <= tol
        candidate = proposed and self._epochs >= self._candidate_after
        periodic = self._epochs >= self._next_check
        if not (candidate or solver.stuck or periodic):
            return False
        bar = self.certified_tol if candidate or solver.stuck else self.precision_gap
        gap = self._certificate(solver, bar)
        if gap is None:
            return None
        if periodic:
            self._next_check = 2 * self._epochs
        if gap <= bar:
            self.reached = True
            return True
        if candidate:  # the next proposal after the solver's own check period
            self._candidate_after = self._epochs + solver.check_every
        return bool(solver.stuck)

    def conclude(self, solver) -> bool:
        """At ``max_iter``, not converged: whether the solver's certificate
        shows the fit converged anyway (``tol="auto"`` only), or its last
        measure (:meth:`~sklearn_gd.solvers._solver.Solver.last_check`) is
        below ``tol``."""
        if self._certifying:
            gap = self._certificate(solver, self.certified_tol)
            self.reached = gap is not None and gap <= self.certified_tol
        elif self.tol is not None:
            tol = solver.auto_tol if self.tol == "auto" else self.tol
            value = solver.optimality
            self.reached = self.reached or (value is not None and value <= tol)
        return self.reached

    def update(self, loss: float, score: float | None, solver=None) -> bool:
        self.best_loss = min(self.best_loss, loss)
        if score is not None:
            self.best_score = max(self.best_score, score)
        # "auto": the solver's own, which may depend on the data's precision
        tol = solver.auto_tol if self.tol == "auto" else self.tol
        self.tol_used = tol if self.value is None else self.certified_tol
        value = solver.optimality
        if self._certifying:
            stop = self._certified_stop(solver, tol, value)
            if stop is not None:
                return stop
        if tol is not None and value is not None and value <= tol:
            self.reached = True
            return True
        if solver.stuck and self.tol == 0:
            # no threshold: as scikit-learn's tol=0 trains until the objective
            # stops decreasing, the fit is done when no step decreases it at
            # the data's precision
            self.reached = True
        if solver.stuck and self.tol != 0 and value is not None:
            # a solver that certifies its gap below the objective's precision
            # (Newton's decrement) has converged where the measure cannot go,
            # whatever tol asked of the measure (breast_cancer's folds: tol
            # 1e-9, Newton stuck at the optimum with a measure of 4e-9); and
            # an "auto" that aims past the common one (conjugate gradients)
            # when rounding stops it below the common one. Under tol=None
            # that is an optimum, where the solver idles on
            auto = self.tol in ("auto", None)
            self.reached = solver.at_precision or (
                auto and value <= solver.precision_tol
            )
        if self.tol is None:  # no stopping rule: max_iter epochs, as sklearn's
            return False
        return solver.stuck
