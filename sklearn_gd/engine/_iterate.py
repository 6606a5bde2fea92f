"""The iterate being trained and its safeguards: the running average, the
divergence guard and the restarts from checkpoints."""

from __future__ import annotations

import math

import numpy as np
import torch

from ._records import TrainState

__all__ = [
    "Averager",
    "DivergenceError",
    "DivergenceGuard",
    "Iterate",
    "Restarts",
    "check_rate_fits",
]


class DivergenceError(ValueError):
    """The objective or the parameters became inf or NaN during training.

    Raised by ``fit`` and ``partial_fit`` instead of returning a model that
    blew up; the estimator keeps the model it had before the call. The
    message names the epoch and the learning rate.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gd import DivergenceError, TorchSGDRegressor
    >>> X, y = np.array([[100.0], [200.0], [300.0]]), np.array([1.0, 2.0, 3.0])
    >>> reg = TorchSGDRegressor(optimizer="sgd", learning_rate="constant", eta0=1.0)
    >>> try:
    ...     reg.fit(X, y)
    ... except DivergenceError as exc:
    ...     print(str(exc)[:26])
    Training diverged at epoch
    """


class Averager:
    """The running mean of the iterates from update ``start`` (averaged SGD)."""

    def __init__(self, start: int, init: torch.Tensor):
        self.start = start
        self.value = init

    def update(self, theta, t, stepped=None):
        """Average in ``theta`` after update ``t``: one problem's (``t`` an
        int), or a batch's (``t`` a tensor per column, ``stepped`` the
        columns that moved)."""
        if stepped is None:
            if t >= self.start:
                self.value.add_(theta - self.value, alpha=1.0 / (t - self.start + 1))
            return
        since = t - self.start + 1
        rate = torch.where(stepped & (since >= 1), 1.0 / since, 0.0)
        self.value.addcmul_(theta - self.value, rate.to(theta.dtype))

    def active(self, t):
        """Whether the average has begun after ``t - 1`` updates (per
        column, where ``t`` is a tensor)."""
        return t - 1 >= self.start


def _copy(value):
    return value.clone() if isinstance(value, torch.Tensor) else value


