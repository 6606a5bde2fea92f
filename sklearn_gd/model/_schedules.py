"""Learning-rate schedules, as scikit-learn's SGD defines them.

``t`` counts weight updates and starts at 1, as ``SGDRegressor.t_`` does. A
schedule gives the rate at step ``t`` and says whether a stall shrinks it
(``adapts``): ``"adaptive"``'s rate is divided by ``factor`` (5) at each
stall while it is above ``min_rate``; the others end the training there.

``eta0``, ``alpha``, the optimal ``t0`` and ``t`` may also be tensors of
per-column values (the cross-validation estimators give every column its own
schedule): ``rate`` is then elementwise. The training loop shrinks ``eta0``
problem by problem.
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "Schedule", "make_schedule"]


class Schedule:
    """``eta = eta0`` for every step."""

    # whether a stall shrinks the rate (and training goes on) rather than
    # ending the training
    adapts = False

    def __init__(
        self,
        eta0: float,
        power_t: float = 0.25,
        alpha: float = 0.0,
        optimal_init: float = 1.0,
    ):
        self.eta0 = eta0
        self.power_t = power_t
        self.alpha = alpha
        self.optimal_init = optimal_init

    def rate(self, t: int) -> float:
        """The learning rate of update number ``t`` (1-based)."""
        return self.eta0


class Constant(Schedule):
    pass


class InvScaling(Schedule):
    """``eta = eta0 / t ** power_t``."""

    def rate(self, t):
        return self.eta0 / t**self.power_t


class Optimal(Schedule):
    """``eta = 1 / (alpha * (t0 + t - 1))``, Leon Bottou's heuristic for ``t0``."""

    def rate(self, t):
        return 1.0 / (self.alpha * (self.optimal_init + t - 1))


class Adaptive(Schedule):
    """``eta0`` until the training stalls, then divided by 5 at each stall."""

    min_rate = 1e-6
    factor = 5.0  # the rate is divided by this at each stall
    adapts = True

    def rate(self, t):
        return self.eta0


SCHEDULES = {
    "constant": Constant,
    "invscaling": InvScaling,
    "optimal": Optimal,
    "adaptive": Adaptive,
}


def optimal_init(alpha: float, dloss) -> float:
    """scikit-learn's ``t0`` for the 'optimal' schedule (``_sgd_fast.pyx``).

    ``dloss(y, p)`` is the scalar derivative of the loss in ``p``; like
    scikit-learn, it is evaluated at ``y=1, p=-typw`` without an absolute value.
    """
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    initial_eta0 = typw / max(1.0, dloss(1.0, -typw))
    return 1.0 / (initial_eta0 * alpha)


def make_schedule(
    name: str, *, eta0: float, power_t: float, alpha: float, dloss=None
) -> Schedule:
    """Build the schedule registered under ``name``."""
    init = optimal_init(alpha, dloss) if name == "optimal" else 1.0
    return SCHEDULES[name](eta0, power_t=power_t, alpha=alpha, optimal_init=init)
