"""Full-batch solvers that measure their own distance to the optimum.

Both work in the metric of a preconditioner ``P`` (:class:`Metric`): the
problem seen through centred features, each scaled by the loss's curvature
bound times its variance, plus the L2 strength. It costs one pass over
``X``, leaves the optimum unchanged and makes the iterations independent of
the features' scales and offsets: a feature multiplied by 100 has its
coordinate divided by 100 in ``P``'s metric.

* :class:`QuasiNewton`, L-BFGS with ``P^-1`` as its initial inverse Hessian
  and a backtracking (Armijo) line search, for smooth objectives. Its first
  step is the diagonal Newton step; after that each iteration usually takes
  one evaluation of the objective and its gradient.
* :class:`AcceleratedProximal`, FISTA with a backtracked step, the adaptive
  restart of O'Donoghue and Candes (2015) and the per-coordinate proximal
  step of the L1 part, for penalties with an L1 part.

After each step :attr:`optimality` holds the norm of the (proximal)
gradient mapping in ``P^-1``'s metric, relative to its value at the start
of the fit: 0 at the optimum, whatever the scale of the objective. The
stopping rule :class:`~sklearn_gd._engine.Optimality` compares it with
``tol``.
"""

from __future__ import annotations

import math

import torch

from ._losses import MoreauSmoothed
from ._optimizers import Solver
from ._oracles import check_moments_finite

__all__ = ["AUTO_TOL", "AcceleratedProximal", "Metric", "QuasiNewton", "Smoothing"]

# tol="auto" for these solvers: the relative optimality measure at which the
# default fits of benchmarks/defaults.py reach an objective gap below 1e-4
AUTO_TOL = 1e-5


class Metric:
    """The preconditioner ``P = T' diag(D) T``, with ``T`` the change of
    variables ``(w, b) -> (w, b + m'w)`` (``m`` the columns' means).

    In ``T``'s coordinates the problem is that of centred features (the
    intercept no longer couples with a feature's mean), and ``D`` scales
    each one by its curvature: ``curvature * Var(x_j) + l2`` for the
    coefficients, ``curvature`` for the intercept. Every product with
    ``P`` or ``P^-1`` costs O(n_features * n_outputs).
    """

    def __init__(self, problem, curvature: float, dtype):
        mean, second = problem.oracle.column_moments()
        check_moments_finite(second, "the columns' second moments")
        d = problem.d
        self.d = d
        fit_intercept = mean is not None and problem.oracle.fit_intercept
        if fit_intercept:
            var = second - mean * mean
            # a (nearly) constant column: its own scale, not its variance
            var = torch.where(var > 1e-10 * second, var, second)
            self.m = mean.to(dtype)[:, None]
        else:
            var, self.m = second, None
        self.var, self.l2, self.dtype = var, problem.penalty.l2, dtype
        self.set_curvature(curvature)

    def set_curvature(self, curvature: float) -> None:
        """Rescale to the loss's curvature bound (no pass over the data)."""
        Dw = curvature * self.var + self.l2
        # a column of zeros has a zero gradient too: any positive scale will do
        Dw = torch.where(Dw > 0, Dw, torch.ones_like(Dw))
        self.Dw = Dw.to(self.dtype)[:, None]
        self.Db = curvature

    def _tilde(self, v):
        """``T v``'s intercept row (None without an intercept)."""
        if self.m is None:
            return None
        return v[self.d :] + (self.m * v[: self.d]).sum(0, keepdim=True)

    def inner(self, a, b) -> float:
        """``a' P b``."""
        d = self.d
        out = (self.Dw * a[:d] * b[:d]).sum()
        if self.m is not None:
            out = out + self.Db * (self._tilde(a) * self._tilde(b)).sum()
        return float(out)

    def inv(self, v: torch.Tensor) -> torch.Tensor:
        """``P^-1 v``, a new tensor."""
        d = self.d
        if self.m is None:
            return v / self.Dw
        a = (v[:d] - self.m * v[d:]) / self.Dw  # D^-1 T^-T v, coefficient rows
        c = v[d:] / self.Db
        return torch.cat([a, c - (self.m * a).sum(0, keepdim=True)])

    def inv_norm(self, g: torch.Tensor) -> torch.Tensor:
        """``sqrt(g' P^-1 g)`` (a 0-dim tensor)."""
        return torch.sqrt((g * self.inv(g)).sum())

    def prox_l1(self, z: torch.Tensor, thresh: float) -> None:
        """``z`` <- the proximal point of ``thresh * ||w||_1`` in ``P``'s
        metric, in place: soft-thresholding of each coefficient by
        ``thresh / D_j``, and the intercept moved so that ``b + m'w`` is
        unchanged (the intercept is free, not penalised)."""
        d = self.d
        W = z[:d]
        shrunk = torch.sign(W) * torch.clamp(W.abs() - thresh / self.Dw, min=0)
        if self.m is not None:
            z[d:] -= (self.m * (shrunk - W)).sum(0, keepdim=True)
        W.copy_(shrunk)


