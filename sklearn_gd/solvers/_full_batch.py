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
stopping rule :class:`~sklearn_gd.engine._engine.Optimality` compares it with
``tol``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..model._losses import MoreauSmoothed
from ..objective._certificate import duality_gaps, smooth_duality_gap
from ..objective._linalg import guarded_solve
from ..objective._protocol import check_moments_finite
from ._optimizers import Solver

__all__ = [
    "dense_metric",
    "feature_scales",
    "metric_inv",
    "AUTO_TOL",
    "AcceleratedProximal",
    "ConjugateGradient",
    "GradientMapping",
    "Metric",
    "Newton",
    "QuasiNewton",
    "Smoothing",
]

# tol="auto" for these solvers: the relative optimality measure at which the
# default fits of benchmarks/defaults.py reach an objective gap below 1e-4
AUTO_TOL = 1e-5


def feature_scales(mean, second):
    """Each feature's scale in the metric: its variance about ``mean``, or
    its second moment where it has no variance to speak of (a nearly
    constant feature) or there is no intercept (``mean`` None); host
    arrays."""
    if mean is None:
        return second
    var = second - mean * mean
    return np.where(var > 1e-10 * second, var, second)


def dense_metric(m, Dw, Db) -> np.ndarray:
    """``P = [[diag(Dw) + Db m m', Db m], [Db m', Db]]`` (float64 host; the
    diagonal ``diag(Dw)`` without an intercept, ``m`` None)."""
    if m is None:
        return np.diag(Dw)
    d = m.shape[0]
    dense = np.diag(np.append(Dw, Db))
    dense[:d, :d] += Db * np.outer(m, m)
    dense[d, :d] = dense[:d, d] = Db * m
    return dense


