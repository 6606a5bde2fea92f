"""The training loop: epochs of solver steps over a gradient oracle.

The engine never sees an estimator. It takes an oracle (the data term), the
components (penalty, schedule, solver, stopping rule) and plain settings, and
returns a :class:`TrainResult`. :func:`train` is a short loop over named
parts:

* :func:`run_epoch`, one pass of solver steps (minibatches, or one full-batch
  step for solvers that declare ``full_batch``), with the proximal step and
  the running average;
* :class:`DivergenceGuard`, which tells a diverged epoch (non-finite, or far
  above the all-zero model) from a good one;
* :class:`Restarts`, the divergence and restart policy, with the states a
  restart goes back to, whole: parameters, update count and running average;
* :class:`History`, the record of the epochs and of the best validated
  parameters;
* a stopping rule (:class:`NoImprovement`, scikit-learn's SGD rule), which
  says when the training has stalled; the schedule then decides whether a
  smaller step goes on (``"adaptive"``) or the training stops.

Within an epoch nothing waits on the device: losses are accumulated as
tensors and read once per epoch, where divergence is also checked.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import torch

__all__ = [
    "AccuracyValidation",
    "DivergenceError",
    "NoImprovement",
    "Optimality",
    "TrainResult",
    "TrainState",
    "Validation",
    "check_rate_fits",
    "train",
]


class DivergenceError(ValueError):
    """The objective or the parameters became inf or NaN during training."""


@dataclass
class TrainState:
    """Parameters the training starts from (and that partial_fit carries)."""

    coef: torch.Tensor  # (n_features, n_outputs)
    intercept: torch.Tensor  # (n_outputs,)
    t: int = 1  # weight updates so far, plus one (sklearn's t_)
    avg_coef: torch.Tensor | None = None
    avg_intercept: torch.Tensor | None = None
    optimizer_state: dict | None = None


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


@dataclass
class TrainResult:
    """What one call of :func:`train` produced."""

    coef: torch.Tensor
    intercept: torch.Tensor
    n_iter: int
    t: int
    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_loss: float = math.inf
    best_validation_score: float | None = None
    avg_coef: torch.Tensor | None = None
    avg_intercept: torch.Tensor | None = None
    standard_coef: torch.Tensor | None = None  # last iterate, before averaging
    standard_intercept: torch.Tensor | None = None
    optimizer_state: dict | None = None
    converged: bool = False
    interrupted: bool = False
    lr: float = 0.0
    optimality: float | None = None  # the solver's last relative measure
    measure: str = "relative optimality measure"  # what ``optimality`` is
    tol: float | None = None  # what the measure was compared with
    solver_stuck: bool = False  # the solver could make no more progress


@dataclass
class EpochInfo:
    """Handed to the per-epoch callback."""

    epoch: int  # 1-based
    loss: float
    validation_score: float | None
    coef: torch.Tensor
    intercept: torch.Tensor
    t: int
    lr: float
    elapsed: float


# ---------------------------------------------------------------- the problem
class Problem:
    """The objective the loop minimises: oracle data term plus penalty.

    ``theta`` stacks the coefficients and (when fitted) the intercept as one
    (n_features + fit_intercept, n_outputs) matrix.

    The reported objective is the mean over outputs of data term plus
    penalty for independent outputs, or the whole objective for a joint loss
    (``joint``: the columns form one problem). ``sum_scale`` times it is the
    sum whose gradient the oracle's gradient is.
    """

    def __init__(
        self, oracle, penalty, n_features, n_outputs, joint, intercept_decay=1.0
    ):
        self.oracle = oracle
        self.penalty = penalty
        self.d = n_features
        self.k = n_outputs
        self.joint = joint
        self.intercept_decay = intercept_decay
        self.sum_scale = 1 if joint else n_outputs
        self._lazy = False
        self._scale = 1.0  # under lazily(): the coefficients' pending factor

    def coef(self, theta):
        return theta[: self.d]

    def evaluate(self, theta, idx, with_l2=True):
        """Objective, batch weight and gradient at ``theta`` on batch ``idx``;
        ``with_l2=False`` leaves the L2 part out of the gradient."""
        values, weight, grad = self.oracle.loss_grad(theta, idx)
        W = theta[: self.d]
        if with_l2:
            self.penalty.add_gradient_(grad[: self.d], W)
        return self._objective(values.mean(), self.penalty.total(W)), weight, grad

    def _objective(self, mean_value, penalty):
        """The reported objective from the data term's mean over outputs and
        the penalty's total (tensors, or floats read on the host)."""
        objective = mean_value + penalty / self.k
        return objective * self.k if self.joint else objective

    def descend_(self, theta, idx, lr):
        """One gradient step of rate ``lr`` on batch ``idx``, in place, as
        ``evaluate`` and ``theta -= lr * grad`` would take it (the intercept's
        step times ``intercept_decay``); returns the objective at the batch's
        iterate and the batch's weight.

        Where the oracle :attr:`descends_in_place` no gradient is built: the
        data term's step goes straight into ``theta`` and the L2 part's is a
        scaling, ``W_new = c W - lr g = c (W - (lr / c) g)``,
        ``c = 1 - lr l2``. Under :meth:`lazily` (where the oracle
        :attr:`scales_lazily`: sparse batches) the scaling is kept as a
        number, ``W = s V``, as scikit-learn's SGD keeps its ``wscale``: a
        step touches only the batch's features."""
        W = theta[: self.d]
        c = self.penalty.decay(lr) if self.oracle.descends_in_place else None
        if not c:  # None, or 0: the weights vanish, which c (W - ...) cannot say
            self._settle(W)
            return descend_plainly_(self, theta, idx, lr)
        s = self._scale
        # at the batch's iterate (an L2 penalty: s^2 times V's); on the host
        # reading a scalar costs nothing and float arithmetic is cheaper
        # than torch's on 0-dim tensors; on an accelerator it would be a
        # synchronisation a batch, so the objective stays a tensor there
        on_host = reads_on_host(W)
        penalty = self.penalty.total(W)
        penalty = (float(penalty) if on_host else penalty) * (s * s)
        values, weight = self.oracle.loss_descend_(
            theta, idx, lr / (c * s), lr * self.intercept_decay, s
        )
        if self._lazy:
            self._scale = s * c
            if self._scale < 1e-9:  # before V's values grow out of range
                self._settle(W)
        elif c != 1.0:
            W.mul_(c)
        mean = values.mean()
        return self._objective(float(mean) if on_host else mean, penalty), weight

    @contextlib.contextmanager
    def lazily(self, theta):
        """Within the block :meth:`descend_` may leave the coefficient rows
        of ``theta`` scaled by a pending factor, so nothing may read them
        there; they are exact again after it (also when it raises). Only
        where the oracle :attr:`scales_lazily`."""
        if not self.oracle.scales_lazily:
            yield
            return
        self._lazy = True
        try:
            yield
        finally:
            self._lazy = False
            self._settle(theta[: self.d])

    def _settle(self, W):
        """Apply the pending factor to the coefficients."""
        if self._scale != 1.0:
            W.mul_(self._scale)
            self._scale = 1.0