class _Preconditioned(Solver):
    """What the two solvers share: ``P``, the objective's scale, the
    optimality measure and a cold state (partial_fit starts each call
    afresh: a full-batch step needs no history to be correct)."""

    full_batch = True
    auto_eta0 = 1.0
    measures_optimality = True
    auto_tol = AUTO_TOL  # a ratio of gradient-mapping norms

    def __init__(self, *, curvature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.curvature = curvature
        self.optimality = None
        self.stuck = False
        self._P = None
        self._first = None

    def setup(self, problem, theta) -> None:
        self._P = Metric(problem, self.curvature, theta.dtype)
        self._first = None
        self.optimality = None
        self.stuck = False

    def _build(self, param, lr):
        self._forget()
        return None

    def _forget(self):
        """Drop the history (after a restart from a checkpoint)."""

    def state_dict(self):
        return None

    def _measure(self, norm: torch.Tensor) -> None:
        """Record the optimality measure from the mapping's ``P^-1`` norm."""
        value = float(norm)
        if self._first is None:
            self._first = value if value > 0 else 1.0
        self.optimality = value / self._first

    @staticmethod
    def _evaluate(problem, theta, idx):
        """The objective as the sum whose gradient the oracle gives."""
        objective, _, grad = problem.evaluate(theta, idx, with_l2=True)
        return float(objective) * problem.sum_scale, grad


class QuasiNewton(_Preconditioned):
    """Preconditioned L-BFGS with an Armijo backtracking line search."""

    supports_prox = False
    history_size = 10
    armijo = 1e-4

    def _forget(self):
        self._s, self._y, self._rho = [], [], []
        self._f = self._g = self._d = None
        self.gap_estimate = math.inf

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """``-H g`` by the two-loop recursion, ``H_0 = gamma P^-1``."""
        q = g.clone()
        alphas = []
        for s, y, rho in zip(reversed(self._s), reversed(self._y), reversed(self._rho)):
            a = rho * float((s * q).sum())
            q.sub_(y, alpha=a)
            alphas.append(a)
        gamma = 1.0
        if self._s:
            y = self._y[-1]
            gamma = float((self._s[-1] * y).sum()) / float(self._P.inv_norm(y) ** 2)
        r = self._P.inv(q).mul_(gamma)
        for s, y, rho, a in zip(self._s, self._y, self._rho, reversed(alphas)):
            b = rho * float((y * r).sum())
            r.add_(s, alpha=a - b)
        return r.neg_()

    def step(self, problem, idx, lr):
        x = self._param
        if self._g is None:
            self._f, self._g = self._evaluate(problem, x, idx)
            self._measure(self._P.inv_norm(self._g))
        f, g = self._f, self._g
        d = self._d if self._d is not None else self._direction(g)
        slope = float((g * d).sum())
        if not slope < 0:  # not a descent direction: start the history again
            self._forget()
            self._f, self._g = f, g
            d = -self._P.inv(g)
            slope = float((g * d).sum())
        t = lr
        for _ in range(60):
            x_new = x + t * d
            f_new, g_new = self._evaluate(problem, x_new, idx)
            if f_new <= f + self.armijo * t * slope:
                break
            t *= 0.5
        else:  # no decrease left at this precision: stay, and say so
            self.stuck = True
            return f / problem.sum_scale, 1.0
        s, y = x_new - x, g_new - g
        sy = float((s * y).sum())
        norms = torch.linalg.vector_norm(s) * torch.linalg.vector_norm(y)
        if sy > 1e-10 * float(norms):
            self._s.append(s)
            self._y.append(y)
            self._rho.append(1.0 / sy)
            if len(self._s) > self.history_size:
                del self._s[0], self._y[0], self._rho[0]
        x.copy_(x_new)
        self._f, self._g = f_new, g_new
        self._measure(self._P.inv_norm(g_new))
        # the next direction now: half its decrement -g'd estimates f - f*
        self._d = self._direction(g_new)
        self.gap_estimate = max(0.0, -0.5 * float((g_new * self._d).sum()))
        return f_new / problem.sum_scale, 1.0


class AcceleratedProximal(_Preconditioned):
    """FISTA in ``P``'s metric: backtracked step, adaptive restart, and the
    L1 part by its per-coordinate proximal operator."""

    supports_prox = True

    def _forget(self):
        self._y = self._x_prev = None
        self._t = 1.0
        self._L = 1.0
        self.gap_estimate = math.inf

    def prox_step(self, lr):
        return None  # the proximal step is taken inside :meth:`step`

    def _split(self, problem, theta, idx):
        """The smooth part of the objective (sum scale) and its gradient."""
        total, grad = self._evaluate(problem, theta, idx)
        return total - self._l1_value(problem, theta), grad

    @staticmethod
    def _l1_value(problem, theta) -> float:
        l1 = problem.penalty.l1
        return float(l1 * problem.coef(theta).abs().sum()) if l1 else 0.0

    def _prox(self, problem, z: torch.Tensor, L: float) -> torch.Tensor:
        if problem.penalty.l1:
            self._P.prox_l1(z, problem.penalty.l1 / L)
        return z

    def step(self, problem, idx, lr):
        x = self._param
        if self._y is None:
            self._y, self._x_prev = x.clone(), x.clone()
        y = self._y
        f_y, g_y = self._split(problem, y, idx)
        L = self._L * 0.8  # let the step grow back
        for _ in range(60):
            x_new = self._prox(problem, y - self._P.inv(g_y) / L, L)
            diff = x_new - y
            f_new, _ = self._split(problem, x_new, idx)
            curve = 0.5 * L * self._P.inner(diff, diff)
            bound = f_y + float((g_y * diff).sum()) + curve
            if f_new <= bound + 1e-12 * abs(f_y):
                break
            L *= 2.0
        self._L = L
        # gradient mapping G = L P (y - x_new): its P^-1 norm, and
        # ||G||^2 / (2 L) as the estimate of f - f*
        self._measure(L * math.sqrt(self._P.inner(diff, diff)))
        self.gap_estimate = 0.5 * L * self._P.inner(diff, diff)
        step = x_new - self._x_prev
        if self._P.inner(-diff, step) > 0:  # adaptive restart
            self._t = 1.0
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * self._t * self._t)) / 2.0
        self._y = x_new + ((self._t - 1.0) / t_next) * step
        self._t = t_next
        self._x_prev = x_new
        x.copy_(x_new)
        total = f_new + self._l1_value(problem, x_new)
        return total / problem.sum_scale, 1.0


