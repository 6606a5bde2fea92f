"""A solver with a learning rate per column: a batch of problems trained
together, each at its own rate."""

from __future__ import annotations

import torch

from ._solver import Solver

__all__ = ["ScaledSolver"]


class ScaledSolver(Solver):
    """``solver`` with a learning rate per column of the parameter matrix.

    The solver steps at rate 1; the change of each column is then
    multiplied by that column's rate (0 for a problem that has stopped, or
    one without rows in the batch). That is exact for every solver whose
    update is its rate times a direction that does not depend on the rate
    (SGD with or without momentum, Adam, AdamW, Adagrad): the solvers that
    declare ``scales_by_column``. The proximal step is scaled alike.
    Objectives and batch weights are per column, in float64.
    """

    def __init__(self, solver: Solver):
        if not solver.scales_by_column:
            raise ValueError(f"{type(solver).__name__} takes no rate per column")
        super().__init__()
        self.solver = solver
        self.full_batch = solver.full_batch
        self.moved = None  # the rate each column moved at in the last step

    def start(self, param: torch.Tensor, lr, state: dict | None = None):
        self._param = param
        self.solver.start(param, 1.0)

    def reset(self, lr) -> None:
        self.solver.reset(1.0)

    def reset_columns(self, columns: torch.Tensor) -> None:
        self.solver.reset_columns(columns)

    def state_dict(self) -> dict | None:
        return None

    def step(self, problem, idx, lr):
        before = self._param.clone()
        objective, weight = self.solver.step(problem, idx, 1.0)
        self.moved = moved = lr * (weight > 0)
        self._param.sub_(before).mul_(moved).add_(before)
        return objective.to(torch.float64), weight.to(torch.float64)

    def prox_step(self, lr):
        return self.solver.prox_step(1.0) * self.moved