def metric_inv(v: torch.Tensor, m, Dw, Db) -> torch.Tensor:
    """``P^-1 v`` column by column, ``m`` of shape (d, 1) (None without an
    intercept) and ``Dw`` of shape (d, 1) or (d, n_columns): a new tensor."""
    if m is None:
        return v / Dw
    d = m.shape[0]
    a = (v[:d] - m * v[d:]) / Dw  # D^-1 T^-T v, coefficient rows
    c = v[d:] / Db
    return torch.cat([a, c - (m * a).sum(0, keepdim=True)])


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
        self.device, self.dtype = second.device, dtype
        # the scales are small vectors: built on the host (one transfer each
        # way), where an operation costs far less than a tensor operation
        both = second if mean is None else torch.stack([second, mean])
        both = both.double().cpu().numpy().reshape(-1, second.shape[0])
        second = both[0]
        check_moments_finite(second, "the columns' second moments")
        d = problem.d
        self.d = d
        fit_intercept = mean is not None and problem.oracle.fit_intercept
        self._m = both[1] if fit_intercept else None
        self.second = second  # the columns' second moments (host)
        var = feature_scales(self._m, second)
        self.m = None if self._m is None else self._tensor(self._m)[:, None]
        l2 = problem.penalty.l2
        self.l2 = l2.cpu().numpy() if isinstance(l2, torch.Tensor) else l2
        self.var = var
        self.set_curvature(curvature)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    # below this many rows of theta, P and P^-1 are kept as dense matrices:
    # one product each instead of a handful of small tensor operations
    dense_max = 512

    def set_curvature(self, curvature: float) -> None:
        """Rescale to the loss's curvature bound (no pass over the data)."""
        Dw = curvature * self.var + self.l2
        # a column of zeros has a zero gradient too: any positive scale will do
        self._Dw = np.where(Dw > 0, Dw, 1.0)
        self.Dw = self._tensor(self._Dw)[:, None]
        self.Db = curvature
        self._dense = self._inv_dense = None
        if self._small:
            # P^-1 = [[diag(1 / Dw), -m / Dw], [-(m / Dw)', m'(m / Dw) + 1 / Db]]
            m, Dw, d = self._m, self._Dw, self.d
            r = m / Dw
            inv = np.diag(np.append(1.0 / Dw, m @ r + 1.0 / curvature))
            inv[d, :d] = inv[:d, d] = -r
            self._inv_host = inv
            self._inv_dense = self._tensor(inv)

    @property
    def _small(self) -> bool:
        return self.m is not None and self.d + 1 <= self.dense_max

    def _dense_host(self) -> np.ndarray:
        return dense_metric(self._m, self._Dw, self.Db)

    def _dense_P(self):
        """``P`` as a dense tensor, built when first needed (the solvers that
        only divide by ``P`` never do)."""
        if self._dense is None and self._small:
            self._dense = self._tensor(self._dense_host())
        return self._dense

    def _tilde(self, v):
        """``T v``'s intercept row (None without an intercept)."""
        if self.m is None:
            return None
        return v[self.d :] + (self.m * v[: self.d]).sum(0, keepdim=True)

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``P v``, a new tensor."""
        if self._dense_P() is not None:
            return self._dense @ v
        d = self.d
        if self.m is None:
            return v * self.Dw
        tb = self._tilde(v) * self.Db
        return torch.cat([v[:d] * self.Dw + self.m * tb, tb])

    def matrix(self) -> np.ndarray:
        """``P`` as a dense float64 host array (for a few features only)."""
        return self._dense_host()

    def inner(self, a, b) -> float:
        """``a' P b``, from the factors: ``(T a)' D (T b)``. Through the
        dense ``P`` in float32 the ``Db m m'`` block swamps ``diag(Dw)``
        where the means are large against the spreads, and ``a' P a`` came
        out negative: FISTA's curvature term then ran its backtracking
        uphill (sweep seed 266)."""
        d = self.d
        value = (a[:d] * b[:d] * self.Dw).sum()
        if self.m is not None:
            value = value + (self._tilde(a) * self._tilde(b)).sum() * self.Db
        return float(value)

    def inv(self, v: torch.Tensor) -> torch.Tensor:
        """``P^-1 v``, a new tensor."""
        if self._inv_dense is not None:
            return self._inv_dense @ v
        return metric_inv(v, self.m, self.Dw, self.Db)

    def inv_host(self, v: np.ndarray) -> np.ndarray:
        """``P^-1 v`` for a float64 host array (few features)."""
        if self._small:
            return self._inv_host @ v
        if self.m is None:
            return v / self._Dw[:, None]
        return self.inv(self._tensor(v)).double().cpu().numpy()

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


class GradientMapping:
    """The full-batch solvers' optimality measure, taken at any iterate (for
    the solvers that do not measure their own): the norm of the proximal
    gradient mapping in ``P^-1``'s metric, ``||theta - prox(theta - P^-1
    g)||_P``, relative to its value at the start. One full-batch gradient a
    measure; ``P`` costs one pass over ``X``, once."""

    def __init__(self, curvature: float):
        self.curvature = curvature

    def start(self, problem, theta) -> None:
        self.problem = problem
        self.P = Metric(problem, self.curvature, theta.dtype)
        self.idx = problem.oracle.full_batch()
        self.first = self._norm(theta) or 1.0

    def _norm(self, theta) -> float:
        _, _, grad = self.problem.evaluate(theta, self.idx, with_l2=True)
        z = theta - self.P.inv(grad)
        if self.problem.penalty.l1:
            self.P.prox_l1(z, self.problem.penalty.l1)
        diff = theta - z
        return math.sqrt(max(self.P.inner(diff, diff), 0.0))

    def __call__(self, theta) -> float:
        return self._norm(theta) / self.first


def _shorter(f0, f_new, slope, t):
    """The next trial step of a backtracking line search that failed at
    ``t``: the minimiser of the quadratic through ``f0``, ``slope`` and
    ``f_new``, kept within ``[t / 100, t / 2]`` (a far overshoot takes few
    trials). Elementwise on numpy arrays, one per output, or on floats."""
    curve = f_new - f0 - slope * t
    with np.errstate(divide="ignore", invalid="ignore"):
        t_min = np.where(curve > 0, -slope * t * t / (2.0 * curve), 0.5 * t)
    return np.clip(t_min, 0.01 * t, 0.5 * t)


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
        self.at_precision = False
        self._eps = torch.finfo(theta.dtype).eps
        self._problem = problem
        self._certificate_cache: dict = {}

    def certify(self, enough: float = 0.0) -> float | None:
        """The relative duality gap of the smooth loss at the iterate
        (:func:`~sklearn_gd.objective._certificate.smooth_duality_gap`: a few passes
        over ``X``, fewer where the first bound is below ``enough``), or
        None where none is defined: the stopping rule's proof of a stop
        (:class:`~sklearn_gd.engine._engine.Optimality`), which the gradient
        mapping alone is not without strong convexity."""
        return smooth_duality_gap(
            self._problem, self._param, self._certificate_cache, enough
        )

    # the objective's resolution, in units of its value times the precision:
    # a change below it is rounding (a sum over many rows in float32 is
    # exact to a few of its epsilons at best)
    resolution = 10.0
    # the relative gap estimate below which a solver that rounding stops has
    # converged (a hundredth of the package's 1e-4 promise)
    precision_gap = 1e-6

    def _resolved(self, decrease: float, f: float) -> bool:
        """Whether a decrease this large of the objective ``f`` shows in the
        data's precision."""
        return decrease > self.resolution * self._eps * abs(f)

    def _stall(self, f: float) -> None:
        """No step shows a decrease any more: stuck, and converged at the
        data's precision when the gap estimate is negligible (in float32 the
        gradient's rounding keeps the optimality measure near 1e-4)."""
        self.stuck = True
        self.at_precision = self.gap_estimate <= self.precision_gap * abs(f)

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

    def certify(self, enough: float = 0.0) -> float | None:
        """As :meth:`_Preconditioned.certify`, on float64 data with the
        gradient at the iterate (the last accepted step's evaluation) as
        ``X' s beta`` of the plain dual point, so that the certificate makes
        one pass over X, for the predictions, instead of two (the columns'
        second moments bound what the intercept's centring moves)."""
        g = self._g
        if self._param.dtype != torch.float64 or g is None:
            return super().certify(enough)
        return smooth_duality_gap(
            self._problem,
            self._param,
            self._certificate_cache,
            enough,
            gradient=(g, self._P.second),
        )

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
            f_new, g_new = self._evaluate(problem, x + t * d, idx)
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
            self._f, self._g = self._evaluate(problem, x, idx)
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