def reads_on_host(t: torch.Tensor) -> bool:
    """Whether reading a value of ``t`` on the host costs no
    synchronisation with a device."""
    return t.device.type == "cpu"


def gradient_step_(problem, theta, idx, lr):
    """``theta -= lr * grad``, the L2 part's gradient included: a step linear
    in ``lr``, for callers that take it at rate 1 and scale the change by
    each column's own rate (the CV engine's ``ScaledSolver``), which the
    clamp of :func:`descend_plainly_` would break."""
    objective, weight, grad = problem.evaluate(theta, idx)
    theta.sub_(grad, alpha=lr)
    return objective, weight


def descend_plainly_(problem, theta, idx, lr):
    """``problem.descend_`` from its gradient, in scikit-learn's order: the
    L2 part scales the coefficients by ``max(0, 1 - lr l2)``
    (:meth:`~sklearn_gd.model._penalties.Penalty.shrink_`), then the data term's
    gradient, taken at the parameters before, moves them by ``-lr`` times
    it (the intercept by ``-lr * problem.intercept_decay`` times its). Never
    an explicit L2 gradient step: past ``lr = 2 / l2`` it would diverge."""
    objective, weight, grad = problem.evaluate(theta, idx, with_l2=False)
    d = problem.coef(theta).shape[0]
    problem.penalty.shrink_(theta[:d], lr)
    theta[:d].sub_(grad[:d], alpha=lr)
    theta[d:].sub_(grad[d:], alpha=lr * problem.intercept_decay)
    return objective, weight


