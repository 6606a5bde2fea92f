"""Penalties ``alpha * R(w)`` on a weight matrix of shape (n_features, n_outputs).

The strength and mixing are floats, the same for every column, or tensors of
shape (n_outputs,) that give each column its own (the cross-validation
estimators train every alpha as a column of one matrix).

A penalty splits into a smooth part, handled through its gradient, and a
non-smooth part, handled through its proximal operator so that L1 gives exact
zeros (a plain subgradient would leave tiny non-zero weights behind). The
intercept is never penalised: the engine passes only the coefficients here.
"""

from __future__ import annotations

import torch

__all__ = ["PENALTIES", "Penalty", "make_penalty"]


class Penalty:
    """``strength * (l1_ratio ||w||_1 + (1 - l1_ratio) 1/2 ||w||^2)``, per output.

    ``strength`` and ``l1_ratio`` are floats, or tensors of shape
    (n_outputs,) (on the weights' device and dtype) broadcasting over the
    columns of the weight matrix.
    """

    def __init__(self, strength, l1_ratio):
        self.l1 = strength * l1_ratio
        self.l2 = strength * (1.0 - l1_ratio)
        # whether any column has each part: host bools, decided once, so that
        # per-column tensors cost no device synchronisation per step
        self._any_l1 = _any(self.l1)
        self._any_l2 = _any(self.l2)
        self._columns = isinstance(self.l1, torch.Tensor)

    @property
    def has_prox(self) -> bool:
        """Whether the penalty has a non-smooth (L1) part."""
        return self._any_l1

    @property
    def curvature(self):
        """Curvature of the smooth part, for step-size selection (a tensor
        of per-column values for per-column strengths)."""
        return self.l2

    def column_values(self, w: torch.Tensor) -> torch.Tensor:
        """Penalty value of each output column: shape (n_outputs,)."""
        out = None
        if self._any_l2:
            out = (w * w).sum(0).mul_(0.5 * self.l2)
        if self._any_l1:
            l1 = w.abs().sum(0).mul_(self.l1)
            out = l1 if out is None else out.add_(l1)
        if out is None:
            return torch.zeros(w.shape[1], dtype=w.dtype, device=w.device)
        return out

    def total(self, w: torch.Tensor) -> torch.Tensor | float:
        """Penalty value summed over output columns (0.0 without a penalty)."""
        if self._columns:
            return self.column_values(w).sum()
        out = 0.0
        if self.l2:
            flat = w.reshape(-1)  # one pass, no temporary: a wide model's
            out = out + 0.5 * self.l2 * torch.dot(flat, flat)  # cost per step
        if self.l1:
            out = out + self.l1 * w.abs().sum()
        return out

    def decay(self, lr: float) -> float | None:
        """The factor ``max(0, 1 - lr * l2)`` by which a gradient step of
        rate ``lr`` shrinks the weights through the L2 part (1.0 without
        one); None for per-column strengths, for the caller to step the
        plain way (:meth:`shrink_`).

        As scikit-learn's SGD scales its weights, the factor never goes
        below 0: a step ``lr > 2 / l2`` taken as a gradient would flip and
        grow the weights every step (``|1 - lr l2| > 1``) and diverge; the
        clamp sets them to zero instead, where a strong penalty wants them.
        """
        if self._columns:
            return None
        return max(0.0, 1.0 - lr * self.l2)

    def shrink_(self, w: torch.Tensor, lr: float) -> None:
        """Scale ``w`` in place by the L2 part's factor (:meth:`decay`), per
        column for per-column strengths."""
        if not self._any_l2:
            return
        if self._columns:
            w.mul_(torch.clamp(1.0 - lr * self.l2, min=0.0))
        else:
            w.mul_(self.decay(lr))

    def add_gradient_(self, grad: torch.Tensor, w: torch.Tensor) -> None:
        """Add the gradient of the smooth part to ``grad`` in place."""
        if not self._any_l2:
            return
        if self._columns:
            grad.addcmul_(w, self.l2)
        else:
            grad.add_(w, alpha=self.l2)

    def prox_(self, w: torch.Tensor, step: float | torch.Tensor) -> None:
        """Apply the proximal operator of ``step * (L1 part)`` to ``w`` in place.

        ``step`` is a scalar or a tensor broadcastable to ``w`` (per-coordinate
        steps, as adaptive optimizers take, or per-column ones).
        """
        if self._any_l1:
            thresh = step * self.l1
            # soft-thresholding: sign(w) * max(|w| - thresh, 0)
            shrunk = torch.clamp(w.abs() - thresh, min=0)
            w.copy_(torch.sign(w) * shrunk)


def _any(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool((value != 0).any())
    return bool(value)


PENALTIES = {
    None: lambda alpha, l1_ratio: Penalty(0.0, 0.0),
    "l2": lambda alpha, l1_ratio: Penalty(alpha, 0.0),
    "l1": lambda alpha, l1_ratio: Penalty(alpha, 1.0),
    "elasticnet": lambda alpha, l1_ratio: Penalty(alpha, l1_ratio),
}


def make_penalty(name: str | None, *, alpha: float, l1_ratio: float) -> Penalty:
    """Build the penalty registered under ``name`` (None for no penalty)."""
    return PENALTIES[name](alpha, l1_ratio)
