"""The protocol every oracle keeps (:class:`Oracle`), the curvature it
describes, and the step size's estimates drawn from that curvature."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Curvature",
    "Oracle",
    "check_moments_finite",
    "lipschitz_estimate",
    "solution_scale",
]


@dataclass
class Curvature:
    """The second-moment matrix ``X~' S X~ / sum(s)`` of an oracle's data.

    Either ``matrix`` itself (float64) or its product ``matvec`` with a
    vector of size ``dim``; ``max_row`` is the largest row term
    ``s_i ||x~_i||^2 n / sum(s)`` (None when no minibatch needs it).
    """

    matrix: torch.Tensor | None = None
    matvec: Callable[[torch.Tensor], torch.Tensor] | None = None
    dim: int = 0
    dtype: torch.dtype = torch.float64
    device: torch.device | None = None
    max_row: float | None = None


def check_moments_finite(A, what: str = "X' X / n") -> None:
    """Raise a ValueError when the second moments of the data (a tensor or
    a numpy array) overflow: features too large for any step to be computed
    (scikit-learn's SGD reports the same overflow, advising a scaler)."""
    if isinstance(A, torch.Tensor):
        finite = bool(torch.isfinite(A).all())
    else:
        finite = bool(np.isfinite(A).all())
    if not finite:
        # scikit-learn's words for an overflow, which its users look for
        raise ValueError(
            "Floating-point under-/overflow occurred at epoch #1: the features "
            f"are too large, their second moments ({what}) overflow before any "
            "step. Scaling input data with StandardScaler or MinMaxScaler "
            "might help."
        )


def solution_scale(oracle, theta0: torch.Tensor, curvature: float, l2: float) -> float:
    """The largest coordinate of the diagonal Newton step from ``theta0``
    (all zeros): ``|g_j| / (curvature E[x_j^2] + l2)`` for a coefficient,
    ``|g_b| / curvature`` for the intercept, for each output.

    The scale of the solution's coordinates, which a per-coordinate method
    (Adam, Adagrad) travels in steps of about its learning rate; one pass
    for the moments and one gradient.
    """
    _, second = oracle.column_moments()
    _, _, grad = oracle.loss_grad(theta0, oracle.full_batch())
    d = second.shape[0]
    grad = grad.to(torch.float64).abs()
    scale = grad[:d] / (curvature * second + l2).clamp_min(1e-300)[:, None]
    if grad.shape[0] > d:  # the intercept's row
        scale = torch.cat([scale, grad[d:] / curvature])
    value = float(scale.max())
    return value if math.isfinite(value) and value > 0 else 1.0


def lipschitz_estimate(oracle, n_iter: int = 30) -> tuple[float, float | None]:
    """Largest eigenvalue of the oracle's second-moment matrix, and its
    largest scaled row norm.

    The eigenvalue comes from ``eigvalsh`` when the oracle gives the matrix,
    and otherwise from power iteration from a fixed start (deterministic, and
    unchanged when rows are repeated instead of weighted). It stops after
    ``n_iter`` steps, or once the estimate stops moving in the data's
    precision (4 ulps): TF-IDF rows settle in 4 steps in float32, where all
    30 steps took half a sparse fit's set-up.
    """
    c = oracle.curvature()
    if c.max_row is not None and not math.isfinite(c.max_row):
        check_moments_finite(torch.tensor(c.max_row), "the largest row norm")
    if c.matrix is not None:
        check_moments_finite(c.matrix)
        return float(torch.linalg.eigvalsh(c.matrix)[-1]), c.max_row
    # a fixed, generic start vector (never orthogonal to the top eigenvector
    # in practice), independent of random_state
    v = torch.linspace(1.0, 2.0, c.dim, dtype=c.dtype, device=c.device)
    v = v / torch.linalg.vector_norm(v)
    lam, still = 0.0, 4 * torch.finfo(c.dtype).eps
    for _ in range(n_iter):
        w = c.matvec(v)
        new = float(torch.linalg.vector_norm(w))
        check_moments_finite(torch.tensor(new), "X' X / n times a unit vector")
        settled = abs(new - lam) <= still * new
        lam = new
        if lam == 0.0 or settled:
            break
        v = w / lam
    return lam, c.max_row


class Oracle:
    """The protocol every oracle keeps (see the module docstring).

    Attributes
    ----------
    n_samples : int
        Training rows.
    n_batches : int
        Batches per epoch.
    """

    n_samples: int
    n_batches: int

    def batches(self):
        """The batch indices of one epoch."""
        raise NotImplementedError

    def full_batch(self):
        """The index of the whole training set as one batch."""
        raise NotImplementedError

    def zero_model_loss(self) -> torch.Tensor:
        """Data term of the all-zero model per output: a scale for the
        objective that needs no pass over ``X``."""
        raise NotImplementedError

    @property
    def quadratic(self) -> bool:
        """Whether the data term is a quadratic function of ``theta``."""
        return getattr(getattr(self, "loss", None), "quadratic", False)

    # whether :meth:`derivatives` is offered (see DirectOracle), and the
    # multiply-adds of one Hessian
    supports_hessian = False
    hessian_work = math.inf
    # whether ``least_squares_moments`` and ``intercept_of`` are offered (see
    # GramOracle): the whole data term as a quadratic form in the coefficients
    supports_least_squares_moments = False
    # whether the data term's rows can be read by others, piece by piece
    # (``pieces_of``, ``rows_of``, ``index_of``, ``rows_read``; see
    # DirectOracle), with ``X``, ``Y``, ``sw`` and ``loss``: the duality
    # gaps' passes over X need them (a Gram matrix's data term has no rows)
    supports_certificate = False

    def column_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted mean and second moment of every column of ``X``
        (float64, on the device): ``sum_i s_i x_ij / sum(s)`` and ``sum_i
        s_i x_ij^2 / sum(s)``. The preconditioner of the full-batch solvers
        is built from them; one pass over ``X``."""
        raise NotImplementedError

    def loss_grad(self, theta, idx, need_grad=True):
        """Weighted mean loss per output, batch weight, and gradient.

        ``theta`` stacks the coefficients and (when fitted) the intercept as
        one (n_features + fit_intercept, n_outputs) matrix. Returns
        ``(values, weight, grad)``: ``values`` of shape (n_outputs,),
        ``weight`` the batch's total sample weight (a float or a 0-dim
        tensor, so that epoch averages need no host synchronisation),
        ``grad`` shaped like ``theta`` (None when ``need_grad`` is False).
        """
        raise NotImplementedError

    def curvature(self) -> Curvature:
        """The second-moment matrix, for the automatic step size."""
        raise NotImplementedError

    def with_loss(self, loss) -> Oracle:
        """A shallow copy of this oracle that answers for another loss.

        The copy shares this oracle's data (``X``, ``Y``, the sample
        weights and what was built from them: a CSR copy, a kept design
        matrix, the row gather's buffer) and its epoch order; only its
        ``loss`` differs, and this oracle's stays as it was. Smoothing
        (``solvers/``) is to evaluate its smoothed loss through such a copy
        instead of assigning ``oracle.loss``. An oracle whose data term does
        not read a loss (a Gram matrix's is the squared loss's) answers as
        before.

        Parameters
        ----------
        loss : Loss
            The loss the copy's values and derivatives are of.

        Returns
        -------
        Oracle
            The copy, of this oracle's class.
        """
        twin = copy.copy(self)
        twin.loss = loss
        return twin

    def batch_threads(self) -> contextlib.AbstractContextManager:
        """The context a minibatch epoch runs in: torch's threads as they
        are (subclasses whose batches are too small to share narrow them)."""
        return contextlib.nullcontext()

    # whether :meth:`loss_descend_` saves work over :meth:`loss_grad` and a
    # step (the gradient never built): host batches, whose steps are a few
    # dozen small operations (a sparse batch's gradient is moreover non-zero
    # on the batch's features only)
    descends_in_place = False
    # whether a descent in place may keep the L2 part's scaling pending
    # (:meth:`Problem.lazily`): where a step touches only some features (a
    # sparse batch's); a dense step touches every one and scales them too
    scales_lazily = False

    def loss_descend_(self, theta, idx, coef_step, intercept_step, coef_scale=1.0):
        """:meth:`loss_grad`'s values and weight on batch ``idx`` at the
        parameters ``theta`` stands for (its coefficient rows times
        ``coef_scale``), then the data term's gradient step in place: the
        stored coefficient rows move by ``-coef_step`` times the gradient,
        the intercept by ``-intercept_step`` times its."""
        d = theta.shape[0] - int(self.fit_intercept)
        true = theta
        if coef_scale != 1.0:
            true = theta.clone()
            true[:d] *= coef_scale
        values, weight, grad = self.loss_grad(true, idx)
        theta[:d].sub_(grad[:d], alpha=coef_step)
        theta[d:].sub_(grad[d:], alpha=intercept_step)
        return values, weight