class Averager:
    """The running mean of the iterates from update ``start`` (averaged SGD)."""

    def __init__(self, start: int, init: torch.Tensor):
        self.start = start
        self.value = init

    def update(self, theta, t):
        if t >= self.start:
            self.value.add_(theta - self.value, alpha=1.0 / (t - self.start + 1))

    def active(self, t) -> bool:
        """Whether the average has begun after ``t - 1`` updates."""
        return t - 1 >= self.start


class Iterate:
    """The parameters being trained: ``theta``, the update count ``t`` and
    the running average (or None)."""

    def __init__(self, init: TrainState, fit_intercept: bool, average: int):
        d = init.coef.shape[0]
        if fit_intercept:
            theta = torch.cat([init.coef.detach(), init.intercept.detach()[None]], 0)
        else:
            theta = init.coef.detach().clone()
        self.theta = theta
        self.t = int(init.t)
        self.d = d
        self.fit_intercept = fit_intercept
        self.averager = None
        if average:
            if init.avg_coef is not None:
                avg = torch.cat([init.avg_coef, init.avg_intercept[None]], 0)
                avg = avg if fit_intercept else avg[:d].clone()
            else:
                avg = torch.zeros_like(theta)
            self.averager = Averager(average, avg)

    def split(self, th):
        """(coef, intercept) views of a stacked parameter matrix."""
        if self.fit_intercept:
            return th[: self.d], th[self.d]
        return th[: self.d], torch.zeros_like(th[0])

    def current(self):
        """The reported parameters: the average once it has begun."""
        avg = self.averager
        return avg.value if avg is not None and avg.active(self.t) else self.theta

    def snapshot(self):
        avg = None if self.averager is None else self.averager.value.clone()
        return (self.theta.clone(), self.t, avg)

    def restore(self, snap):
        theta, t, avg = snap
        self.theta.copy_(theta)
        self.t = t
        if avg is not None:
            self.averager.value.copy_(avg)

    def finite_check(self):
        """A 0-dim tensor that is finite iff every parameter is."""
        out = self.theta.sum()
        if self.averager is not None:
            out = out + self.averager.value.sum()
        return out


# ---------------------------------------------------------------- the parts
def run_epoch(problem: Problem, solver, schedule, it: Iterate):
    """One epoch of solver steps; returns the epoch's mean objective (a
    0-dim tensor) and the last learning rate."""
    oracle = problem.oracle
    if solver.full_batch:
        return _run_batches(problem, solver, schedule, it, (oracle.full_batch(),))
    with oracle.batch_threads():
        return _run_batches(problem, solver, schedule, it, oracle.batches())


def _run_batches(problem: Problem, solver, schedule, it: Iterate, batches):
    penalty = problem.penalty
    # the L1 step and the running average read the coefficients after each
    # step; without them a step may leave them lazily scaled
    if penalty.has_prox or it.averager is not None:
        return _steps(problem, solver, schedule, it, batches)
    with problem.lazily(it.theta):
        return _steps(problem, solver, schedule, it, batches)


def _steps(problem: Problem, solver, schedule, it: Iterate, batches):
    penalty = problem.penalty
    acc, wsum, lr = 0.0, 0.0, schedule.rate(it.t)
    W = problem.coef(it.theta)
    for idx in batches:
        lr = schedule.rate(it.t)
        objective, weight = solver.step(problem, idx, lr)
        acc = acc + objective * weight
        wsum = wsum + weight
        scale = solver.prox_step(lr) if penalty.has_prox else None
        if scale is not None:  # None: the solver took its proximal step
            if isinstance(scale, torch.Tensor):
                scale = scale[: problem.d]
            penalty.prox_(W, scale)
        if it.averager is not None:
            it.averager.update(it.theta, it.t)
        it.t += 1
    return acc / wsum, lr


