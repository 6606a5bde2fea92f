"""The iterate being trained and its safeguards: the running average, the
divergence guard and the restarts from checkpoints."""

from __future__ import annotations

import math

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
    """The objective or the parameters became inf or NaN during training."""


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


def check_rate_fits(lr: float, dtype) -> None:
    """Raise a ValueError when the first (the largest) learning rate of a
    schedule overflows the data's dtype."""
    if not lr <= torch.finfo(dtype).max:
        raise ValueError(
            f"The learning rate {lr:.3g} overflows {dtype} (the data's "
            "dtype): choose a smaller eta0 (or a larger alpha with "
            "learning_rate='optimal')."
        )
