"""The objective the training loop minimises, and its gradient steps: one
problem (:class:`Problem`), or a batch of independent problems, a unit of
columns each (:class:`ProblemBatch`)."""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import torch

__all__ = [
    "Problem",
    "ProblemBatch",
    "descend_plainly_",
    "gradient_step_",
    "reads_on_host",
]


class Problem:
    """The objective the loop minimises: oracle data term plus penalty.

    ``theta`` stacks the coefficients and (when fitted) the intercept as one
    (n_features + fit_intercept, n_outputs) matrix.

    The reported objective is the mean over outputs of data term plus
    penalty for independent outputs, or the whole objective for a joint loss
    (``joint``: the columns form one problem). ``sum_scale`` times it is the
    sum whose gradient the oracle's gradient is.

    The training loop reads every problem's state as host arrays with one
    entry per problem (``n_units`` of them): here one.
    """

    n_units = 1
    layout = None  # one problem: no units of columns

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

    def with_oracle(self, oracle) -> Problem:
        """This problem on another data term: the same penalty, shapes and
        scaling, with ``oracle`` in place of this one's (which stays as it
        was). Smoothing solves its smoothed problem through such a copy."""
        twin = copy.copy(self)
        twin.oracle = oracle
        return twin

    def coef(self, theta):
        return theta[: self.d]

    # ----------------------------------------------- per-problem bookkeeping
    def per_problem(self, value) -> np.ndarray:
        """A setting (a number) as a host array of one entry per problem."""
        return np.full(1, float(value))

    def spread(self, per_problem: np.ndarray, dtype):
        """A per-problem host array as the setting it came from."""
        return float(per_problem[0])

    def columns(self, units: np.ndarray):
        """The columns of the problems ``units`` (a mask): None, all of them
        (one problem restores whole)."""
        return None

    def unit_values(self, objective: torch.Tensor) -> torch.Tensor:
        """Each problem's objective from what the steps reported."""
        return objective.reshape(1)

    def unit_sums(self, per_column: torch.Tensor) -> torch.Tensor:
        """Each problem's sum of a per-column vector."""
        return per_column.sum().reshape(1)

    def zero_loss(self) -> np.ndarray:
        """Each problem's objective at the all-zero model."""
        return np.full(1, float(self.oracle.zero_model_loss().mean()))

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


class ProblemBatch(Problem):
    """A batch of independent problems: every unit of ``layout``'s columns
    is one, with its own rows (its fold's weights, in the column oracle),
    penalty strength (the penalty's per-column strengths) and steps.

    Steps are linear in the rate (no clamp, no lazy scaling: the columns'
    strengths differ), so that a solver taken at rate 1 may scale each
    column's change by its own rate (:class:`~sklearn_gd.solvers.ScaledSolver`).
    Objectives and batch weights are per column.
    """

    def __init__(self, oracle, penalty, n_features, layout, joint):
        super().__init__(oracle, penalty, n_features, layout.k, joint)
        self.layout = layout
        self.n_units = layout.n_units

    def evaluate(self, theta, idx, with_l2=True):
        values, weight, grad = self.oracle.loss_grad(theta, idx)
        W = theta[: self.d]
        if with_l2:
            self.penalty.add_gradient_(grad[: self.d], W)
        return values + self.penalty.column_values(W), weight, grad

    def descend_(self, theta, idx, lr):
        """One gradient step in place, linear in ``lr``."""
        return gradient_step_(self, theta, idx, lr)

    @contextlib.contextmanager
    def lazily(self, theta):
        """No lazy scaling: the columns' strengths differ."""
        yield

    def per_problem(self, value) -> np.ndarray:
        if isinstance(value, torch.Tensor):  # per column: a unit's first
            host = value.detach().cpu().numpy().astype(np.float64)
            return host[:: self.layout.k].copy()
        return np.full(self.n_units, float(value))

    def spread(self, per_problem: np.ndarray, dtype):
        return self.layout.columns(per_problem).to(dtype)

    def columns(self, units: np.ndarray):
        return self.layout.columns(units)

    def unit_values(self, objective: torch.Tensor) -> torch.Tensor:
        """A unit's objective: the sum of its columns' (a joint loss) or
        their mean."""
        total = self.layout.unit_sum(objective.to(torch.float64))
        return total if self.joint else total / self.layout.k

    def unit_sums(self, per_column: torch.Tensor) -> torch.Tensor:
        return self.layout.unit_sum(per_column)

    def zero_loss(self) -> np.ndarray:
        return self.unit_values(self.oracle.zero_model_loss()).cpu().numpy()


def reads_on_host(t: torch.Tensor) -> bool:
    """Whether reading a value of ``t`` on the host costs no
    synchronisation with a device."""
    return t.device.type == "cpu"


def gradient_step_(problem, theta, idx, lr):
    """``theta -= lr * grad``, the L2 part's gradient included: a step linear
    in ``lr``, for callers that take it at rate 1 and scale the change by
    each column's own rate (:class:`~sklearn_gd.solvers.ScaledSolver`), which the
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