class Smoothing(Solver):
    """A non-smooth loss by continuation: the inner solver (L-BFGS, or
    FISTA with an L1 part) on the loss's Moreau envelope, whose parameter
    ``mu`` shrinks tenfold each time the smoothed problem is solved as
    closely as its smoothing allows.

    The smoothed objective is below the loss's by at most ``bias = mu G^2 /
    2`` per output (:class:`~sklearn_gd._losses.MoreauSmoothed`). Once
    ``bias`` and the inner solver's estimate of its own gap (half the
    L-BFGS decrement ``-g'd``, or ``||G||^2 / 2L`` for FISTA) are both below
    ``target`` relative to the objective, the fit is checked by a duality
    gap: the envelope's derivatives are a dual point of the loss, and the
    gap between the loss's objective and that dual point's bounds the
    distance to the optimum. ``optimality`` is that gap, relative to the
    objective, once computed (a penalty with no L2 part has no bounded
    dual of this form: its gap is infinite, and such fits end with a
    warning). The reported objectives are the smoothed ones, within
    ``bias`` of the loss's.
    """

    full_batch = True
    auto_eta0 = 1.0
    measures_optimality = True
    auto_tol = 1e-4  # a relative duality gap

    def __init__(self, *, inner, target: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.target = self.auto_tol if target is None else target

    @property
    def supports_prox(self):  # noqa: D401 - mirrors the class attribute
        return self.inner.supports_prox

    def setup(self, problem, theta) -> None:
        oracle = problem.oracle
        self.base = oracle.loss
        self.shape = self.base.pieces()
        if self.shape.margin:
            self.mu = 1.0  # margins are O(1) whatever the data's scale
        else:  # a tenth of the typical residual of a constant model
            Y = oracle.Y
            spread = float((Y - Y.median(0).values).abs().mean())
            self.mu = max(0.1 * spread, 1e-8)
        oracle.loss = MoreauSmoothed(self.base, self.mu)
        self.inner.curvature = oracle.loss.curvature
        self.inner.setup(problem, theta)
        self.optimality = None
        self.stuck = False
        self._since_check = 0

    def start(self, param, lr, state=None):
        self.inner.start(param, lr, state)

    def reset(self, lr):
        self.inner.reset(lr)

    def state_dict(self):
        return None

    def prox_step(self, lr):
        return self.inner.prox_step(lr)

    def step(self, problem, idx, lr):
        objective, weight = self.inner.step(problem, idx, lr)
        scale = max(abs(float(objective)), 1e-300)
        bias = problem.oracle.loss.bias / scale
        gap = self.inner.gap_estimate / (scale * problem.sum_scale)
        self.optimality = max(gap, bias, self.target * 1.01)  # not certified
        self._since_check += 1
        if bias > self.target:
            if gap <= bias or self.inner.stuck:
                self._shrink(problem)
        elif (gap <= self.target and self._since_check >= 10) or self.inner.stuck:
            self._since_check = 0
            self.optimality = self._duality_gap(problem, self.inner._param)
        self.stuck = self.inner.stuck and bias <= self.target
        return objective, weight

    def _shrink(self, problem):
        self.mu /= 10.0
        problem.oracle.loss = MoreauSmoothed(self.base, self.mu)
        self.inner._P.set_curvature(problem.oracle.loss.curvature)
        self.inner._forget()
        self.inner.stuck = False

    # ------------------------------------------------------- certificate
    def _duality_gap(self, problem, theta) -> float:
        """``(P(theta) - D(beta)) / |P(theta)|``, with ``beta`` the smoothed
        loss's derivatives at ``theta`` made to sum to zero (the intercept's
        constraint) by moving the ones strictly inside their range."""
        pen = problem.penalty
        if not pen.l2:
            return math.inf
        oracle, d = problem.oracle, problem.d
        fi = oracle.fit_intercept
        pieces = list(oracle._pieces(oracle.full_batch()))
        Ps, Ys = [], []
        for piece in pieces:
            Xb, _ = oracle._rows(piece)
            P = Xb @ theta[:d]
            Ps.append(P + theta[d] if fi else P)
            Ys.append(oracle.Y[oracle._index(piece)])
            oracle._rows_done(pieces, len(Ps) - 1)
        P, Y = torch.cat(Ps), torch.cat(Ys)
        s = oracle.sw
        s = torch.ones_like(P[:, :1]) if s is None else s[:, None].to(P.dtype)
        S = float(s.sum())
        beta = oracle.loss.derivative(Y, P)
        # beta's range: h'(u) in [a_0, a_J], u = y p (margin) or y - p
        a0, aJ = self.shape.slopes[0], self.shape.slopes[-1]
        sign = Y if self.shape.margin else -torch.ones_like(Y)
        lo = torch.minimum(sign * a0, sign * aJ)
        hi = torch.maximum(sign * a0, sign * aJ)
        if fi:  # move each beta towards the bound the sum must go to,
            # in proportion to its room there
            need = (s * beta).sum(0)
            bound = torch.where(need > 0, lo, hi)
            room = s * (beta - bound)
            total = room.sum(0)
            if bool((need.abs() > total.abs()).any()):
                return math.inf
            share = torch.where(total != 0, need / total, torch.zeros_like(need))
            beta = beta - (beta - bound) * share
        slope = beta * sign  # h'(u)
        conj = None  # h*(slope) = max_j (k_j slope - h(k_j))
        for k in self.shape.kinks:
            hk = max(
                a * k + c for a, c in zip(self.shape.slopes, self.shape.intercepts)
            )
            term = k * slope - hk
            conj = term if conj is None else torch.maximum(conj, term)
        if not self.shape.margin:  # l*(beta) = beta y + h*(-beta)
            conj = conj + beta * Y
        primal_data = (s * self.base.value(Y, P)).sum() / S
        dual_data = -(s * conj).sum() / S
        v = torch.zeros_like(theta[:d])
        start = 0
        for piece in pieces:
            Xb, XbT = oracle._rows(piece)
            m = Xb.shape[0]
            v -= XbT @ (s[start : start + m] * beta[start : start + m])
            start += m
            oracle._rows_done(pieces, start)
        v /= S
        W = theta[:d]
        primal = primal_data + pen.total(W)
        conj_pen = (torch.clamp(v.abs() - pen.l1, min=0) ** 2).sum() / (2 * pen.l2)
        gap = float(primal - (dual_data - conj_pen))
        return max(gap, 0.0) / max(abs(float(primal)), 1e-300)
