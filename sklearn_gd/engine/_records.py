"""The records of a training: its starting state, its epochs and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ._stopping import Validation

__all__ = [
    "ACTIVE",
    "CONVERGED",
    "DIVERGED",
    "MAX_ITER",
    "STOPPED",
    "EpochInfo",
    "History",
    "TrainResult",
    "TrainState",
]

# where each problem of a batch stands: training, converged, out of epochs,
# failed (diverged at the schedule's floor), or stopped before converging
ACTIVE, CONVERGED, MAX_ITER, DIVERGED, STOPPED = 0, 1, 2, 3, 4


@dataclass
class TrainState:
    """Parameters the training starts from (and that partial_fit carries)."""

    coef: torch.Tensor  # (n_features, n_outputs)
    intercept: torch.Tensor  # (n_outputs,)
    # weight updates so far, plus one (sklearn's t_); for a batch of
    # problems, a float64 tensor of one count per column
    t: int | torch.Tensor = 1
    avg_coef: torch.Tensor | None = None
    avg_intercept: torch.Tensor | None = None
    optimizer_state: dict | None = None


@dataclass
class TrainResult:
    """What one call of :func:`~sklearn_gd.engine._engine.train` produced.

    For a batch of problems ``n_iter``, ``best_loss`` and ``status`` hold
    one entry per problem (host arrays)."""

    coef: torch.Tensor
    intercept: torch.Tensor
    n_iter: int | np.ndarray
    t: int | torch.Tensor
    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_loss: float | np.ndarray = math.inf
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
    status: np.ndarray | None = None  # per problem: ACTIVE, CONVERGED, ...


@dataclass
class EpochInfo:
    """Handed to the per-epoch callback (for a batch of problems, ``loss``
    and ``status`` hold one entry per problem)."""

    epoch: int  # 1-based
    loss: float | np.ndarray
    validation_score: float | None
    coef: torch.Tensor
    intercept: torch.Tensor
    t: int
    lr: float
    elapsed: float
    status: np.ndarray | None = None


class History:
    """The record of the epochs of one problem: objectives and validation
    scores (a batch's problems keep none)."""

    def __init__(self, validation: Validation | None, n_units: int):
        self.keeps = n_units == 1
        self.losses: list[float] = []
        self.scores = None if validation is None else []

    def record(self, loss: np.ndarray, score: np.ndarray | None) -> None:
        if self.keeps:
            self.losses.append(float(loss[0]))
            if score is not None:
                self.scores.append(float(score[0]))