class ConjugateGradient(QuasiNewton):
    """Preconditioned conjugate gradients, for a quadratic objective (the
    squared loss with an L2 penalty): :class:`QuasiNewton`'s exact line
    search along ``d = -P^-1 g + beta d_prev``, ``beta`` the ratio of
    successive ``g' P^-1 g``. It keeps no history: two vector operations a
    step, and the solution in at most ``n_features + 1`` steps in exact
    arithmetic."""

    def certify(self, enough: float = 0.0) -> float | None:
        # its gradient may be followed from A d, not evaluated: no reuse
        return _Preconditioned.certify(self, enough)

    def setup(self, problem, theta) -> None:
        super().setup(problem, theta)
        # its steps are cheap and its iterate's sensitivity to rounding is
        # that of the problem's conditioning: "auto" goes near the data's
        # precision, so that equal problems (weights or repeated rows) agree;
        # stopped by rounding before that, it has converged below AUTO_TOL
        self.auto_tol = max(1e-10, 10.0 * torch.finfo(theta.dtype).eps)
        self.precision_tol = AUTO_TOL

    def _forget(self):
        super()._forget()
        self._gBg = None
        self._followed = False  # the last objective came from A d, not X

    def _learn(self, s, y, Bg_new) -> None:
        """Conjugacy needs no pairs: the previous direction is the memory."""

    # below this optimality measure the gradient is evaluated afresh at each
    # step: updated as g + t A d it drifts by rounding, and conjugacy with it
    fresh_below = 1e-3

    def _line_search(self, problem, x, idx, d, lr, slope):
        """The exact minimiser along ``d``. ``A d`` is one small product with
        a Gram oracle, else the gradient's change from a trial evaluation;
        with a Gram oracle and far from the optimum the objective and
        gradient follow from it exactly (a quadratic). Armijo backtracking
        where ``d'A d`` is not positive (no curvature along ``d``)."""
        hessian_vector = getattr(problem.oracle, "hessian_vector", None)
        if hessian_vector is not None:
            Ad = hessian_vector(d)
            problem.penalty.add_gradient_(Ad[: problem.d], d[: problem.d])
        else:  # A d from the gradient at the trial point x + lr d
            _, g_trial = self._evaluate(problem, x + lr * d, idx)
            Ad = g_trial.sub_(self._g).div_(lr)
        dAd = float((d * Ad).sum())
        if not dAd > 0:
            return super()._line_search(problem, x, idx, d, lr, slope)
        t = -slope / dAd
        followable = hessian_vector is not None and self.optimality is not None
        if followable and self.optimality > self.fresh_below:
            self._followed = True
            f_new = self._f + t * slope + 0.5 * t * t * dAd
            return t, f_new, Ad.mul_(t).add_(self._g)
        f_new, g_new = self._evaluate(problem, x + t * d, idx)
        # a followed objective and an evaluated one differ by rounding: only
        # two evaluated ones tell whether rounding is all that is left
        followed, self._followed = self._followed, False
        return (t, f_new, g_new) if followed or f_new <= self._f else None

    def _next(self, g, Bg) -> None:
        d_prev = self._d
        if d_prev is None or self._gBg is None:
            (gBg,) = ((g * Bg).sum()[None]).tolist()
            d, slope = -Bg, -gBg
        else:
            both = torch.stack([Bg, d_prev]).reshape(2, -1) @ g.reshape(-1)
            gBg, g_dprev = both.tolist()
            beta = gBg / self._gBg
            d = Bg.neg().add_(d_prev, alpha=beta)
            slope = -gBg + beta * g_dprev
        self._measure(math.sqrt(max(gBg, 0.0)))
        self._gBg = gBg
        self._d, self._slope = d, slope
        self.gap_estimate = max(0.0, 0.5 * gBg)


