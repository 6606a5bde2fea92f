"""Pointwise losses ``L(y, p)`` on torch tensors.

Each loss is a tiny object with two methods, ``value`` and ``derivative``, both
elementwise over predictions ``p`` and targets ``y`` of the same shape. The
engine combines them with sample weights and the design matrix; nothing here
knows about batching, devices or estimators. Definitions follow scikit-learn's
``SGDRegressor`` (``sklearn/linear_model/_sgd_fast.pyx``) so that ``alpha`` and
``eta0`` mean the same thing in both packages.
"""

from __future__ import annotations

import torch

__all__ = ["LOSSES", "Loss", "make_loss"]


class Loss:
    """Base class of a pointwise loss.

    Attributes
    ----------
    curvature : float
        An upper bound on ``d^2 L / dp^2`` (for smooth losses), used to pick a
        safe step size. Non-smooth losses use 1, the scale of their gradient.
    smooth : bool
        Whether the loss has a Lipschitz-continuous derivative.
    """

    curvature: float = 1.0
    smooth: bool = True

    def value(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Elementwise loss values."""
        raise NotImplementedError

    def derivative(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Elementwise derivative ``dL/dp`` (a subgradient where not smooth)."""
        raise NotImplementedError

    def dloss_at(self, y: float, p: float) -> float:
        """Scalar derivative ``dL/dp`` at ``(y, p)``, for the 'optimal' schedule."""
        yt = torch.tensor([y], dtype=torch.float64)
        pt = torch.tensor([p], dtype=torch.float64)
        return float(self.derivative(yt, pt)[0])


class SquaredError(Loss):
    """``1/2 (y - p)^2``."""

    def value(self, y, p):
        r = p - y
        return 0.5 * r * r

    def derivative(self, y, p):
        return p - y


class Huber(Loss):
    """``1/2 r^2`` for ``|r| <= epsilon``, ``epsilon |r| - epsilon^2 / 2`` beyond."""

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = epsilon

    def value(self, y, p):
        a = (p - y).abs()
        quad = torch.clamp(a, max=self.epsilon)
        return quad * (a - 0.5 * quad)

    def derivative(self, y, p):
        return torch.clamp(p - y, -self.epsilon, self.epsilon)


class EpsilonInsensitive(Loss):
    """``max(0, |y - p| - epsilon)``."""

    smooth = False

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = epsilon

    def value(self, y, p):
        return torch.clamp((p - y).abs() - self.epsilon, min=0)

    def derivative(self, y, p):
        r = p - y
        return torch.sign(r) * (r.abs() > self.epsilon).to(r.dtype)


class SquaredEpsilonInsensitive(Loss):
    """``max(0, |y - p| - epsilon)^2`` (no factor 1/2, as in scikit-learn)."""

    curvature = 2.0

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = epsilon

    def value(self, y, p):
        z = torch.clamp((p - y).abs() - self.epsilon, min=0)
        return z * z

    def derivative(self, y, p):
        r = p - y
        return 2.0 * torch.sign(r) * torch.clamp(r.abs() - self.epsilon, min=0)


class Quantile(Loss):
    """Pinball loss: ``q (y - p)`` if ``y >= p`` else ``(1 - q)(p - y)``."""

    smooth = False

    def __init__(self, quantile: float = 0.5):
        self.quantile = quantile

    def value(self, y, p):
        r = y - p
        return torch.maximum(self.quantile * r, (self.quantile - 1.0) * r)

    def derivative(self, y, p):
        # d/dp of the pinball loss; at r == 0 any value in [q - 1, q] is a
        # subgradient, and 0 keeps an exact fit in place.
        r = y - p
        q = self.quantile
        # scalars as tensors of r's dtype: torch.where would otherwise build
        # the result in float32 and round q in float64 fits
        below = torch.full_like(r, -q)
        above = torch.full_like(r, 1.0 - q)
        return torch.where(r > 0, below, torch.where(r < 0, above, torch.zeros_like(r)))


class AbsoluteError(Quantile):
    """``|y - p|``."""

    def __init__(self):
        super().__init__(quantile=0.5)

    def value(self, y, p):
        return (y - p).abs()

    def derivative(self, y, p):
        return torch.sign(p - y)


# name -> factory taking the estimator's loss parameters
LOSSES = {
    "squared_error": lambda epsilon, quantile: SquaredError(),
    "huber": lambda epsilon, quantile: Huber(epsilon),
    "epsilon_insensitive": lambda epsilon, quantile: EpsilonInsensitive(epsilon),
    "squared_epsilon_insensitive": lambda epsilon, quantile: SquaredEpsilonInsensitive(
        epsilon
    ),
    "absolute_error": lambda epsilon, quantile: AbsoluteError(),
    "quantile": lambda epsilon, quantile: Quantile(quantile),
}


def make_loss(name: str, *, epsilon: float = 0.1, quantile: float = 0.5) -> Loss:
    """Build the loss registered under ``name``."""
    return LOSSES[name](epsilon, quantile)
