"""The records of a training: its starting state, its epochs and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ._iterate import Iterate
    from ._stopping import Validation

__all__ = ["EpochInfo", "History", "TrainResult", "TrainState"]


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
class TrainResult:
    """What one call of :func:`~sklearn_gd.engine._engine.train` produced."""

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
