"""The training loop over columns: every unit of columns is its own problem.

:func:`train_columns` is :func:`~sklearn_gd.engine._engine.train` for a parameter
matrix whose units of columns (see :mod:`sklearn_gd.objective._cv_oracles`) are
independent problems, each with its own penalty strength, learning rate,
update count, stopping decision and divergence handling:

* one batch is read once for all columns; a unit whose fold has no row in
  the batch takes no step on it (its update count does not move either);
* the stopping rule is :class:`~sklearn_gd.engine._stopping.NoImprovement`'s, per
  unit; a unit that has stalled is frozen (its learning rate is 0), or, under
  ``learning_rate="adaptive"``, gets a smaller rate, going back to the start
  of its best epoch when its objective grew;
* divergence is :class:`~sklearn_gd.engine._iterate.DivergenceGuard`'s test per unit:
  the unit restarts with a smaller rate, or, when its schedule cannot shrink
  it, is marked diverged and frozen, and the others go on.

The solvers of ``_optimizers.py`` are used unchanged, at rate 1: each step's
change is then scaled column by column by that column's rate
(:class:`ScaledSolver`), which is exact for every solver whose update is its
rate times a direction that does not depend on the rate (SGD with or without
momentum, Adam, AdamW, Adagrad). L-BFGS, whose line search decides the step
itself, has no column form: the search fits it with the base estimator on
each split.

With early stopping (``validation``) progress is measured by each unit's
validation score instead of its objective, and each unit reports its best
validated parameters, as :func:`~sklearn_gd.engine._engine.train` does.

Within an epoch nothing waits on the device; each epoch reads its per-unit
objectives once, and the per-unit bookkeeping runs on the host.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from ._iterate import DivergenceError, DivergenceGuard
from ._problem import gradient_step_

__all__ = [
    "ColumnResult",
    "ColumnProblem",
    "ScaledSolver",
    "train_columns",
]

# unit status
ACTIVE, CONVERGED, MAX_ITER, DIVERGED = 0, 1, 2, 3


class ColumnProblem:
    """Data term plus per-column penalty: the objective of every column.

    The interface of :class:`~sklearn_gd.engine._problem.Problem` that the solvers
    use (``evaluate``, ``coef``, ``penalty``), with per-column objectives
    and batch weights (tensors of shape (n_columns,)).
    """

    def __init__(self, oracle, penalty, n_features):
        self.oracle = oracle
        self.penalty = penalty
        self.d = n_features

    def coef(self, theta):
        return theta[: self.d]

    def evaluate(self, theta, idx, with_l2=True):
        values, weight, grad = self.oracle.loss_grad(theta, idx)
        W = theta[: self.d]
        if with_l2:
            self.penalty.add_gradient_(grad[: self.d], W)
        return values + self.penalty.column_values(W), weight, grad

    def descend_(self, theta, idx, lr):
        """One gradient step in place, linear in ``lr`` (:class:`ScaledSolver`
        takes it at rate 1 and scales it by each column's rate)."""
        return gradient_step_(self, theta, idx, lr)

    def lazily(self, theta):
        """No lazy scaling: the columns' strengths differ."""
        return contextlib.nullcontext()

    def values(self, theta, idx=None):
        """Every column's objective alone (no gradient)."""
        values, _, _ = self.oracle.loss_grad(theta, idx, need_grad=False)
        return values + self.penalty.column_values(theta[: self.d])


class ScaledSolver:
    """A solver of ``_optimizers.py`` with a learning rate per column.

    The solver steps at rate 1; the change of each column is then multiplied
    by that column's rate (0 for a frozen unit, or one without rows in the
    batch). The proximal step is scaled alike.
    """

    def __init__(self, solver):
        self.solver = solver
        self.full_batch = solver.full_batch

    def start(self, theta):
        self.theta = theta
        self.solver.start(theta, 1.0)

    def step(self, problem, idx, lr):
        """One update; returns the objective and batch weight per column and
        the rate each column moved at (0: it did not)."""
        before = self.theta.clone()
        objective, weight = self.solver.step(problem, idx, 1.0)
        moved = lr * (weight > 0)
        self.theta.sub_(before).mul_(moved).add_(before)
        return objective, weight, moved

    def prox_step(self, moved, d):
        scale = self.solver.prox_step(1.0)
        if isinstance(scale, torch.Tensor):
            scale = scale[:d]
        return scale * moved

    def reset_columns(self, columns):
        self.solver.reset_columns(columns)


@dataclass
class ColumnResult:
    """What :func:`train_columns` produced, per column and per unit."""

    coef: torch.Tensor  # (n_features, n_columns)
    intercept: torch.Tensor  # (n_columns,)
    n_iter: np.ndarray  # (n_units,) epochs each unit ran
    status: np.ndarray  # (n_units,) ACTIVE (ran out of max_iter), CONVERGED, ...
    best_loss: np.ndarray  # (n_units,)


class ColumnIterate:
    """The parameters being trained, per column: ``theta``, the update counts
    ``t`` and the running average (or None), with the two checkpoints a
    restart goes back to (the start of the epoch, and the start of each
    unit's best epoch), restored column by column."""

    def __init__(self, theta, average: int):
        self.theta = theta
        self.t = torch.ones(theta.shape[1], dtype=torch.float64, device=theta.device)
        self.average = average
        self.avg = torch.zeros_like(theta) if average else None
        self.epoch_start = self._snapshot()
        self.best_start = self.epoch_start
        self.validated = None  # early stopping: the best validated parameters
        self.has_validated = None

    def _snapshot(self):
        avg = None if self.avg is None else self.avg.clone()
        return (self.theta.clone(), self.t.clone(), avg)

    def _take(self, snapshot, cols, into):
        for target, source in zip(into, snapshot):
            if target is not None:
                target.copy_(torch.where(cols, source, target))

    def stepped(self, moved):
        """Count the update of the columns that moved; average them."""
        stepped = moved > 0
        if self.avg is not None:
            since = self.t - self.average + 1
            rate = torch.where(stepped & (since >= 1), 1.0 / since, 0.0)
            self.avg.addcmul_(self.theta - self.avg, rate.to(self.theta.dtype))
        self.t += stepped

    def finite(self):
        """Per column: whether every parameter (and average) is finite."""
        ok = torch.isfinite(self.theta).all(0)
        if self.avg is not None:
            ok &= torch.isfinite(self.avg).all(0)
        return ok

    def epoch_done(self, improved_cols, improved_all: bool):
        """The start of this epoch becomes the best checkpoint of the columns
        that improved; a new epoch starts here."""
        if improved_all:
            self.best_start = self.epoch_start
        elif improved_cols is not None:
            best = tuple(None if b is None else b.clone() for b in self.best_start)
            self._take(self.epoch_start, improved_cols, best)
            self.best_start = best

    def restart(self, cols):
        """Back to the best checkpoint, for the columns ``cols``."""
        self._take(self.best_start, cols, (self.theta, self.t, self.avg))

    def new_epoch(self):
        self.epoch_start = self._snapshot()

    def current(self):
        """The reported parameters: the average where it has begun."""
        if self.avg is None:
            return self.theta
        return torch.where(self.t - 1 >= self.average, self.avg, self.theta)

    def keep_validated(self, cols):
        """The current parameters of the columns ``cols`` are the best
        validated so far (early stopping reports them)."""
        if self.validated is None:
            self.validated = self.current().clone()
            self.has_validated = torch.zeros_like(cols)
        self.validated.copy_(torch.where(cols, self.current(), self.validated))
        self.has_validated |= cols

    def reported(self):
        """The best validated parameters where there are some, else the
        current ones."""
        if self.validated is None:
            return self.current()
        return torch.where(self.has_validated, self.validated, self.current())


class UnitRule:
    """The stopping rule and divergence policy of every unit, on the host.

    :class:`~sklearn_gd.engine._stopping.NoImprovement` per unit (an epoch makes no
    progress when its objective is above ``best - tol``; ``n_iter_no_change``
    such epochs in a row are a stall) and
    :class:`~sklearn_gd.engine._iterate.DivergenceGuard`'s test per unit (non-finite,
    or above both ``factor`` times the zero model's objective and ``jump``
    times the unit's best). A stall or a divergence shrinks an adaptive
    schedule's rate (going back to the best checkpoint after a divergence, or
    when the objective grew); where the rate cannot shrink, a stall
    converges and a divergence fails the unit.
    """

    def __init__(self, zero_loss, *, tol, patience, max_iter, schedule, eta0):
        U = zero_loss.shape[0]
        self.limit = np.where(zero_loss > 0, DivergenceGuard.factor * zero_loss, np.inf)
        self.tol = -math.inf if tol is None else tol
        self.patience, self.max_iter = patience, max_iter
        self.adapts = bool(getattr(schedule, "adapts", False))
        self.min_rate = getattr(schedule, "min_rate", 0.0)
        self.factor = getattr(schedule, "factor", 1.0)
        self.eta = eta0  # per unit: the rate an adaptive schedule is at
        self.status = np.full(U, ACTIVE)
        self.n_iter = np.zeros(U, dtype=np.int64)
        self.best = np.full(U, np.inf)
        self.best_score = np.full(U, -np.inf)
        self.guard_best = np.full(U, np.inf)
        self.count = np.zeros(U, dtype=np.int64)

    def update(self, loss, bad, score=None):
        """Record an epoch of every active unit (``bad``: a non-finite
        parameter; ``score``: validation scores, which then decide progress,
        as early stopping does); returns the units whose
        objective improved, that go back to their best checkpoint, whose
        validation score is their best so far, and whether any rate
        shrank."""
        on = self.status == ACTIVE
        diverged = on & (
            bad
            | ~np.isfinite(loss)
            | ((loss > self.limit) & (loss > DivergenceGuard.jump * self.guard_best))
        )
        can_shrink = (self.eta > self.min_rate) if self.adapts else np.zeros_like(on)
        self.status[diverged & ~can_shrink] = DIVERGED
        ok = on & ~diverged
        self.guard_best[ok] = np.minimum(self.guard_best[ok], loss[ok])
        self.n_iter[ok] += 1
        improved = ok & (loss < self.best)
        better = np.zeros_like(ok)
        if score is None:
            worse = loss > self.best - self.tol
        else:
            worse = score < self.best_score + self.tol
            better = ok & (score > self.best_score)
            self.best_score[ok] = np.maximum(self.best_score[ok], score[ok])
        self.best[ok] = np.minimum(self.best[ok], loss[ok])
        self.count[ok] = np.where(worse[ok], self.count[ok] + 1, 0)
        stalled = ok & (self.count >= self.patience)
        goes_on = stalled & can_shrink
        self.status[stalled & ~goes_on] = CONVERGED
        self.count[goes_on] = 0
        self.status[ok & (self.n_iter >= self.max_iter) & (self.status == ACTIVE)] = (
            MAX_ITER
        )
        shrink = (diverged & can_shrink) | goes_on
        self.eta[shrink] /= self.factor
        grew = goes_on & (loss > self.best) & (score is None)
        restart = (diverged & can_shrink) | grew
        return improved, restart, better, bool(shrink.any())


def train_columns(
    oracle,
    *,
    layout,
    penalty,
    schedule,
    solver,
    tol,
    n_iter_no_change,
    max_iter,
    fit_intercept,
    average,
    init: torch.Tensor,
    joint,
    validation=None,
    on_epoch=None,
) -> ColumnResult:
    """Minimise every unit's data term plus penalty, units independently.

    Parameters
    ----------
    oracle : bound column oracle
        The column data term for ``layout`` (see ``_cv_oracles.py``).
    layout : Layout
    penalty : Penalty
        With per-column strengths.
    schedule : Schedule
        With per-column ``eta0`` (and ``alpha``, optimal ``t0``): its rate at
        a tensor of per-column update counts is per column.
    solver : ScaledSolver
    tol : float or None
    n_iter_no_change : int
    max_iter : int
    fit_intercept : bool
    average : int
        0 for no averaging; else the update from which iterates are averaged.
    init : tensor of shape (n_features + fit_intercept, n_columns)
        The starting parameters (trained in place).
    joint : bool
        Whether a unit's columns form one problem (softmax): its objective is
        their sum, else their mean.
    validation : callable or None
        Early stopping: ``validation(coef, intercept)`` gives every unit's
        validation score (a host array) after each epoch; progress is then
        measured by it, and each unit reports its best validated parameters.
    on_epoch : callable or None
        Called after every epoch with ``(epoch, losses, status)`` (host
        arrays per unit).
    Raises
    ------
    DivergenceError
        When every unit diverged.
    """
    d = init.shape[0] - int(fit_intercept)
    dt = init.dtype
    problem = ColumnProblem(oracle, penalty, d)
    it = ColumnIterate(init, average)
    solver.start(it.theta)
    zero = _per_unit(layout, oracle.zero_model_loss(), joint).cpu().numpy()
    rule = UnitRule(
        zero,
        tol=tol,
        patience=n_iter_no_change,
        max_iter=max_iter,
        schedule=schedule,
        eta0=_host(schedule.eta0, layout.n_units, layout.k),
    )
    active = layout.columns(rule.status == ACTIVE).to(dt)
    epochs = 0
    with torch.no_grad():
        while (rule.status == ACTIVE).any():
            loss = _run_epoch(problem, solver, schedule, it, penalty, active)
            epochs += 1
            was_active = rule.status == ACTIVE
            score = None
            if validation is not None:
                cur = it.current()
                score = validation(cur[:d], _intercept(cur, d, fit_intercept))
            loss_u = _end_epoch(layout, it, rule, solver, schedule, loss, joint, score)
            if not np.array_equal(was_active, rule.status == ACTIVE):
                active = layout.columns(rule.status == ACTIVE).to(dt)
            if on_epoch is not None:
                on_epoch(epochs, loss_u, rule.status)
    if (rule.status == DIVERGED).all():
        raise DivergenceError(
            DivergenceGuard.message(int(rule.n_iter.max()), math.nan, 0.0, rule.adapts)
        )
    out = it.reported()
    return ColumnResult(
        coef=out[:d].clone(),
        intercept=_intercept(out, d, fit_intercept).clone(),
        n_iter=rule.n_iter,
        status=rule.status,
        best_loss=rule.best,
    )


def _end_epoch(layout, it, rule, solver, schedule, loss, joint, score):
    """An epoch's bookkeeping on the host: every unit's objective (read
    once) and finiteness go to the rule (with the validation ``score``,
    under early stopping); the checkpoints, rates and restarts follow its
    decisions, and a new epoch starts. Returns the units' objectives."""
    rows = [
        _per_unit(layout, loss, joint),
        layout.unit_sum((~it.finite()).to(torch.float64)),
    ]
    host = torch.stack(rows).cpu().numpy()
    loss_u, bad = host[0], host[1] > 0
    was_active = rule.status == ACTIVE
    improved, restart, better, shrank = rule.update(loss_u, bad, score)
    if better.any():
        it.keep_validated(layout.columns(better))
    all_improved = bool(improved[was_active].all())
    it.epoch_done(
        None if all_improved or not improved.any() else layout.columns(improved),
        all_improved,
    )
    if shrank:
        schedule.eta0 = layout.columns(rule.eta).to(it.theta.dtype)
    if restart.any():
        cols = layout.columns(restart)
        it.restart(cols)
        solver.reset_columns(cols.nonzero()[:, 0])
    it.new_epoch()
    return loss_u


def _run_epoch(problem, solver, schedule, it, penalty, active):
    """One epoch of steps of every active column; its mean objective per
    column (float64; for the full batch, the objective at its start)."""
    theta, d = it.theta, problem.d
    acc = torch.zeros(theta.shape[1], dtype=torch.float64, device=theta.device)
    wsum = torch.zeros_like(acc)
    oracle = problem.oracle
    batches = (oracle.full_batch(),) if solver.full_batch else oracle.batches()
    for idx in batches:
        lr = schedule.rate(it.t).to(theta.dtype) * active
        objective, weight, moved = solver.step(problem, idx, lr)
        acc += objective.to(torch.float64) * weight
        wsum += weight
        if penalty.has_prox:
            penalty.prox_(theta[:d], solver.prox_step(moved, d))
        it.stepped(moved)
    return acc / wsum.clamp_min(torch.finfo(torch.float64).tiny)


def _intercept(theta, d, fit_intercept):
    return theta[d] if fit_intercept else torch.zeros_like(theta[0])


def _per_unit(layout, per_column, joint):
    """A unit's objective: the sum of its columns (a joint loss) or their mean."""
    total = layout.unit_sum(per_column.to(torch.float64))
    return total if joint else total / layout.k


def _host(eta0, U, k):
    """Per-unit host copy of a per-column (or scalar) ``eta0``."""
    if isinstance(eta0, torch.Tensor):
        return eta0.detach().cpu().numpy().astype(np.float64)[::k].copy()
    return np.full(U, float(eta0))
