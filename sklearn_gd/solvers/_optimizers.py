"""Solvers: one class per ``optimizer`` option, the SGD family on
``torch.optim``.

What each declares is :class:`~sklearn_gd.solvers._solver.Solver`'s.

Which estimator parameters each optimizer reads:

=========  ==============================================================
"sgd"      ``eta0`` and ``learning_rate`` (with ``power_t``), ``momentum``,
           ``nesterov``
"adam"     ``eta0`` and ``learning_rate`` (with ``power_t``); torch's default
           betas (0.9, 0.999) and eps (1e-8)
"adamw"    as "adam"; the L2 part of the penalty is applied as decoupled
           weight decay (``alpha * (1 - l1_ratio)``), not as a gradient term
"adagrad"  ``eta0`` and ``learning_rate`` (with ``power_t``); per-coordinate
           steps ``eta / (sqrt(sum of squared gradients) + 1e-10)``
"lbfgs"    ``max_iter`` and ``tol`` (the relative optimality measure;
           "auto": 1e-5); the full-batch L-BFGS of ``optimizer="auto"``
           (:class:`~sklearn_gd.solvers._quasi_newton.QuasiNewton`: in the
           preconditioner's metric, backtracking line search); no L1 part
=========  ==============================================================
"""

from __future__ import annotations

import torch

from ._quasi_newton import QuasiNewton
from ._solver import Solver

__all__ = ["OPTIMIZERS", "make_solver"]


class SGD(Solver):
    """Gradient descent, with heavy-ball or Nesterov momentum when asked."""

    scales_by_column = True

    def _build(self, param, lr):
        if self.momentum == 0:
            return None  # one in-place axpy: torch.optim would add overhead
        return torch.optim.SGD(
            [param], lr=lr, momentum=self.momentum, nesterov=self.nesterov
        )

    def step(self, problem, idx, lr):
        if self._opt is None:  # one step in place, no optimizer state
            return problem.descend_(self._param, idx, lr)
        return super().step(problem, idx, lr)

    def prox_step(self, lr):
        # with momentum m the iterate moves lr / (1 - m) times the gradient
        # at a fixed point: the L1 step must be as long
        return lr / (1.0 - self.momentum)


class _PerCoordinate(Solver):
    """A solver whose step is ``lr / (sqrt(second moment) + eps)`` per
    coordinate; subclasses say where the second moment is kept."""

    scales_by_column = True

    def _second_moment(self, state, group):
        raise NotImplementedError

    def prox_step(self, lr):
        state = self._opt.state.get(self._param)
        if not state:
            return lr
        group = self._opt.param_groups[0]
        return lr / (self._second_moment(state, group).sqrt() + group["eps"])


class Adam(_PerCoordinate):
    """Adam (torch's defaults: betas (0.9, 0.999), eps 1e-8)."""

    auto_scale = 0.01  # a hundred steps across the largest coordinate

    def _build(self, param, lr):
        return torch.optim.Adam([param], lr=lr)

    def _second_moment(self, state, group):
        beta2 = group["betas"][1]
        return state["exp_avg_sq"] / (1.0 - beta2 ** float(state["step"]))


class AdamW(Adam):
    """Adam with the L2 part of the penalty as decoupled weight decay.

    The decay (``w *= 1 - lr * l2`` before each step, as ``torch.optim.AdamW``
    does) touches the coefficient rows only, never the intercept; its fixed
    point is not the L2-penalised optimum.
    """

    decouples_l2 = True

    def _update(self, grad, lr, problem):
        problem.coef(self._param).mul_(1.0 - lr * problem.penalty.l2)
        super()._update(grad, lr, problem)


class Adagrad(_PerCoordinate):
    """Adagrad: per-coordinate steps shrinking with the squared gradients seen.

    Rarely active features (sparse text) keep long steps.
    """

    auto_scale = 0.1  # its steps shrink as 1 / sqrt(t): ~25 to get across

    def _build(self, param, lr):
        return torch.optim.Adagrad([param], lr=lr, eps=1e-10)

    def _second_moment(self, state, group):
        return state["sum"]


OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "lbfgs": QuasiNewton,
}


def make_solver(name: str, *, momentum=0.0, nesterov=False) -> Solver:
    """Build the solver registered under ``name``."""
    return OPTIMIZERS[name](momentum=momentum, nesterov=nesterov and momentum > 0)
