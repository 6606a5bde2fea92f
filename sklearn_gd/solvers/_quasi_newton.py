"""Preconditioned L-BFGS with a backtracking line search."""

from __future__ import annotations

import math

import numpy as np
import torch

from ._preconditioned import Preconditioned

__all__ = ["QuasiNewton"]


def _shorter(f0, f_new, slope, t):
    """The next trial step of a backtracking line search that failed at
    ``t``: the minimiser of the quadratic through ``f0``, ``slope`` and
    ``f_new``, kept within ``[t / 100, t / 2]`` (a far overshoot takes few
    trials). Elementwise on numpy arrays, one per output, or on floats."""
    curve = f_new - f0 - slope * t
    with np.errstate(divide="ignore", invalid="ignore"):
        t_min = np.where(curve > 0, -slope * t * t / (2.0 * curve), 0.5 * t)
    return np.clip(t_min, 0.01 * t, 0.5 * t)


class QuasiNewton(Preconditioned):
    """Preconditioned L-BFGS with an Armijo backtracking line search.

    The inverse Hessian is the compact form of Byrd, Nocedal and Schnabel
    (1994) with ``H_0 = gamma P^-1``: ``H g = gamma P^-1 g + Z' M Z g``,
    ``Z`` the stacked pairs ``[S, P^-1 Y]`` and ``M`` a ``2m x 2m`` matrix
    built on the host once per new pair. A direction is then three small
    products on the data's device and no host synchronisation, where the
    two-loop recursion takes ``4 m`` vector operations and ``2 m`` host
    synchronisations.
    """

    supports_prox = False
    history_size = 10
    armijo = 1e-4
    check_every = 10  # steps between certificates of a smoothing (Smoothing)

    def _certificate_reuse(self) -> tuple[tuple, dict]:
        """On float64 data, the gradient at the iterate (the last accepted
        step's evaluation) as ``X' s beta`` of the plain dual point, so that
        the certificate makes one pass over X, for the predictions, instead
        of two (the columns' second moments bound what the intercept's
        centring moves)."""
        g = self._g
        if self._param.dtype != torch.float64 or g is None:
            return (), {}
        return (), {"gradient": (g, self._P.second)}

    def _forget(self):
        self.at_precision = False
        self._s, self._y, self._By = [], [], []
        self._Z = self._M = None
        self._f = self._g = self._Bg = self._d = self._slope = None
        self.gap_estimate = math.inf
        self._approximate_steps = 0
        self._best_optimality = math.inf

    def _learn(self, s, y, Bg_new) -> None:
        """Keep the step ``s`` and gradient change ``y`` when their
        curvature ``s'y`` is positive."""
        pair = torch.stack([s, y]).reshape(2, -1)
        (ss, sy), (_, yy) = (pair @ pair.T).tolist()
        if sy > 1e-10 * math.sqrt(ss * yy):
            self._remember(s, y, Bg_new - self._Bg, sy)

    def _remember(self, s, y, By, sy: float) -> None:
        """Add a curvature pair: refresh ``Z``, ``gamma`` and ``M``."""
        self._s.append(s.reshape(-1))
        self._y.append(y.reshape(-1))
        self._By.append(By.reshape(-1))
        if len(self._s) > self.history_size:
            del self._s[0], self._y[0], self._By[0]
        Z = torch.stack(self._s + self._By)  # (2m, p)
        small = (Z @ torch.stack(self._y).T).double().cpu().numpy()  # (2m, m)
        m = len(self._s)
        SY, YBY = small[:m], small[m:]  # S'Y and (P^-1 Y)'Y
        gamma = sy / YBY[-1, -1]
        # R = triu(S'Y) has the pairs' curvatures s'y > 0 on its diagonal
        # (:meth:`_learn` keeps no other): a triangular inverse, never
        # singular. torch's, not scipy's: scipy's BLAS is a second thread
        # pool, whose threads then spin against torch's (a hinge fit of 20
        # classes on 500 x 2000 sparse rows ran 20x slower on 2 cores)
        R = torch.from_numpy(np.triu(SY))
        R_inv = torch.linalg.solve_triangular(
            R, torch.eye(m, dtype=R.dtype), upper=True
        ).numpy()
        M = np.zeros((2 * m, 2 * m))
        M[:m, :m] = R_inv.T @ (np.diag(np.diag(SY)) + gamma * YBY) @ R_inv
        M[:m, m:] = -gamma * R_inv.T
        M[m:, :m] = -gamma * R_inv
        self._Z, self._gamma = Z, gamma
        self._M = torch.as_tensor(M, dtype=Z.dtype, device=Z.device)

    def _direction(self, g: torch.Tensor, Bg: torch.Tensor) -> torch.Tensor:
        """``-H g``, given ``Bg = P^-1 g``."""
        if self._Z is None:
            return -Bg
        Z = self._Z
        r = (Z.T @ (self._M @ (Z @ g.reshape(-1)))).reshape(g.shape)
        return r.add_(Bg, alpha=self._gamma).neg_()

    def _line_search(self, problem, x, idx, d, lr, slope):
        """``(t, f(x + t d), g(x + t d))``, or None when no step decreases
        the objective at this precision.

        Armijo backtracking; where the objective's values differ by rounding
        only, Hager and Zhang's (2005) approximate condition on the slopes
        (:meth:`_approximately_decreases`), the step then shortened to the
        minimiser of the quadratic that the two slopes fit."""
        f = self._f
        t = lr
        secants = 2  # steps from the slopes alone, where values cannot tell
        for _ in range(60):
            f_new, g_new = self.evaluate(problem, x + t * d, idx)
            if f_new <= f + self.armijo * t * slope:
                self._approximate_steps = 0
                return t, f_new, g_new
            phi = None  # the slope at the step, read when needed
            if not self._resolved(f_new - f, f):  # no rise shows
                phi = float((g_new * d).sum())
                if self._approximately_decreases(phi, slope):
                    return t, f_new, g_new
            shorter = float(_shorter(f, f_new, slope, t))
            # the decrease a step this long can make, not Armijo's fraction
            # of it: that one drops below rounding first (c1 = 1e-4)
            if self._resolved(-0.5 * shorter * slope, f):
                t = shorter
                continue
            if not (secants and self._patient()):
                return None  # a decrease this small is rounding
            phi = float((g_new * d).sum()) if phi is None else phi
            if not phi > slope:
                return None
            secants -= 1
            t *= -slope / (phi - slope)
        return None

    # steps taken on the approximate condition alone, in a row, without a
    # new best optimality measure, before rounding counts as having won
    approximate_patience = 2 * history_size

    def _patient(self) -> bool:
        return self._approximate_steps < self.approximate_patience

    def _approximately_decreases(self, phi: float, slope: float) -> bool:
        """Hager and Zhang's approximate Armijo condition on a step whose
        objective rose by rounding at most: on the quadratic through both
        ends of the step the decrease is ``t (phi'(0) + phi'(t)) / 2``, so
        ``phi'(t) <= (2 c1 - 1) phi'(0)`` is Armijo's condition stated with
        slopes, which keep their precision near the optimum where values
        lose it (an ill-conditioned problem then goes on from ``sqrt(eps)``
        to the gradient's own precision). Refused once
        ``approximate_patience`` such steps in a row bring no new best
        optimality measure."""
        if not (self._patient() and phi <= (2 * self.armijo - 1) * slope):
            return False
        self._approximate_steps += 1
        return True

    def _next(self, g, Bg) -> None:
        """Measure optimality at gradient ``g`` and take the next direction:
        half its decrement ``-g'd`` estimates ``f - f*``."""
        d = self._direction(g, Bg)
        norm2, slope = (torch.stack([Bg, d]).reshape(2, -1) @ g.reshape(-1)).tolist()
        self._measure(math.sqrt(max(norm2, 0.0)))
        if self.optimality < self._best_optimality:
            self._best_optimality, self._approximate_steps = self.optimality, 0
        self._d, self._slope = d, slope
        self.gap_estimate = max(0.0, -0.5 * slope)

    def step(self, problem, idx, lr):
        x = self._param
        if self._g is None:
            self._f, self._g = self.evaluate(problem, x, idx)
            self._Bg = self._P.inv(self._g)
            self._next(self._g, self._Bg)
        f, g, d, slope = self._f, self._g, self._d, self._slope
        if not slope < 0:  # not a descent direction: start the history again
            Bg = self._Bg
            self._forget()
            self._f, self._g, self._Bg = f, g, Bg
            d = self._d = -Bg
            slope = float((g * d).sum())
        found = self._line_search(problem, x, idx, d, lr, slope)
        if found is None:  # no decrease left at this precision: stay, say so
            self._stall(f)
            return f / problem.sum_scale, 1.0
        t, f_new, g_new = found
        s = d.mul(t)
        Bg_new = self._P.inv(g_new)
        self._learn(s, g_new - g, Bg_new)
        x.add_(s)
        self._f, self._g, self._Bg = f_new, g_new, Bg_new
        self._next(g_new, Bg_new)
        return f_new / problem.sum_scale, 1.0
