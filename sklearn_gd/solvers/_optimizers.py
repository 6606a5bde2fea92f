"""Solvers: one class per ``optimizer`` option, each on ``torch.optim``.

A solver declares what it needs and implements its step; the engine asks it
and never looks at its name. The declarations:

``full_batch``
    Each step sees the whole training set (the engine hands it the full
    batch once per epoch instead of the minibatches).
``supports_prox``
    It can take the non-smooth (L1) part of the penalty as a proximal step
    after its update. A solver without it refuses such a penalty in
    :meth:`Solver.check`, the one place where compatibility is decided.
``decouples_l2``
    It applies the L2 part of the penalty itself (weight decay), so the
    gradient it is handed leaves that part out.
``auto_eta0``
    The step ``eta0="auto"`` stands for; None means ``1 / L`` with ``L`` the
    curvature of the objective, estimated from the data.
``auto_scale``
    For the per-coordinate methods (Adam, AdamW, Adagrad), which move each
    coordinate by about their learning rate a step: ``eta0="auto"`` is this
    fraction of the solution's scale, estimated from the data
    (:func:`~sklearn_gd.objective._oracles.solution_scale`).

The gradient reaches a ``torch.optim`` optimizer through ``param.grad``;
:meth:`Solver.prox_step` returns the step that multiplied the gradient in the
last update (a scalar, or a tensor for per-coordinate methods), so that the
proximal step makes the penalised optimum an exact fixed point.

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
"lbfgs"    ``eta0`` (the initial step of each line search, default 1) and
           ``max_iter``; full batch, strong-Wolfe line search; no L1 part
=========  ==============================================================
"""

from __future__ import annotations

import torch

__all__ = ["OPTIMIZERS", "Solver", "make_solver"]


class Solver:
    """Base class of a solver: the update rule of one ``optimizer`` option.

    Parameters
    ----------
    momentum : float
        Read by the solvers that have momentum.
    nesterov : bool
        Read by the solvers that have momentum.
    """

    full_batch: bool = False
    supports_prox: bool = True
    decouples_l2: bool = False
    auto_eta0: float | None = None
    auto_scale: float | None = None
    # whether ``optimality`` holds a relative optimality measure after each
    # step (then ``tol`` is compared with it; see _full_batch.py)
    measures_optimality: bool = False
    optimality: float | None = None
    stuck: bool = False  # no step can decrease the objective any more

    def __init__(self, *, momentum: float = 0.0, nesterov: bool = False):
        self.momentum = momentum
        self.nesterov = nesterov
        self._opt = None
        self._param = None

    def setup(self, problem, theta: torch.Tensor) -> None:
        """Read what the solver needs from the problem before training
        (a preconditioner, say); nothing by default."""

    # ------------------------------------------------------- declarations
    @classmethod
    def check(cls, name: str, penalty_name, penalty) -> None:
        """Raise a ValueError if this solver cannot minimise ``penalty``."""
        if penalty.has_prox and not cls.supports_prox:
            raise ValueError(
                f"optimizer={name!r} cannot handle the non-smooth penalty "
                f"{penalty_name!r} (its L1 part needs a proximal step); use an "
                "optimizer that takes one, or penalty='l2'."
            )

    # -------------------------------------------------------------- state
    def _build(self, param: torch.Tensor, lr: float):
        """The ``torch.optim`` optimizer over ``param``, or None."""
        raise NotImplementedError

    def start(self, param: torch.Tensor, lr: float, state: dict | None = None):
        """Begin training ``param`` at rate ``lr``, from ``state`` if given."""
        self._param = param
        self._opt = self._build(param, lr)
        if self._opt is not None and state is not None:
            try:
                self._opt.load_state_dict(state)
            except (ValueError, KeyError):
                pass  # a state from another optimizer: start afresh

    def reset(self, lr: float) -> None:
        """Forget the accumulated state (after a restart from a checkpoint)."""
        self._opt = self._build(self._param, lr)

    def reset_columns(self, columns: torch.Tensor) -> None:
        """Forget the accumulated state of some columns of the parameter
        matrix (one column's restart, when each column is its own problem):
        every state tensor shaped like the parameters is zeroed there, which
        is what a fresh optimizer starts from."""
        if self._opt is None:
            return
        for state in self._opt.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor) and value.shape == self._param.shape:
                    value[:, columns] = 0

    def state_dict(self) -> dict | None:
        """The optimizer's state, to continue in a later ``partial_fit``."""
        return None if self._opt is None else self._opt.state_dict()

    def _set_lr(self, lr: float) -> None:
        for group in self._opt.param_groups:
            group["lr"] = lr

    # --------------------------------------------------------------- step
    def step(self, problem, idx, lr: float):
        """One update of the parameters on the batch ``idx``.

        ``problem.evaluate(theta, idx, with_l2)`` gives the objective at the
        current parameters, the batch's weight and the gradient. Returns the
        objective and weight (both possibly 0-dim tensors: no host sync).
        """
        objective, weight, grad = problem.evaluate(
            self._param, idx, with_l2=not self.decouples_l2
        )
        self._update(grad, lr, problem)
        return objective, weight

    def _update(self, grad: torch.Tensor, lr: float, problem) -> None:
        self._set_lr(lr)
        self._param.grad = grad
        self._opt.step()

    def prox_step(self, lr: float):
        """The step that multiplied the gradient in the last update (None
        for a solver that takes the proximal step inside its update)."""
        return lr


class SGD(Solver):
    """Gradient descent, with heavy-ball or Nesterov momentum when asked."""

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


class LBFGS(Solver):
    """L-BFGS, one iteration per epoch on the full batch, strong-Wolfe search."""

    full_batch = True
    supports_prox = False
    auto_eta0 = 1.0

    def _build(self, param, lr):
        return torch.optim.LBFGS(
            [param],
            lr=lr,
            max_iter=1,
            # one iteration per call, but a full strong-Wolfe search: torch's
            # default max_eval (max_iter * 5 // 4 = 1) would leave it none
            max_eval=25,
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )

    def step(self, problem, idx, lr):
        param = self._param

        def closure():
            objective, _, grad = problem.evaluate(param, idx, with_l2=True)
            param.grad = grad
            # k independent problems or one joint one: minimise the sum
            return objective * problem.sum_scale

        self._set_lr(lr)
        return self._opt.step(closure) / problem.sum_scale, 1.0


OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "lbfgs": LBFGS,
}


def make_solver(name: str, *, momentum=0.0, nesterov=False) -> Solver:
    """Build the solver registered under ``name``."""
    return OPTIMIZERS[name](momentum=momentum, nesterov=nesterov and momentum > 0)