class Newton(QuasiNewton):
    """Damped Newton: each output's direction solves its own (generalised)
    Hessian's system, ``H_j d_j = -g_j``, and each output takes its own
    Armijo step from ``t = 1`` (one-vs-rest outputs are separate problems:
    one needing a short step does not hold the others back).

    The loss, gradient and Hessians at an accepted point come from one pass
    over ``X`` (:meth:`~sklearn_gd.objective._oracles.DirectOracle.derivatives`), and a
    trial point of the line search costs the loss alone. For dense data
    with few features (the oracle says when), where a Hessian costs about
    what a few gradients do and Newton's method needs about ten iterations,
    whatever the conditioning, against L-BFGS's tens to hundreds.
    Piecewise-quadratic losses (huber, squared_hinge, modified_huber, and
    the smoothings of the non-smooth ones) take their generalised Hessian,
    which can be singular (no row on a curved piece): then the smallest
    multiple of the preconditioner ``P`` that makes it positive definite is
    added. Its decrement ``g' H^-1 g / 2`` estimates the gap to the
    optimum.
    """

    check_every = 2  # its decrement is a close estimate of the gap

    def certify(self, enough: float = 0.0) -> float | None:
        """As :meth:`_Preconditioned.certify`, on float64 data with the
        Newton direction at the iterate (computed after each step) as the
        refined dual point's step, so that the certificate builds no Hessian
        of its own, and the objectives, predictions and loss derivatives
        found there (no pass of its own for them). In float32 none is
        the certificate's float64 arithmetic: a direction from float32
        gradients left sweep seed 65 (modified_huber, its fit within 1e-7)
        at a certified gap of 7e-4."""
        if self._param.dtype != torch.float64 or self._d is None:
            return _Preconditioned.certify(self, enough)
        return smooth_duality_gap(
            self._problem,
            self._param,
            self._certificate_cache,
            enough,
            self._d,
            self._columns,
            self._rows,
        )

    def _forget(self):
        super()._forget()
        # the objectives and the rows' terms at the iterate, with _d
        self._columns = self._rows = None

    def setup(self, problem, theta) -> None:
        super().setup(problem, theta)
        (q, k), d = theta.shape, problem.d
        self._joint = problem.joint and k > 1  # one system over theta.T
        self._together = problem.joint or k == 1
        # the L2 part of the Hessian: its diagonal on the coefficients' rows
        self._ridge = None
        if problem.penalty.l2:
            l2 = torch.as_tensor(problem.penalty.l2, dtype=torch.float64)
            ridge = np.zeros((l2.numel(), q))
            ridge[:, :d] = l2.cpu().numpy().reshape(-1, 1)
            self._ridge = np.tile(ridge, (1, k)) if self._joint else ridge
        # a softmax is unchanged by one shift of every class's intercept: the
        # direction ``u`` its Hessian is singular along, whatever the penalty,
        # and the gradient is zero along; the loss's curvature bound ``c``
        # there (``c u u'``, ``u`` of unit norm) leaves the step without a
        # component along it
        self._shift = None
        if self._joint and q > d:
            self._shift = np.arange(k) * q + d, problem.oracle.loss.curvature / k

    @staticmethod
    def _objectives(problem, values, theta) -> torch.Tensor:
        """Each output's objective (float64): its mean loss ``values`` at
        ``theta`` plus its penalty."""
        W = problem.coef(theta)
        return (values + problem.penalty.column_values(W)).double()

    def _values(self, problem, theta) -> np.ndarray:
        """Each output's objective at ``theta`` (the loss alone, no pass for
        derivatives), on the host: the line search's one synchronisation."""
        values, _, _ = problem.oracle.derivatives(theta, order=0)
        return self._objectives(problem, values, theta).cpu().numpy()

    def _at(self, problem, theta, columns=None) -> None:
        """Gradient, Hessian, measure and Newton direction at ``theta``
        (``columns``: its per-output objectives, when already known).

        The passes over the data are the device's; the small dense algebra
        (a ``q x q`` system an output) is the host's, where an operation
        costs a microsecond rather than a tensor operation's several: one
        transfer each way."""
        values, g, H = problem.oracle.derivatives(theta, order=2)
        self._rows = getattr(problem.oracle, "last_rows", None)
        W = problem.coef(theta)
        problem.penalty.add_gradient_(g[: problem.d], W)
        host = [H, g.double()]
        if columns is None:
            host.append(self._objectives(problem, values, theta))
        H, g_host, *rest = (t.cpu().numpy() for t in host)
        columns = rest[0] if rest else columns
        Bg = self._P.inv_host(g_host)
        d = self._newton_direction(H, g_host, Bg)
        # <g, P^-1 g> for the measure, and each output's slope <g_j, d_j>
        self._measure(math.sqrt(max(float((g_host * Bg).sum()), 0.0)))
        self._slopes = (g_host * d).sum(0)
        self._slope = float(self._slopes.sum())
        self.gap_estimate = max(0.0, -0.5 * self._slope)
        self._columns, self._f, self._g = columns, float(columns.sum()), g
        self._d = torch.from_numpy(d).to(device=g.device, dtype=g.dtype)
        # a decrement (the gap's estimate, exact as Newton converges) below
        # what the objective resolves in the data's precision: no step can
        # show a decrease any more, and the gap is negligible (in float32 the
        # gradient's rounding keeps the measure near 1e-4 from there on)
        if not self._resolved(self.gap_estimate, self._f):
            self.stuck = self.at_precision = True

    def _newton_direction(self, H, g, Bg) -> np.ndarray:
        """``-H_j^-1 g_j`` for every output (or ``-H^-1 g`` for a joint
        loss), on the host (:func:`~sklearn_gd.objective._linalg.guarded_solve`:
        Cholesky, with the smallest ridge in ``P``'s metric where ``H_j`` is
        singular to rounding), or the metric's
        step ``-P^-1 g`` for an output where no ridge up to ``P`` itself
        helps. ``H`` is changed."""
        q, k = g.shape
        n = H.shape[1]
        if self._ridge is not None:
            H[:, np.arange(n), np.arange(n)] += self._ridge
        if self._shift is not None:
            i, c = self._shift
            H[0, i[:, None], i] += c
        G = g.T.reshape(1, n) if self._joint else g.T

        def metric(j):
            P = self._P.matrix()
            return np.kron(np.eye(k), P) if self._joint else P

        d, ok = guarded_solve(H, G, metric)
        d = -(d.reshape(k, q) if self._joint else d).T
        if not ok.all():
            good = np.repeat(ok, k) if self._joint else ok
            d[:, ~good] = -Bg[:, ~good]
        return d

    def step(self, problem, idx, lr):
        x = self._param
        if self._g is None:
            self._at(problem, x)
        found = self._search(problem, x, lr)
        if found is None:  # no decrease left at this precision: stay, say so
            self._stall(self._f)
            return self._f / problem.sum_scale, 1.0
        t, columns = found
        x.add_(self._d * t)
        self._at(problem, x, columns)
        return self._f / problem.sum_scale, 1.0

    def _search(self, problem, x, lr):
        """Armijo backtracking from ``lr`` along the Newton direction, each
        output on its own objective (or all together, for one output or a
        joint loss). Returns the steps (a float, or a (n_outputs,) tensor)
        and the objectives reached, or None when no step decreases the
        objective at this precision."""
        d, together = self._d, self._together
        f0 = self._columns.sum(keepdims=True) if together else self._columns
        slopes = np.array([self._slope]) if together else self._slopes
        t = np.full(f0.shape, float(lr))
        for _ in range(60):
            step = (
                float(t[0])
                if together
                else torch.as_tensor(t, dtype=d.dtype, device=d.device)
            )
            columns = self._values(problem, x + d * step)
            reached = columns.sum(keepdims=True) if together else columns
            ok = reached <= f0 + self.armijo * t * slopes
            if ok.all():
                return step, columns
            # halving, not the quadratic's minimiser: a piecewise-quadratic
            # loss's curvature jumps along a long direction, where the
            # quadratic through f0 and the slope asks for a step a hundred
            # times shorter than the one that decreases (the smallest alpha
            # of modified_huber on breast_cancer: 248 Newton steps for 32)
            t = np.where(ok, t, 0.5 * t)
            # the decrease steps this long can make (half the linear model's,
            # as :class:`QuasiNewton`'s search), not Armijo's fraction of it:
            # that one drops below float32's rounding while a long direction
            # (a nearly singular generalised Hessian) still has a decrease of
            # a few percent of the objective to make
            if not self._resolved(-0.5 * float((t * slopes).sum()), self._f):
                return None  # a decrease this small is rounding
        return None