class Iterate:
    """The parameters being trained: ``theta``, the update count ``t`` and
    the running average (or None), with the best validated parameters of
    early stopping.

    ``t`` is an int for one problem, or a float64 tensor of one count per
    column for a batch of problems (each column counts its own updates:
    a unit whose fold has no row in a batch takes no step on it). A
    restore may be whole or column by column.
    """

    def __init__(self, init: TrainState, fit_intercept: bool, average: int):
        d = init.coef.shape[0]
        if fit_intercept:
            theta = torch.cat([init.coef.detach(), init.intercept.detach()[None]], 0)
        else:
            theta = init.coef.detach().clone()
        self.theta = theta
        self.t = init.t.clone() if isinstance(init.t, torch.Tensor) else int(init.t)
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
        self.validated = None  # early stopping: the best validated parameters
        self.has_validated = None  # per column: whether it has some

    def split(self, th):
        """(coef, intercept) views of a stacked parameter matrix."""
        if self.fit_intercept:
            return th[: self.d], th[self.d]
        return th[: self.d], torch.zeros_like(th[0])

    def advance(self, moved=None):
        """Count an update and average it in: every column's, or those of
        the per-column rates ``moved`` that are not 0."""
        stepped = None if moved is None else moved > 0
        if self.averager is not None:
            self.averager.update(self.theta, self.t, stepped)
        self.t = self.t + (1 if stepped is None else stepped)

    def current(self):
        """The reported parameters: the average once it has begun."""
        avg = self.averager
        if avg is None:
            return self.theta
        if isinstance(self.t, torch.Tensor):
            return torch.where(avg.active(self.t), avg.value, self.theta)
        return avg.value if avg.active(self.t) else self.theta

    def snapshot(self):
        avg = None if self.averager is None else self.averager.value.clone()
        return (self.theta.clone(), _copy(self.t), avg)

    def restore(self, snap, cols=None):
        """Go back to ``snap``: whole, or in the columns ``cols`` (a mask)."""
        if cols is not None:
            avg = None if self.averager is None else self.averager.value
            snap = self.merged(snap, (self.theta, self.t, avg), cols)
        theta, t, avg = snap
        self.theta.copy_(theta)
        self.t = _copy(t)
        if avg is not None:
            self.averager.value.copy_(avg)

    def merged(self, snap, other, cols):
        """A snapshot that is ``snap`` in the columns ``cols`` and ``other``
        elsewhere."""
        return tuple(
            None if a is None else torch.where(cols, a, b) for a, b in zip(snap, other)
        )

    def column_sums(self):
        """Per column, a sum that is finite iff every parameter (and
        average) of the column is."""
        out = self.theta.sum(0)
        if self.averager is not None:
            out = out + self.averager.value.sum(0)
        return out

    def finite_check(self):
        """A 0-dim tensor that is finite iff every parameter is."""
        return self.column_sums().sum()

    def keep_validated(self, cols=None):
        """The current parameters of the columns ``cols`` (a mask; None:
        all) are the best validated so far."""
        cur = self.current()
        if cols is None:
            cols = torch.ones(cur.shape[1], dtype=torch.bool, device=cur.device)
        if self.validated is None:
            self.validated = cur.clone()
            self.has_validated = cols.clone()
            return
        self.validated.copy_(torch.where(cols, cur, self.validated))
        self.has_validated |= cols

    def reported(self):
        """The best validated parameters where there are some, else the
        current ones."""
        if self.validated is None:
            return self.current()
        return torch.where(self.has_validated, self.validated, self.current())


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

    def __init__(self, zero_model_loss):
        z = np.atleast_1d(np.asarray(zero_model_loss, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            self.limit = np.where(z > 0, self.factor * z, np.inf)
        self.best = np.full(z.shape, np.inf)

    def diverged(self, loss: np.ndarray, bad: np.ndarray, on=None) -> np.ndarray:
        """Per problem (host arrays): whether its epoch diverged, ``bad``
        saying where a parameter is not finite; the best objective of the
        others (of those in ``on``) is recorded."""
        with np.errstate(invalid="ignore"):
            out = (
                bad
                | ~np.isfinite(loss)
                | ((loss > self.limit) & (loss > self.jump * self.best))
            )
        ok = ~out if on is None else on & ~out
        self.best[ok] = np.minimum(self.best[ok], loss[ok])
        return out

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
    """The divergence and restart policy, problem by problem.

    It keeps two checkpoints, each a whole state (parameters, update count
    and running average): the start of the current epoch, and the start of
    each problem's epoch with the best objective so far (for the full
    batch, exactly the point that objective was measured at). A diverged
    epoch shrinks the problem's step and goes back to its best checkpoint,
    or fails the problem when the schedule cannot shrink it; a stall
    shrinks the step too, going back when the objective grew. An adaptive
    schedule's rate is kept here per problem (``eta``) and spread over the
    problem's columns.
    """

    def __init__(self, it: Iterate, schedule, solver, problem):
        self.it, self.problem = it, problem
        self.schedule, self.solver = schedule, solver
        self.epoch_start = self.best_start = it.snapshot()
        self.eta = problem.per_problem(schedule.eta0)

    def can_shrink(self) -> np.ndarray:
        """Per problem: whether the schedule can shrink its step."""
        if not self.schedule.adapts:
            return np.zeros(self.problem.n_units, dtype=bool)
        return self.eta > self.schedule.min_rate

    def shrink(self, units: np.ndarray) -> None:
        """Divide the step of the problems ``units`` (a mask) by the
        schedule's factor."""
        if units.any():
            self.eta[units] /= self.schedule.factor
            self.schedule.eta0 = self.problem.spread(self.eta, self.it.theta.dtype)

    def epoch_done(self, improved: np.ndarray) -> None:
        """The start of this epoch becomes the best checkpoint of the
        problems that ``improved`` (a mask); the next epoch starts here."""
        if improved.all():
            self.best_start = self.epoch_start
        elif improved.any():
            cols = self.problem.columns(improved)
            self.best_start = self.it.merged(self.epoch_start, self.best_start, cols)
        self.epoch_start = self.it.snapshot()

    def restart(self, units: np.ndarray) -> None:
        """Back to the best checkpoint of the problems ``units`` (a mask),
        their solver state reset."""
        if not units.any():
            return
        cols = self.problem.columns(units)
        self.it.restore(self.best_start, cols)
        if cols is None:
            self.epoch_start = self.best_start
            self.solver.reset(self.schedule.rate(self.it.t))
        else:
            self.epoch_start = self.it.merged(self.best_start, self.epoch_start, cols)
            self.solver.reset_columns(cols.nonzero()[:, 0])

    def keep_best(self, last_was_best: bool):
        """After an interruption: the end of the last complete epoch if it
        was the best so far, else the start of the best epoch."""
        self.it.restore(self.epoch_start if last_was_best else self.best_start)


def check_rate_fits(lr: float, dtype) -> None:
    """Raise a ValueError when the first (the largest) learning rate of a
    schedule overflows the data's dtype."""
    if not lr <= torch.finfo(dtype).max:
        raise ValueError(
            f"The learning rate {lr:.3g} overflows {dtype} (the data's "
            "dtype): choose a smaller eta0 (or a larger alpha with "
            "learning_rate='optimal')."
        )
