"""The Moreau envelope: a smooth loss from a piecewise-linear one."""

from __future__ import annotations

import torch

from ._losses import Loss

__all__ = ["MoreauSmoothed"]


class MoreauSmoothed(Loss):
    """The Moreau envelope of a non-smooth loss with parameter ``mu``:
    ``h_mu(u) = min_v h(v) + (u - v)^2 / (2 mu)``.

    Differentiable, with curvature ``1 / mu``, and below the loss by at most
    ``mu * G^2 / 2`` (``G`` the loss's largest slope), so a solution of the
    smoothed problem is one of the loss's to that bound. Its derivative is
    the slope ``h'`` clamped between kinks: ``a_0 + sum_j clip((u - k_j) /
    mu - a_(j-1), 0, a_j - a_(j-1))``.
    """

    smooth = True
    has_hessian = True

    def __init__(self, base: Loss, mu: float):
        self.base, self.mu = base, mu
        self.shape = base.pieces()
        self.curvature = 1.0 / mu
        self.bias = 0.5 * mu * self.shape.lipschitz**2

    def _u(self, y, p):
        return y * p if self.shape.margin else y - p

    def _slope(self, u, curved: bool = False):
        """The slope ``h'(v)`` at the proximal point ``v`` of ``u``, and (when
        ``curved``) where it is between two of ``h``'s, 1 there and 0
        elsewhere (``u = v + mu h'(v)``), else None. At the ends of a curved
        piece, where the envelope's second derivative jumps from 0 to ``1 /
        mu``, the curved value is taken (both are in its generalised
        Hessian): the zero model puts every hinge margin at 0, the end of
        the first level's curved piece, and the flat choice left Newton's
        first system singular, its step 1e12 times too long (39 halvings)."""
        a, mu = self.shape.slopes, self.mu
        s = torch.full_like(u, a[0])
        inner = torch.zeros_like(u) if curved else None
        for j, k in enumerate(self.shape.kinks, start=1):
            inside = (u - k) / mu - a[j - 1]
            s += torch.clamp(inside, 0.0, a[j] - a[j - 1])
            if curved:
                inner += ((inside >= 0) & (inside <= a[j] - a[j - 1])).to(u.dtype)
        return s, inner

    def value(self, y, p):
        return self.derivatives(y, p, order=0)[0]

    def derivative(self, y, p):
        s, _ = self._slope(self._u(y, p))
        return y * s if self.shape.margin else -s

    def second_derivative(self, y, p):
        return self.derivatives(y, p)[2]

    def derivatives(self, y, p, order=2):
        # a margin's y is +-1, so d^2/dp^2 = y^2 h_mu'' = h_mu'' = 1 / mu on
        # the curved pieces
        u = self._u(y, p)
        a, c, mu = self.shape.slopes, self.shape.intercepts, self.mu
        s, inner = self._slope(u, curved=order >= 2)
        v = u - mu * s  # the proximal point
        h = a[0] * v + c[0]
        for ai, ci in zip(a[1:], c[1:]):
            h = torch.maximum(h, ai * v + ci)
        value = h + 0.5 * mu * s * s
        first = None if order < 1 else (y * s if self.shape.margin else -s)
        return value, first, None if inner is None else inner / mu