class AcceleratedProximal(_Preconditioned):
    """FISTA in ``P``'s metric: backtracked step, adaptive restart, and the
    L1 part by its per-coordinate proximal operator."""

    supports_prox = True
    check_every = 10  # steps between certificates of a smoothing (Smoothing)
    # a step that ends this far (relative) above the best objective so far is
    # a climb, not rounding: it is taken back (see :meth:`step`)
    climb = 1e-3

    def _forget(self):
        self._y = self._x_prev = None
        self._t = 1.0
        self._L = 1.0
        self._F_best = None
        self._rejected = 0
        self.gap_estimate = math.inf

    def prox_step(self, lr):
        return None  # the proximal step is taken inside :meth:`step`

    def _split(self, problem, theta, idx):
        """The smooth part of the objective (sum scale) and its gradient."""
        total, grad = self._evaluate(problem, theta, idx)
        return total - self._l1_value(problem, theta), grad

    def _total(self, problem, theta, idx) -> float:
        """The reported objective at ``theta``."""
        return self._evaluate(problem, theta, idx)[0] / problem.sum_scale

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
        # the objective's rounding: in float32 a sum over the rows is exact
        # to a few epsilons of it, and a test tighter than that doubled L
        # until the step rounded to nothing, a zero gradient mapping that
        # read as convergence (sweep seeds 59, 125: gaps 0.74 and 5.6e-4)
        slack = max(1e-12, self.resolution * self._eps) * abs(f_y)
        for _ in range(60):
            x_new = self._prox(problem, y - self._P.inv(g_y) / L, L)
            diff = x_new - y
            f_new, _ = self._split(problem, x_new, idx)
            curve = 0.5 * L * self._P.inner(diff, diff)
            bound = f_y + float((g_y * diff).sum()) + curve
            if f_new <= bound + slack:
                break
            L *= 2.0
        self._L = L
        total = f_new + self._l1_value(problem, x_new)
        if self._F_best is not None and not total <= self._F_best + max(
            slack, self.climb * abs(self._F_best)
        ):
            # a safeguard against climbing (MFISTA's, with room for
            # rounding): the step ended well above the best iterate. Sweep
            # seed 266 (float32, column means 1e4 times their
            # spread) climbed from 326 to 3.5e5 in 500 steps, raising
            # DivergenceError in a default fit: X w rounds to eps |X| |w|,
            # far above the 10 eps |f| the backtracking allows, so the test
            # passed for steps that went up. Momentum is dropped and the
            # step retried from x_prev; when even that plain proximal
            # gradient step goes up, with a shorter step (L doubled) each
            # time, and after 40 doublings rounding rules the objective:
            # stuck there (the estimator warns), never climbing.
            if self._t == 1.0 and torch.equal(self._y, self._x_prev):
                self._L = 2.5 * L  # twice L after the next step's 0.8
                self._rejected += 1
                if self._rejected > 40:
                    self.stuck = True
                    self.at_precision = False
            self._t = 1.0
            self._y = self._x_prev.clone()
            return self._total(problem, x, idx), 1.0
        if L * self._eps > 1.0:
            # a step shrunk by 1/eps is ruled by rounding, not curvature
            # (the metric bounds the curvature to within the features'
            # correlation): its gradient mapping, rounded towards zero, is
            # no measure of optimality. Sweep seed 266 (float32) read one as
            # convergence at a gap of 0.10: stuck instead, and warned.
            self.stuck = True
            self.at_precision = False
            return self._total(problem, x, idx), 1.0
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
        self._F_best = total if self._F_best is None else min(self._F_best, total)
        self._rejected = 0
        x.copy_(x_new)
        return total / problem.sum_scale, 1.0