class DivergenceGuard:
    """Tells a diverged epoch: a non-finite objective or parameter, or an
    objective that is both far above the all-zero model's (``factor``
    times) and far above the best epoch so far (``jump`` times).

    A single huge epoch is not divergence: scikit-learn's own SGD paths (the
    "optimal" schedule on raw features, say) start far above the zero model
    and come down as the rate decays, their noise moving the objective by
    tens of percent. A step that cannot work makes the objective grow
    geometrically, past ``jump`` times its best within a few epochs, or to
    inf/NaN.
    """

    factor = 1e3
    jump = 10.0

    def __init__(self, zero_model_loss: float):
        z = zero_model_loss
        self.limit = self.factor * z if z > 0 else math.inf
        self.best = math.inf

    def diverged(self, loss: float, param_sum: float) -> bool:
        if not (math.isfinite(loss) and math.isfinite(param_sum)):
            return True
        if loss > self.limit and loss > self.jump * self.best:
            return True
        self.best = min(self.best, loss)
        return False

    @classmethod
    def message(cls, epoch, loss, lr, adaptive: bool) -> str:
        if not math.isfinite(loss):
            # scikit-learn's words for an overflow, which its users look for
            step = (
                "learning_rate='adaptive' already shrank the step to its floor; "
                "try a smaller eta0."
                if adaptive
                else "Try a smaller eta0, or learning_rate='adaptive'."
            )
            return (
                f"Floating-point under-/overflow occurred at epoch #{epoch}: "
                f"training diverged at epoch {epoch}: the objective became "
                f"{loss:.6g} (learning rate {lr:.3g}). {step} Scaling input "
                "data with StandardScaler or MinMaxScaler might help."
            )
        hint = (
            "learning_rate='adaptive' already shrank the step to its floor; "
            "try a smaller eta0 or scale the features (e.g. StandardScaler)."
            if adaptive
            else "Try a smaller eta0, scale the features (e.g. StandardScaler), "
            "or learning_rate='adaptive'."
        )
        return (
            f"Training diverged at epoch {epoch}: the objective became {loss:.6g} "
            f"(learning rate {lr:.3g}): non-finite, or over {cls.factor:g} times "
            f"that of the all-zero model and {cls.jump:g} times its best epoch. "
            f"{hint}"
        )


class Restarts:
    """The divergence and restart policy.

    It keeps two checkpoints, each a whole state (parameters, update count
    and running average): the start of the current epoch, and the start of
    the epoch with the best objective so far (for the full batch, exactly
    the point that objective was measured at). A diverged epoch shrinks the
    step and goes back to the best checkpoint, or raises
    :class:`DivergenceError` when the schedule cannot shrink it; a stall
    shrinks the step too, going back when the objective grew.
    """

    def __init__(self, it: Iterate, guard: DivergenceGuard, schedule, solver):
        self.it, self.guard = it, guard
        self.schedule, self.solver = schedule, solver
        self.epoch_start = self.best_start = it.snapshot()

    def epoch_done(self, improved: bool):
        if improved:
            self.best_start = self.epoch_start
        self.epoch_start = self.it.snapshot()

    def restart(self):
        """Back to the best checkpoint, with the solver's state reset."""
        self.it.restore(self.best_start)
        self.epoch_start = self.best_start
        self.solver.reset(self.schedule.rate(self.it.t))

    def after_divergence(self, epoch, loss, lr):
        if not self.schedule.on_stall():
            raise DivergenceError(
                self.guard.message(epoch, loss, lr, self.schedule.adapts)
            )
        # the start of this epoch may already be far off after a minibatch
        # epoch that blew up only at its end
        self.restart()

    def after_stall(self, grew: bool) -> bool:
        """Whether training goes on (with a smaller step) after a stall."""
        if not self.schedule.on_stall():
            return False
        if grew:  # from the best point with the smaller step, not from here
            self.restart()
        return True

    def keep_best(self, last_was_best: bool):
        """After an interruption: the end of the last complete epoch if it
        was the best so far, else the start of the best epoch."""
        self.it.restore(self.epoch_start if last_was_best else self.best_start)


