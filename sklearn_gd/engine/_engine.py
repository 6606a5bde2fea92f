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

import torch

from ._epoch import read_epoch, run_epoch
from ._iterate import DivergenceGuard, Iterate, Restarts, check_rate_fits
from ._problem import Problem
from ._records import EpochInfo, History, TrainResult, TrainState
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
) -> TrainResult:
    """Minimise ``oracle`` data term + ``penalty`` from ``init``.

    Parameters
    ----------
    oracle : Oracle
    penalty : Penalty
    schedule : Schedule
    solver : Solver
    stopping : StoppingRule
    max_iter : int
        Epochs (passes over the data) at most.
    fit_intercept : bool
    average : int
        0 for no averaging; else the update number from which the iterates
        are averaged (averaged SGD).
    init : TrainState
    validation : Validation or None
        Early stopping on the validation score (R^2, or accuracy for
        :class:`~sklearn_gd.engine._stopping.AccuracyValidation`) when given;
        the best parameters seen are restored at the end.
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

    Raises
    ------
    DivergenceError
        When the objective or parameters become non-finite and the schedule
        cannot shrink its rate any further.
    """
    it = Iterate(init, fit_intercept, average)
    problem = Problem(oracle, penalty, *init.coef.shape, joint_outputs, intercept_decay)
    training = Training(
        problem, it, schedule, solver, stopping, validation, init.optimizer_state
    )
    with torch.no_grad():
        try:
            while training.epoch < max_iter:
                if training.next_epoch(on_epoch):
                    break
        except KeyboardInterrupt:
            training.interrupt()
    return training.result(max_iter)


class Training:
    """One call of :func:`train` under way: its parts and where it stands
    (the epochs counted, the last learning rate, whether it converged or was
    interrupted)."""

    def __init__(
        self,
        problem: Problem,
        it: Iterate,
        schedule,
        solver,
        stopping: StoppingRule,
        validation: Validation | None,
        optimizer_state: dict | None,
    ):
        """Set the solver and the stopping rule up on ``problem`` from the
        iterate ``it``, with the divergence guard, the restarts and the
        history."""
        self.problem, self.it, self.validation = problem, it, validation
        self.schedule, self.solver, self.stopping = schedule, solver, stopping
        self.lr = schedule.rate(it.t)
        check_rate_fits(self.lr, it.theta.dtype)
        solver.setup(problem, it.theta)
        stopping.bind(problem, it)
        solver.start(it.theta, self.lr, optimizer_state)
        self.guard = DivergenceGuard(float(problem.oracle.zero_model_loss().mean()))
        self.restarts = Restarts(it, self.guard, schedule, solver)
        self.history = History(validation)
        self.converged = self.interrupted = False
        self.start = time.perf_counter()
        self.epoch = 0

    def next_epoch(self, on_epoch) -> bool:
        """One epoch with its checks (divergence, the stopping rule, the
        callback); True when the training stops."""
        it, stopping, solver = self.it, self.stopping, self.solver
        if self.epoch and stopping.idles(solver):
            # its steps would leave everything as it is: count them
            mean = self.history.losses[-1]
            it.t += 1
        else:
            mean, self.lr = run_epoch(self.problem, solver, self.schedule, it)
        loss, param_sum = read_epoch(mean, it)
        if self.guard.diverged(loss, param_sum):
            self.restarts.after_divergence(self.epoch + 1, loss, self.lr)
            return False
        self.epoch += 1
        self.restarts.epoch_done(improved=loss < stopping.best_loss)
        score = self.history.record(loss, it, stopping.best_score)
        stalled = stopping.update(loss, score, solver)
        stop = on_epoch is not None and bool(
            on_epoch(_epoch_info(self.epoch, loss, score, it, self.lr, self.start))
        )
        if stalled:
            stop = self._answer_stall(loss) or stop
        return stop

    def _answer_stall(self, loss: float) -> bool:
        """After a stall: whether the training stops (and whether it then
        converged), or goes on with a smaller step."""
        stopping = self.stopping
        if stopping.final:
            self.converged = stopping.reached
            return True
        if not self.restarts.after_stall(
            grew=self.validation is None and loss > stopping.best_loss
        ):  # the schedule's floor: convergence by sklearn's rule only
            self.converged = stopping.floor_converges
            return True
        stopping.reset()
        return False

    def interrupt(self) -> None:
        """After a KeyboardInterrupt: keep the best parameters reached so
        far; the caller warns."""
        self.interrupted = True
        if self.validation is None:
            losses = self.history.losses
            self.restarts.keep_best(
                bool(losses) and losses[-1] <= self.stopping.best_loss
            )
        self.it.averager = None  # the running average may be mid-update

    def result(self, max_iter: int) -> TrainResult:
        """The conclusion: whether the training converged, and what it
        produced."""
        stopping, solver, history = self.stopping, self.solver, self.history
        converged = self.converged
        if not converged and stopping.idles(solver):
            # tol=None's max_iter epochs, the last ones idle at a stop the
            # solver certified (or not: the caller warns then)
            converged = stopping.reached
        elif not (converged or self.interrupted) and self.epoch >= max_iter:
            converged = stopping.conclude(solver)
        return TrainResult(
            **_parameters(self.it, history.best_params),
            n_iter=self.epoch,
            t=self.it.t,
            loss_curve=history.losses,
            validation_scores=history.scores,
            best_loss=stopping.best_loss,
            best_validation_score=None
            if self.validation is None
            else stopping.best_score,
            optimizer_state=solver.state_dict(),
            converged=converged,
            interrupted=self.interrupted,
            lr=self.lr,
            optimality=solver.optimality if stopping.value is None else stopping.value,
            solver_stuck=bool(solver.stuck),
            measure=stopping.measure_name or solver.measure_name,
            tol=stopping.tol_used,
        )


def _epoch_info(epoch, loss, score, it, lr, start) -> EpochInfo:
    coef, intercept = it.split(it.current())
    return EpochInfo(
        epoch=epoch,
        loss=loss,
        validation_score=score,
        coef=coef,
        intercept=intercept,
        t=it.t,
        lr=lr,
        elapsed=time.perf_counter() - start,
    )


def _parameters(it: Iterate, best_params) -> dict:
    """The result's parameter tensors: the reported ones (the best seen under
    early stopping), the last iterate and the running average."""
    out = it.current() if best_params is None else best_params
    coef, intercept = it.split(out)
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
