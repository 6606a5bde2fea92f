"""The solver base: the capabilities every solver declares, and their defaults.

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
    (:func:`~sklearn_gd.objective._protocol.solution_scale`).

The gradient reaches a ``torch.optim`` optimizer through ``param.grad``;
:meth:`Solver.prox_step` returns the step that multiplied the gradient in the
last update (a scalar, or a tensor for per-coordinate methods), so that the
proximal step makes the penalised optimum an exact fixed point.

The engine reads, after each step, what a solver says of its progress:

``optimality``
    A relative optimality measure (None: none), for the solvers that
    declare ``measures_optimality``; ``measure_name`` says what it is.
``stuck``
    No step can decrease the objective any more (at the data's precision).
``at_precision``
    Stuck, and converged there: the solver's estimate of its gap is
    negligible.
``precision_tol``
    The optimality measure below which a stuck ``tol="auto"`` fit has
    converged (``-inf``: none).
``certify``
    ``certify(enough)``, the relative duality gap at the iterate, or None
    where the solver has no certificate (the attribute itself is None).
``check_every``
    Steps to wait, after a certificate refused the stop that the measure
    proposed, before the next proposal is checked.

And at ``max_iter``, where the fit has not converged, the engine calls
``last_check()``: a solver with a costlier measure than its checks' (see
:class:`~sklearn_gd.solvers._smoothing.Smoothing`) updates ``optimality``
with it there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["Solver"]


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
    # whether the update is the rate times a direction that does not depend
    # on it, so that a batch of problems may take it at a rate per column
    # (:class:`~sklearn_gd.solvers._scaled.ScaledSolver`)
    scales_by_column: bool = False
    supports_prox: bool = True
    decouples_l2: bool = False
    auto_eta0: float | None = None
    auto_scale: float | None = None
    # whether ``optimality`` holds a relative optimality measure after each
    # step (then ``tol`` is compared with it; see _preconditioned.py)
    measures_optimality: bool = False
    optimality: float | None = None
    measure_name: str = "relative optimality measure"  # what optimality is
    stuck: bool = False  # no step can decrease the objective any more
    at_precision: bool = False  # stuck, and converged at the data's precision
    # the measure below which a stuck fit under tol="auto" has converged
    precision_tol: float = -math.inf
    # certify(enough): the relative duality gap at the iterate, or None
    certify: Callable[[float], float | None] | None = None
    check_every: int = 1  # steps between proposals a certificate refused

    def __init__(self, *, momentum: float = 0.0, nesterov: bool = False):
        self.momentum = momentum
        self.nesterov = nesterov
        self._opt = None
        self._param = None

    @property
    def parameter(self) -> torch.Tensor | None:
        """The parameters being trained (``start``'s ``param``, updated in
        place by each step), None before :meth:`start`."""
        return self._param

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

    def last_check(self) -> None:
        """At ``max_iter``, not converged: a costlier measure of
        ``optimality``, where the solver has one (none here)."""

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