class History:
    """The record of the epochs: objectives, validation scores and the
    parameters of the best validation score."""

    def __init__(self, validation: Validation | None):
        self.validation = validation
        self.losses: list[float] = []
        self.scores = None if validation is None else []
        self.best_params = None

    def record(self, loss: float, it: Iterate, best_score: float):
        """Append an epoch; returns its validation score (or None)."""
        self.losses.append(loss)
        if self.validation is None:
            return None
        cur = it.current()
        score = float(self.validation.score(*it.split(cur)))
        self.scores.append(score)
        if score > best_score:
            self.best_params = cur.clone()
        return score


class NoImprovement:
    """scikit-learn's SGD stopping rule.

    Without validation data an epoch makes no progress when its objective is
    above ``best - tol``; with it, when the validation score is below
    ``best + tol``. After ``n_iter_no_change`` such epochs in a row the
    training has stalled. ``tol=None`` never stalls.
    """

    def __init__(self, tol: float | None, n_iter_no_change: int):
        self.tol = -math.inf if tol is None else tol
        self.patience = n_iter_no_change
        self.best_loss = math.inf
        self.best_score = -math.inf
        self.count = 0

    final = False  # a stall may shrink the step and go on (Restarts)
    floor_converges = True  # a stall at the schedule's floor is convergence
    value = None  # no optimality measure

    def update(self, loss: float, score: float | None, solver=None) -> bool:
        """Record an epoch; True when the training has stalled."""
        if score is not None:
            worse = score < self.best_score + self.tol
            self.best_score = max(self.best_score, score)
        else:
            worse = loss > self.best_loss - self.tol
        self.best_loss = min(self.best_loss, loss)
        self.count = self.count + 1 if worse else 0
        return self.count >= self.patience

    def reset(self):
        """Start counting again (after the schedule shrank the step)."""
        self.count = 0

    def idles(self, solver) -> bool:
        """Whether the next epoch may be counted without being run (see
        :meth:`Optimality.idles`): never for the schedules' solvers."""
        return False


class MeasuredProgress(NoImprovement):
    """The optimality measure, for gradient descent and the adaptive
    methods under ``tol="auto"``: it decides both the stalls the schedule
    reacts to and the ending.

    After each epoch the measure is taken at the reported parameters: the
    (proximal) gradient mapping's norm in the preconditioner's metric
    (:class:`~sklearn_gd.solvers._full_batch.GradientMapping`), relative to the
    start, as the full-batch solvers measure theirs. The fit converges when
    it reaches ``tol``. An epoch makes progress when it brings the measure
    1% below its best; ``n_iter_no_change`` epochs without progress are a
    stall, which shrinks an "adaptive" step as scikit-learn's rule does. A
    stall at the schedule's floor is not convergence: the fit ends with a
    warning that reports the measure.
    """

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

    def bind(self, problem, it) -> None:
        """Start measuring on ``problem`` from the iterate's start."""
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

    def reset(self):
        super().reset()
        self.best_value = math.inf


class Optimality:
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
    measure_name = None
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
        self.tol = tol
        self.tol_used = None
        self.best_loss = math.inf
        self.best_score = -math.inf
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
        certify = getattr(solver, "certify", None) if self._certifying else None
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
            self._candidate_after = self._epochs + getattr(solver, "check_every", 1)
        return bool(solver.stuck)

    def conclude(self, solver) -> bool:
        """At ``max_iter``, not converged: whether the solver's certificate
        shows the fit converged anyway (``tol="auto"`` only)."""
        if self._certifying:
            gap = self._certificate(solver, self.certified_tol)
            self.reached = gap is not None and gap <= self.certified_tol
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
            self.reached = getattr(solver, "at_precision", False) or (
                auto and value <= getattr(solver, "precision_tol", -math.inf)
            )
        if self.tol is None:  # no stopping rule: max_iter epochs, as sklearn's
            return False
        return solver.stuck


def check_rate_fits(lr: float, dtype) -> None:
    """Raise a ValueError when the first (the largest) learning rate of a
    schedule overflows the data's dtype."""
    if not lr <= torch.finfo(dtype).max:
        raise ValueError(
            f"The learning rate {lr:.3g} overflows {dtype} (the data's "
            "dtype): choose a smaller eta0 (or a larger alpha with "
            "learning_rate='optimal')."
        )