class Smoothing(Solver):
    """A non-smooth loss by continuation: the inner solver (Newton or
    L-BFGS, or FISTA with an L1 part) on the loss's Moreau envelope, whose
    parameter ``mu`` shrinks tenfold until the loss's own duality gap is
    small enough.

    The smoothed objective is below the loss's by at most ``bias = mu G^2 /
    2`` per output (:class:`~sklearn_gd.model._losses.MoreauSmoothed`). Each time
    the inner solver's estimate of its own gap (half the Newton or L-BFGS
    decrement ``-g'd``, or ``||G||^2 / 2L`` for FISTA) is below a tenth of
    ``max(bias, target)`` relative to the objective, the fit is checked by
    a duality gap: the envelope's derivatives are a dual point of the loss,
    and the gap between the loss's objective and that dual point's bounds
    the distance to the optimum. Above ``target``, ``mu`` shrinks when the
    smoothing's bias is a sizeable part of the gap; otherwise the inner
    solver goes on. ``optimality`` is that gap, relative to the
    objective, once computed (a penalty with no L2 part has no bounded
    dual of this form: its gap is infinite, and such fits end with a
    warning). The reported objectives are the smoothed ones, within
    ``bias`` of the loss's.
    """

    full_batch = True
    auto_eta0 = 1.0
    measures_optimality = True
    auto_tol = 1e-4  # a relative duality gap

    def __init__(self, *, inner, target: float | str | None = "auto", **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        # None (tol=None): no target; the smoothing is sharpened until the
        # data's precision (the floor of ``mu``) or max_iter ends the fit
        self.target = {"auto": self.auto_tol, None: 0.0}.get(target, target)

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
        # below this the smoothing is finer than the data's precision resolves
        self._mu_floor = self.mu * 1e-2 * torch.finfo(theta.dtype).eps ** 0.5
        oracle.loss = MoreauSmoothed(self.base, self.mu)
        self.inner.curvature = oracle.loss.curvature
        self.inner.setup(problem, theta)
        self.optimality = None
        self.stuck = self.at_precision = False
        self._since_check = self._wait = 0
        self._previous = None  # the solution of the level before
        self._certificate = math.inf  # the last duality gap computed
        self._kink_every = self._kink_wait = 0  # see _duality_gaps

    @property
    def measure_name(self) -> str:
        """What :attr:`optimality` is, for the warnings."""
        if math.isfinite(self._certificate):
            return "relative duality gap at the last check"
        return "estimated relative gap (no duality gap could be certified)"

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
        # until a duality gap is computed, only the inner solver's estimate
        # (above the target: it certifies nothing); after, the last gap
        self.optimality = max(gap, bias, self.target * 1.01)
        if math.isfinite(self._certificate):
            self.optimality = self._certificate
        self._since_check += 1
        # the smoothed problem solved to a tenth of what smoothing costs
        level = max(bias, self.target)
        solved = gap <= 0.1 * level
        if self.inner.stuck or (solved and self._since_check > self._wait):
            self._since_check = 0
            smoothed, certificate = self._duality_gaps(problem, self.inner._param)
            self._certificate = certificate
            if math.isfinite(certificate):
                self.optimality = certificate
            if certificate <= self.target:  # certified: the rule stops here
                pass
            # the continuation follows the smoothed point's own gap: the
            # kink set's, far tighter, would shrink mu before each level is
            # solved, and the inner solver then crawls at the small mu
            elif (
                bias > 0.1 * smoothed  # the smoothing is what keeps the gap
                or gap <= 1e-6 * level  # or nothing else can
                or self.inner.stuck
                or (math.isinf(smoothed) and bias > self.target)
            ):
                self._shrink(problem)
            else:  # the inner solver's estimate was early: go on, check later
                self._wait = self.inner.check_every
        # stuck: the smoothing is fine enough, or as fine as the precision
        # allows; converged there when the certificate is negligible (a
        # hundredth of the package's 1e-4 promise, as for the inner solvers)
        floor = self.mu <= self._mu_floor
        precise = self._certificate <= self.inner.precision_gap
        self.stuck = (floor and precise) or (
            self.inner.stuck and (bias <= self.target or floor)
        )
        self.at_precision = self.stuck and precise
        return objective, weight

    def _shrink(self, problem):
        if self.mu <= self._mu_floor:  # as sharp as the precision allows
            if self.target > 0:
                self.inner.stuck = True
            else:  # tol=None: solve on at the floor, and check again later
                self._wait = self.inner.check_every
            return
        self._wait = 0
        self._kink_every = self._kink_wait = 0  # a new level: try it at once
        theta = self.inner._param
        previous, self._previous = self._previous, theta.clone()
        self.mu /= 10.0
        problem.oracle.loss = MoreauSmoothed(self.base, self.mu)
        self.inner._P.set_curvature(problem.oracle.loss.curvature)
        self.inner._forget()
        self.inner.stuck = False
        if previous is not None:
            # the smoothed solutions are piecewise linear in mu: on the last
            # two levels' line, a tenth of their step on from this one
            start = theta + 0.1 * (theta - previous)
            idx = problem.oracle.full_batch()
            here = self.inner._evaluate(problem, theta, idx)
            there = self.inner._evaluate(problem, start, idx)
            if there[0] < here[0]:
                theta.copy_(start)

    def _duality_gaps(self, problem, theta) -> tuple[float, float]:
        """The relative duality gaps of the loss itself at ``theta``, the
        smoothed point's and the best one
        (:func:`~sklearn_gd.objective._certificate.duality_gaps`).

        The kink set's dual points cost a few passes over X and a small LP
        per output: they are tried only where the first gap is above the
        target (or, for tol=None, above what counts as precise), and after
        each try that does not certify, only every 2nd, 4th, ... up to 16th
        check, but always once the inner solver is stuck, where the fit may
        end (seed 37 of the sweep: 186 checks until max_iter took 5.5 s of
        its 7.3)."""
        enough = self.target if self.target > 0 else self.inner.precision_gap
        due = self._kink_wait <= 0 or self.inner.stuck
        loss = problem.oracle.loss
        gaps = duality_gaps(
            problem, theta, self.base, loss, enough=enough if due else math.inf
        )
        if not due:
            self._kink_wait -= 1
        elif gaps[0] > enough:  # tried: wait longer unless it certified
            certified = gaps[1] <= enough
            self._kink_every = 0 if certified else min(2 * self._kink_every or 1, 16)
            self._kink_wait = self._kink_every
        return gaps
