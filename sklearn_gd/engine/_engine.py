"""The training loop: epochs of solver steps over a gradient oracle.

The engine never sees an estimator. It takes an oracle (the data term), the
components (penalty, schedule, solver, stopping rule) and plain settings, and
returns a :class:`~sklearn_gd.engine._records.TrainResult`. :func:`train` is a
short loop over named parts:

* :func:`~sklearn_gd.engine._epoch.run_epoch`, one pass of solver steps
  (minibatches, or one full-batch step for solvers that declare
  ``full_batch``), with the proximal step and the running average;
* :class:`~sklearn_gd.engine._iterate.DivergenceGuard`, which tells a diverged
  epoch (non-finite, or far above the all-zero model) from a good one;
* :class:`~sklearn_gd.engine._iterate.Restarts`, the divergence and restart
  policy, with the states a restart goes back to, whole: parameters, update
  count and running average;
* :class:`~sklearn_gd.engine._records.History`, the record of the epochs and
  of the best validated parameters;
* a stopping rule (:class:`~sklearn_gd.engine._stopping.NoImprovement`,
  scikit-learn's SGD rule), which says when the training has stalled; the
  schedule then decides whether a smaller step goes on (``"adaptive"``) or
  the training stops.

Within an epoch nothing waits on the device: losses are accumulated as
tensors and read once per epoch, where divergence is also checked.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..objective._problem import Problem, ProblemBatch
from ._epoch import read_epoch, run_epoch
from ._iterate import (
    DivergenceError,
    DivergenceGuard,
    Iterate,
    Restarts,
    check_rate_fits,
)
from ._records import (
    ACTIVE,
    CONVERGED,
    DIVERGED,
    MAX_ITER,
    STOPPED,
    EpochInfo,
    History,
    TrainResult,
    TrainState,
)
from ._stopping import StoppingRule, Validation

__all__ = ["Training", "train"]


def train(
    oracle,
    *,
    penalty,
    schedule,
    solver,
    stopping: StoppingRule,
    max_iter=1000,
    fit_intercept=True,
    average=0,
    init: TrainState,
    validation: Validation | None = None,
    on_epoch=None,
    joint_outputs=False,
    intercept_decay=1.0,
    layout=None,
) -> TrainResult:
    """Minimise ``oracle`` data term + ``penalty`` from ``init``: one
    problem, or a batch of independent problems.

    Parameters
    ----------
    oracle : Oracle
        The data term (for a batch, the column data term bound to
        ``layout``).
    penalty : Penalty
        For a batch, with per-column strengths.
    schedule : Schedule
        For a batch, with per-column rates.
    solver : Solver
        For a batch, a :class:`~sklearn_gd.solvers.ScaledSolver`.
    stopping : StoppingRule
        For a batch, a rule that declares ``batched``.
    max_iter : int
        Epochs (passes over the data) at most, per problem.
    fit_intercept : bool
    average : int
        0 for no averaging; else the update number from which the iterates
        are averaged (averaged SGD).
    init : TrainState
    validation : Validation or None
        Early stopping on the validation score (R^2, or accuracy for
        :class:`~sklearn_gd.engine._stopping.AccuracyValidation`; for a
        batch, any object whose ``score(coef, intercept)`` gives every
        problem's) when given; each problem's best parameters seen are
        restored at the end.
    on_epoch : callable or None
        Called with an :class:`~sklearn_gd.engine._records.EpochInfo` after
        each epoch; returning True stops the training.
    joint_outputs : bool
        False: the outputs are independent problems, and the reported
        objective is their mean. True: they form one problem (a joint loss
        such as softmax cross-entropy), and the reported objective is the sum
        of the data terms plus the penalty of the whole matrix.
    intercept_decay : float
        The factor on the intercept's step in plain gradient descent
        (scikit-learn's 0.01 for per-sample steps on sparse rows; see
        ``Planner.intercept_decay``).
    layout : Layout or None
        A batch of problems: every unit of the layout's columns is one
        (:class:`~sklearn_gd.objective._problem.ProblemBatch`), trained with
        its own rate, stopping state and restarts; None: one problem.

    Raises
    ------
    DivergenceError
        When the objective or parameters of every problem become non-finite
        and the schedule cannot shrink its rate any further.
    """
    it = Iterate(init, fit_intercept, average)
    d, k = init.coef.shape
    if layout is None:
        problem = Problem(oracle, penalty, d, k, joint_outputs, intercept_decay)
    else:
        problem = ProblemBatch(oracle, penalty, d, layout, joint_outputs)
    training = Training(
        problem,
        it,
        schedule,
        solver,
        stopping,
        validation,
        init.optimizer_state,
        max_iter,
    )
    with torch.no_grad():
        try:
            while training.going():
                if training.next_epoch(on_epoch):
                    break
        except KeyboardInterrupt:
            training.interrupt()
    return training.result()


class Training:
    """One call of :func:`train` under way: its parts and where each
    problem stands (its epochs, its status), with the last learning rate
    and whether it was interrupted."""

    def __init__(
        self,
        problem: Problem,
        it: Iterate,
        schedule,
        solver,
        stopping: StoppingRule,
        validation: Validation | None,
        optimizer_state: dict | None,
        max_iter: int,
    ):
        """Set the solver and the stopping rule up on ``problem`` from the
        iterate ``it``, with the divergence guard, the restarts and the
        history; each problem trains ``max_iter`` epochs at most."""
        self.problem, self.it, self.validation = problem, it, validation
        self.max_iter = max_iter
        self.schedule, self.solver, self.stopping = schedule, solver, stopping
        self.lr = schedule.rate(it.t)
        check_rate_fits(_largest(self.lr), it.theta.dtype)
        solver.setup(problem, it.theta)
        stopping.bind(problem, it)
        solver.start(it.theta, self.lr, optimizer_state)
        self.guard = DivergenceGuard(problem.zero_loss())
        self.restarts = Restarts(it, schedule, solver, problem)
        self.history = History(validation, problem.n_units)
        self.status = np.full(problem.n_units, ACTIVE)
        self.n_iter = np.zeros(problem.n_units, dtype=np.int64)
        self.active = self._rates_mask()
        self.interrupted = False
        self.start = time.perf_counter()
        self.epochs = 0

    @property
    def epoch(self) -> int:
        """Epochs run (by the first problem: a single fit's)."""
        return int(self.n_iter[0])

    def going(self) -> bool:
        """Whether a problem is still training."""
        self.status[(self.status == ACTIVE) & (self.n_iter >= self.max_iter)] = MAX_ITER
        return bool((self.status == ACTIVE).any())

    def _rates_mask(self):
        """For a batch: 1 on the columns of the problems still training, 0
        elsewhere (their rates' factor); None for one problem."""
        cols = self.problem.columns(self.status == ACTIVE)
        return None if cols is None else cols.to(self.it.theta.dtype)

    def next_epoch(self, on_epoch) -> bool:
        """One epoch with its checks (divergence, the stopping rule, the
        callback); True when the training stops."""
        it, stopping, solver = self.it, self.stopping, self.solver
        on = self.status == ACTIVE
        if self.epoch and stopping.idles(solver):
            # its steps would leave everything as it is: count them
            mean = self.history.losses[-1]
            it.t += 1
        else:
            mean, self.lr = run_epoch(
                self.problem, solver, self.schedule, it, self.active
            )
        loss, bad = read_epoch(mean, it, self.problem)
        diverged = self.guard.diverged(loss, bad, on) & on
        ok = on & ~diverged
        if diverged.any():
            self._after_divergence(diverged, loss)
        stop = False
        if ok.any():
            stop = self._epoch_done(loss, ok, on, on_epoch)
        if stop:
            self.status[self.status == ACTIVE] = STOPPED
        if self.active is not None and not np.array_equal(on, self.status == ACTIVE):
            self.active = self._rates_mask()
        return stop

    def _epoch_done(self, loss, ok, on, on_epoch) -> bool:
        """The problems ``ok`` ran an epoch that did not diverge: their
        checkpoints, scores, stopping rule and callback; True when the
        callback stops the training."""
        self.n_iter[ok] += 1
        self.epochs += 1
        best = _entries(self.stopping.best_loss, loss)
        self.restarts.epoch_done((ok & (loss < best)) | ~on)
        score = self._score(ok)
        self.history.record(loss, score)
        stalled = self._stalls(loss, score, ok)
        stop = on_epoch is not None and bool(on_epoch(self._epoch_info(loss, score)))
        if stalled.any():
            self._answer_stall(stalled, loss)
        return stop

    def _score(self, ok):
        """Every problem's validation score (None without validation);
        the parameters of those whose score is their best so far are
        kept."""
        if self.validation is None:
            return None
        it = self.it
        score = self.validation.score(*it.split(it.current()))
        if isinstance(score, torch.Tensor):
            score = score.detach().cpu().numpy()
        score = np.atleast_1d(np.asarray(score, dtype=np.float64))
        better = ok & (score > _entries(self.stopping.best_score, score))
        if better.any():
            it.keep_validated(self.problem.columns(better))
        return score

    def _stalls(self, loss, score, ok) -> np.ndarray:
        """The stopping rule's verdict per problem."""
        stopping = self.stopping
        if stopping.batched:
            return stopping.update(loss, score, self.solver, on=ok)
        one = None if score is None else float(score[0])
        return np.array([bool(stopping.update(float(loss[0]), one, self.solver))])

    def _answer_stall(self, stalled, loss) -> None:
        """After a stall: whether each problem stops (and whether it then
        converged), or goes on with a smaller step, from its best
        checkpoint where its objective grew."""
        stopping = self.stopping
        if stopping.final:
            self.status[stalled] = CONVERGED if stopping.reached else STOPPED
            return
        restarts = self.restarts
        can = restarts.can_shrink()
        # at the schedule's floor: convergence by sklearn's rule only
        self.status[stalled & ~can] = CONVERGED if stopping.floor_converges else STOPPED
        goes_on = stalled & can
        if goes_on.any():
            restarts.shrink(goes_on)
            if self.validation is None:
                restarts.restart(goes_on & (loss > _entries(stopping.best_loss, loss)))
            stopping.reset(goes_on)

    def _after_divergence(self, diverged, loss) -> None:
        """The problems ``diverged`` go back to their best checkpoint with
        a smaller step, or fail where the schedule cannot shrink it: when
        every problem has failed, :class:`DivergenceError`."""
        restarts = self.restarts
        can = restarts.can_shrink()
        fails = diverged & ~can
        if fails.any():
            self.status[fails] = DIVERGED
            if (self.status == DIVERGED).all():
                u = int(np.flatnonzero(fails)[0])
                raise DivergenceError(
                    DivergenceGuard.message(
                        int(self.n_iter[u]) + 1,
                        float(loss[u]),
                        _largest(self.lr),
                        self.schedule.adapts,
                    )
                )
        back = diverged & can
        restarts.shrink(back)
        restarts.restart(back)

    def interrupt(self) -> None:
        """After a KeyboardInterrupt: keep the best parameters reached so
        far; the caller warns."""
        self.interrupted = True
        if self.validation is None:
            losses = self.history.losses
            best = _entries(self.stopping.best_loss, self.n_iter)
            self.restarts.keep_best(bool(losses) and losses[-1] <= best[0])
        self.it.averager = None  # the running average may be mid-update

    def result(self) -> TrainResult:
        """The conclusion: whether the training converged, and what it
        produced."""
        stopping, solver, history = self.stopping, self.solver, self.history
        converged = bool(self.status[0] == CONVERGED)
        if not converged and stopping.idles(solver):
            # tol=None's max_iter epochs, the last ones idle at a stop the
            # solver certified (or not: the caller warns then)
            converged = stopping.reached
        elif not (converged or self.interrupted) and self.epoch >= self.max_iter:
            solver.last_check()
            converged = stopping.conclude(solver)
        best_loss = _entries(stopping.best_loss, self.n_iter)
        best_score = _entries(stopping.best_score, self.n_iter)
        return TrainResult(
            **_parameters(self.it),
            n_iter=self.epoch if self.problem.layout is None else self.n_iter,
            t=self.it.t,
            loss_curve=history.losses,
            validation_scores=history.scores,
            best_loss=_one(best_loss, self.problem),
            best_validation_score=None
            if self.validation is None
            else _one(best_score, self.problem),
            optimizer_state=solver.state_dict(),
            converged=converged,
            interrupted=self.interrupted,
            lr=self.lr,
            optimality=solver.optimality if stopping.value is None else stopping.value,
            solver_stuck=bool(solver.stuck),
            measure=stopping.measure_name or solver.measure_name,
            tol=stopping.tol_used,
            status=self.status,
        )

    def _epoch_info(self, loss, score) -> EpochInfo:
        it, problem = self.it, self.problem
        coef, intercept = it.split(it.current())
        return EpochInfo(
            epoch=self.epochs,
            loss=_one(loss, problem),
            validation_score=None if score is None else _one(score, problem),
            coef=coef,
            intercept=intercept,
            t=it.t,
            lr=self.lr,
            elapsed=time.perf_counter() - self.start,
            status=self.status,
        )


def _entries(value, like) -> np.ndarray:
    """A rule's best (a float for one problem, else an array) as an array
    like ``like``."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64), np.shape(like))


def _one(values: np.ndarray, problem):
    """One problem's entry as a float; a batch's as its array."""
    return float(values[0]) if problem.layout is None else values


def _largest(lr) -> float:
    """The largest of a rate or of per-column rates."""
    if isinstance(lr, torch.Tensor):
        return float(lr.max())
    return float(lr)


def _parameters(it: Iterate) -> dict:
    """The result's parameter tensors: the reported ones (the best seen under
    early stopping), the last iterate and the running average."""
    coef, intercept = it.split(it.reported())
    std_coef, std_intercept = it.split(it.theta)
    avg = None if it.averager is None else it.split(it.averager.value)
    return dict(
        coef=coef.clone(),
        intercept=intercept.clone(),
        standard_coef=std_coef.clone(),
        standard_intercept=std_intercept.clone(),
        avg_coef=None if avg is None else avg[0].clone(),
        avg_intercept=None if avg is None else avg[1].clone(),
    )