# ---------------------------------------------------------------- the loop
def train(
    oracle,
    *,
    penalty,
    schedule,
    solver,
    stopping: NoImprovement | Optimality,
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
    stopping : NoImprovement or Optimality
    max_iter : int
        Epochs (passes over the data) at most.
    fit_intercept : bool
    average : int
        0 for no averaging; else the update number from which the iterates
        are averaged (averaged SGD).
    init : TrainState
    validation : Validation or None
        Early stopping on the validation score (R^2, or accuracy for
        :class:`AccuracyValidation`) when given; the best parameters seen are
        restored at the end.
    on_epoch : callable or None
        Called with an :class:`EpochInfo` after each epoch; returning True
        stops the training.
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
    lr = schedule.rate(it.t)
    check_rate_fits(lr, it.theta.dtype)
    solver.setup(problem, it.theta)
    if hasattr(stopping, "bind"):
        stopping.bind(problem, it)
    solver.start(it.theta, lr, init.optimizer_state)
    guard = DivergenceGuard(float(oracle.zero_model_loss().mean()))
    restarts = Restarts(it, guard, schedule, solver)
    history = History(validation)
    converged = interrupted = False
    start = time.perf_counter()
    epoch = 0
    with torch.no_grad():
        try:
            while epoch < max_iter:
                if epoch and stopping.idles(solver):
                    # its steps would leave everything as it is: count them
                    mean = history.losses[-1]
                    it.t += 1
                else:
                    mean, lr = run_epoch(problem, solver, schedule, it)
                loss, param_sum = _read_epoch(mean, it)
                if guard.diverged(loss, param_sum):
                    restarts.after_divergence(epoch + 1, loss, lr)
                    continue
                epoch += 1
                restarts.epoch_done(improved=loss < stopping.best_loss)
                score = history.record(loss, it, stopping.best_score)
                stalled = stopping.update(loss, score, solver)
                stop = on_epoch is not None and bool(
                    on_epoch(_epoch_info(epoch, loss, score, it, lr, start))
                )
                if stalled and stopping.final:
                    converged, stop = stopping.reached, True
                elif stalled and not restarts.after_stall(
                    grew=validation is None and loss > stopping.best_loss
                ):  # the schedule's floor: convergence by sklearn's rule only
                    converged, stop = stopping.floor_converges, True
                elif stalled:
                    stopping.reset()
                if stop:
                    break
        except KeyboardInterrupt:
            # keep the best parameters reached so far; the caller warns
            interrupted = True
            if validation is None:
                losses = history.losses
                restarts.keep_best(bool(losses) and losses[-1] <= stopping.best_loss)
            it.averager = None  # the running average may be mid-update
    if not converged and stopping.idles(solver):
        # tol=None's max_iter epochs, the last ones idle at a stop the
        # solver certified (or not: the caller warns then)
        converged = stopping.reached
    elif not (converged or interrupted) and epoch >= max_iter:
        conclude = getattr(stopping, "conclude", None)
        converged = conclude is not None and conclude(solver)
    return TrainResult(
        **_parameters(it, history.best_params),
        n_iter=epoch,
        t=it.t,
        loss_curve=history.losses,
        validation_scores=history.scores,
        best_loss=stopping.best_loss,
        best_validation_score=None if validation is None else stopping.best_score,
        optimizer_state=solver.state_dict(),
        converged=converged,
        interrupted=interrupted,
        lr=lr,
        optimality=solver.optimality if stopping.value is None else stopping.value,
        solver_stuck=bool(getattr(solver, "stuck", False)),
        measure=getattr(stopping, "measure_name", None)
        or getattr(solver, "measure_name", TrainResult.measure),
        tol=getattr(stopping, "tol_used", getattr(stopping, "target", None)),
    )


def _read_epoch(mean, it: Iterate) -> tuple[float, float]:
    """The epoch's objective and the parameters' sum (finite iff every
    parameter is): the one host synchronisation of the epoch."""
    if isinstance(mean, float):  # a full-batch solver's objective, already read
        return mean, float(it.finite_check())
    loss = torch.as_tensor(mean, dtype=torch.float64, device=it.theta.device)
    both = torch.stack([loss.reshape(()), it.finite_check().to(torch.float64)])
    loss, param_sum = both.tolist()
    return loss, param_sum


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
