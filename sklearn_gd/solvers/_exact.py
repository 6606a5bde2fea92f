"""Every configuration of a squared-loss search solved to its optimum from
its fold's moments, without reading ``X`` again.

With the squared loss on the full batch, the problem of a (fold, l1_ratio,
alpha, output) column is fixed by the fold's weighted moments
(:class:`~sklearn_gd.objective._cv_oracles.Moments`)::

    minimise over w:  1/2 w'Gw - c'w + 1/2 yy + a1 ||w||_1 + a2/2 ||w||^2

with ``G``, ``c`` and ``yy`` the centred moments (the intercept is then
``my - mx'w``), or the raw ones without an intercept, ``a1`` and ``a2``
the strengths of the penalty's L1 and L2 parts (``alpha`` times their
shares). It is solved on the host in
float64 (the moments are ``(n_features + 1)``-square, whatever ``n_samples``):

* without an L1 part (``"l2"``, None, ``l1_ratio=0``), in closed form from
  one eigendecomposition of each fold's ``G`` for all its alphas:
  ``w = V (L + a2)^-1 V'c``, eigenvalues at the rounding of ``G`` counting as
  zero (the minimum-norm solution where ``G + a2`` is singular, as
  ``numpy.linalg.lstsq`` gives);
* with one, by cyclic coordinate descent over all of a fold's columns at
  once (the columns are the alphas, l1_ratios and outputs), each column
  stopped on its own duality gap: that of scikit-learn's
  ``enet_coordinate_descent_gram``, computed from the same moments, a
  certificate that the objective is within ``gap`` of its minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..objective._linalg import guarded_solve, solve_l1_quadratic
from ._optimizers import Solver

__all__ = [
    "GAP_TOL",
    "CoordinateDescent",
    "ExactResult",
    "cd_sweep",
    "duality_gap",
    "polish",
    "solve_squared",
]

# the relative duality gap (gap / yy) at which a coordinate-descent column
# stops under tol="auto": its held-out mean squared error is then within
# about 2 sqrt(2 gap mse) ~ 3e-6 sqrt(mse yy) of the optimum's, and the
# gap, a difference of terms of size yy, is still far above float64's
# rounding of them (~1e-15 yy)
GAP_TOL = 1e-12
# sweeps of coordinate descent between tries of the exact solution on the
# current support (:func:`polish`), and the floats its batched systems take
POLISH_EVERY = 5
# sweeps after which a polish whose support solve is not certified tries
# the active-set search (:func:`polish`): before, the next sweeps usually
# find the support themselves at less cost (1e5 x 100, 5 folds x 20
# alphas of L1: 38 searches at the first two polishes doubled the time)
SEARCH_AFTER = 4 * POLISH_EVERY
# all columns' systems at once up to this many multiply-adds; beyond, each
# column's on its support, if at most this many features are in it
_POLISH_BATCHED_WORK = 2e7
_POLISH_MAX_SUPPORT = 512


@dataclass
class ExactResult:
    """Per column: coefficients (d, K) and intercepts (K,), float64; per
    unit: whether the gap reached its tolerance."""

    coef: np.ndarray
    intercept: np.ndarray
    converged: np.ndarray


def _to_host(t) -> np.ndarray:
    return t.detach().to("cpu").numpy().astype(np.float64, copy=False)


def solve_squared(
    moments,
    unit_fold: np.ndarray,
    l1: np.ndarray,
    l2: np.ndarray,
    k: int,
    *,
    fit_intercept: bool,
    max_iter: int,
    gap_tol: float = GAP_TOL,
) -> ExactResult:
    """The optimum of every unit (``k`` columns each, one per output).

    Parameters
    ----------
    moments : Moments
        The training moments of every fold, with targets.
    unit_fold, l1, l2 : ndarray of shape (n_units,)
        Each unit's fold and the strengths ``a1`` and ``a2`` of its L1 and
        L2 parts.
    k : int
        Outputs per unit.
    fit_intercept : bool
    max_iter : int
        Sweeps of coordinate descent at most.
    gap_tol : float
        Relative duality gap (``gap / yy``) at which a column stops.
    """
    mx, my = _to_host(moments.mx), _to_host(moments.my)  # (F, d), (F, k)
    # centred moments (the intercept is then my - mx'w), or raw ones: the
    # model through the origin
    G, C, yy = (moments.Gc, moments.Cc, moments.yyc) if fit_intercept else moments.raw()
    G, C, yy = _to_host(G), _to_host(C), _to_host(yy)
    U = unit_fold.shape[0]
    # column j = u * k + o: unit u, output o
    fold = np.repeat(unit_fold, k)
    out = np.tile(np.arange(k), U)
    a1 = np.repeat(np.asarray(l1, np.float64), k)
    a2 = np.repeat(np.asarray(l2, np.float64), k)
    coef, done = _solve_columns(
        G, C, yy, fold, out, a1, a2, gap_tol=gap_tol, max_iter=max_iter
    )
    if fit_intercept:
        intercept = my[fold, out] - np.einsum("dj,jd->j", coef, mx[fold])
    else:
        intercept = np.zeros(U * k)
    return ExactResult(
        coef=coef,
        intercept=intercept,
        converged=done.reshape(U, k).all(1),
    )


def _solve_columns(G, C, yy, fold, out, a1, a2, *, gap_tol, max_iter):
    """Every column's coefficients (d, K) and whether it reached its gap:
    in closed form without an L1 part (:func:`_ridge`, one
    eigendecomposition a fold), else by coordinate descent."""
    d, K = G.shape[1], fold.shape[0]
    coef = np.zeros((d, K))
    done = np.ones(K, dtype=bool)
    smooth = a1 == 0
    for f in np.unique(fold):
        cols = np.flatnonzero((fold == f) & smooth)
        if cols.size:
            coef[:, cols] = _ridge(G[f], C[f][:, out[cols]], a2[cols])
    lasso = np.flatnonzero(~smooth)
    if lasso.size:
        W, ok = _coordinate_descent(
            G,
            C,
            yy,
            fold[lasso],
            out[lasso],
            a1[lasso],
            a2[lasso],
            gap_tol=gap_tol,
            max_iter=max_iter,
        )
        coef[:, lasso], done[lasso] = W, ok
    return coef, done


def _ridge(G: np.ndarray, C: np.ndarray, a2: np.ndarray) -> np.ndarray:
    """``(G + a2_j I)^+ c_j`` for every column j, from one eigendecomposition."""
    lam, V = np.linalg.eigh(G)
    # eigenvalues below the rounding of G are zero (G is PSD)
    floor = max(float(lam[-1]), 0.0) * G.shape[0] * np.finfo(np.float64).eps
    lam = np.where(lam > floor, lam, 0.0)
    shifted = lam[:, None] + a2[None, :]
    inv = np.divide(1.0, shifted, out=np.zeros_like(shifted), where=shifted > floor)
    return V @ ((V.T @ C) * inv)


def _coordinate_descent(G, C, yy, fold, out, a1, a2, *, gap_tol, max_iter):
    """Cyclic coordinate descent for columns with an L1 part, all at once.

    A column (fold f, output o) minimises ``1/2 w'G_f w - C_f[:, o]'w +
    a1 ||w||_1 + a2/2 ||w||^2``; ``Q = G w`` is kept up to date, so that a
    coordinate's update costs O(columns) plus, where some column moved, the
    O(d x columns) update of ``Q``. Columns leave the sweep once their gap is
    below ``gap_tol * yy``.
    """
    d, K = G.shape[1], fold.shape[0]
    W = np.zeros((d, K))
    done = np.zeros(K, dtype=bool)
    c_all = C[fold, :, out].T  # (d, K)
    yy_all = yy[fold, out]
    tol_all = gap_tol * yy_all
    # working set: the columns still running (arrays indexed by position)
    live = np.arange(K)
    diag = np.einsum("fjj->fj", G)  # (F, d)
    # Gt[f, j] = G[f, :, j]; a column's row of G is gathered per coordinate
    # (gathering all at once would take K d^2 floats)
    Gt = np.ascontiguousarray(G.transpose(0, 2, 1))
    w, q = W[:, live], np.zeros((d, K))
    c, fl, l1, l2 = c_all, fold, a1, a2
    gap = duality_gap(w, q, c, yy_all, l1, l2)
    still = ~(gap <= tol_all)
    done[~still] = True
    for sweep in range(1, max_iter + 1):
        if not still.any():
            break
        if not still.all():  # shrink the working set
            W[:, live] = w
            live, w, q = live[still], w[:, still], q[:, still]
            c, fl, l1, l2 = c[:, still], fl[still], l1[still], l2[still]
        cd_sweep(Gt, diag, fl, w, q, c, l1, l2)
        if sweep % POLISH_EVERY == 0:
            polish(
                G,
                fl,
                w,
                q,
                c,
                yy_all[live],
                l1,
                l2,
                tol_all[live],
                search=sweep >= SEARCH_AFTER,
            )
        gap = duality_gap(w, q, c, yy_all[live], l1, l2)
        still = ~(gap <= tol_all[live])
        done[live[~still]] = True
    W[:, live] = w
    return W, done


def cd_sweep(Gt, diag, fold, w, q, c, a1, a2) -> bool:
    """One cyclic sweep of coordinate descent over every column, in place.

    Column ``j`` minimises ``1/2 w'G w - c'w + a1 ||w||_1 + a2/2 ||w||^2``
    with ``G = G[fold[j]]``; ``Gt[f, i]`` is ``G[f][:, i]`` and ``diag[f]``
    the diagonal of ``G[f]``; ``q = G w`` is kept up to date. A coordinate's
    update costs O(columns), plus the O(d x columns) update of ``q`` where a
    column moved. Returns whether any coordinate moved.
    """
    dg = diag[fold].T  # (d, K)
    den = dg + a2
    # a coordinate with no curvature (a constant feature, unpenalised by L2)
    # stays at zero: its gradient is zero too
    inv = np.divide(1.0, den, out=np.zeros_like(den), where=den > 0)
    moved = False
    for j in range(w.shape[0]):
        wj = w[j]
        r = c[j] - q[j] + dg[j] * wj
        new = np.sign(r) * np.maximum(np.abs(r) - a1, 0.0) * inv[j]
        delta = new - wj
        if delta.any():
            moved = True
            w[j] = new
            q += Gt[fold, j].T * delta
    return moved


def polish(G, fold, w, q, c, yy, a1, a2, tol, search: bool = True) -> None:
    """Try every column's exact solution on its current support and signs.

    Coordinate descent finds the support of a lasso solution long before it
    converges on it (correlated features slow it down: diabetes's Gram matrix
    has condition number ~ 500). On the support ``S`` with signs ``s`` the
    optimum solves ``(G_SS + a2 I) w_S = c_S - a1 s``; that candidate
    replaces a column's iterate (in place, with ``q = G w``) where its duality
    gap certifies it, which includes the optimality of the zeros off ``S``.
    Small problems solve all columns' systems at once (identity rows off the
    support, ``K d^3`` work); larger ones each column's on its support alone,
    up to ``_POLISH_MAX_SUPPORT`` features. A column whose candidate is not
    certified (its support or a sign is wrong) gets, up to that many
    features and where ``search``, the exact optimum by an active-set search
    from its iterate
    (:func:`~sklearn_gd.objective._linalg.solve_l1_quadratic`).
    """
    d, K = w.shape
    S = w != 0
    rhs = np.where(S, c - a1 * np.sign(w), 0.0)
    z = np.zeros_like(w)
    tried = np.zeros(K, dtype=bool)
    if K * d**3 <= _POLISH_BATCHED_WORK:
        eye = np.eye(d)
        A = G[fold] + a2[:, None, None] * eye
        A = np.where(S.T[:, :, None] & S.T[:, None, :], A, eye)
        sol, tried = guarded_solve(A, rhs.T, lambda j: eye)
        z = sol.T
    else:
        for j in range(K):
            on = np.flatnonzero(S[:, j])
            if not 0 < on.size <= _POLISH_MAX_SUPPORT:
                continue
            A = G[fold[j]][np.ix_(on, on)] + a2[j] * np.eye(on.size)
            sol, ok = guarded_solve(
                A[None], rhs[on, j][None], lambda _: np.eye(on.size)
            )
            z[on, j], tried[j] = sol[0], ok[0]
    tried &= np.isfinite(z).all(0)
    good, qz = _certified(G, fold, z, c, yy, a1, a2, tol)
    good &= tried
    w[:, good], q[:, good] = z[:, good], qz[:, good]
    if not search or d > _POLISH_MAX_SUPPORT or good.all():
        return
    # where the support or a sign is wrong (a coefficient on its way to
    # zero, or a duplicated column's pair on opposite sides of it while a
    # small L2 part pulls them together at a rate a2 / G_jj a sweep: sweep
    # seed 1284 crawled for 1000 sweeps at a gap of 4e-2), the active-set
    # search from the iterate: each round one solve on a support
    eye = np.eye(d)
    for j in np.flatnonzero(~good):
        H = (G[fold[j]] + a2[j] * eye)[None]
        lam = np.full((1, d), a1[j])
        z = solve_l1_quadratic(H, c[None, :, j], w[None, :, j].copy(), lam).T
        col = slice(j, j + 1)
        ok, qz = _certified(
            G, fold[col], z, c[:, col], yy[col], a1[col], a2[col], tol[col]
        )
        if ok[0]:
            w[:, col], q[:, col] = z, qz


def _products(G, fold, z) -> np.ndarray:
    """``G[fold[j]] @ z[:, j]`` for every column, a fold's columns at once."""
    out = np.empty_like(z)
    for f in np.unique(fold):
        cols = fold == f
        out[:, cols] = G[f] @ z[:, cols]
    return out


def _certified(G, fold, z, c, yy, a1, a2, tol) -> tuple[np.ndarray, np.ndarray]:
    """Which columns of the candidates ``z`` are finite with a duality gap
    at most ``tol``, and their products ``G z`` (the iterate's ``q`` where
    they replace it)."""
    fin = np.isfinite(z).all(0)
    qz = _products(G, fold, np.where(fin, z, 0.0))
    return fin & (duality_gap(z, qz, c, yy, a1, a2) <= tol), qz


def duality_gap(w, q, c, yy, a1, a2) -> np.ndarray:
    """The duality gap of every column (``q = G w``): that of the lasso on
    the design augmented with ``sqrt(a2) I``, with the dual point the
    residual scaled into the dual's feasible set."""
    wq = (w * q).sum(0)
    cw = (c * w).sum(0)
    ww = (w * w).sum(0)
    r2 = np.maximum(yy - 2.0 * cw + wq, 0.0) + a2 * ww  # ||r_aug||^2 / n
    dual_norm = np.abs(c - q - a2 * w).max(0)
    scale = np.where(dual_norm > a1, a1 / np.where(dual_norm > 0, dual_norm, 1.0), 1.0)
    return 0.5 * (1.0 + scale**2) * r2 + a1 * np.abs(w).sum(0) + scale * (cw - yy)


class CoordinateDescent(Solver):
    """The squared loss with an L1 part, on the Gram path, in a single fit:
    the search's coordinate descent (:func:`cd_sweep`, :func:`polish`) on
    the data term's moments, one sweep a step, stopped on the duality gap.

    It requires of the data term its least-squares moments
    (:meth:`~sklearn_gd.objective._gram.GramOracle.least_squares_moments`): ``tol``
    is then the duality gap relative to the targets' (centred) mean square,
    as in the cross-validated search, and "auto" is :data:`GAP_TOL`, so that
    a fit and the search's configuration of the same alpha stop on the same
    certificate. A sweep in which no coordinate moves is a fixed point of
    coordinate descent, which for this problem is its optimum.
    """

    full_batch = True
    supports_prox = True
    measures_optimality = True
    auto_eta0 = 1.0  # no step size: the schedule's rate is not read
    auto_tol = GAP_TOL

    def __init__(self, **kwargs):
        super().__init__()

    @staticmethod
    def serves(oracle, penalty) -> bool:
        """Whether this solver applies: a data term with least-squares
        moments and a penalty with an L1 part."""
        return bool(penalty.has_prox and oracle.supports_least_squares_moments)

    def _build(self, param, lr):
        return None

    def state_dict(self):
        return None

    def prox_step(self, lr):
        return None  # the L1 part is in each coordinate's update

    def setup(self, problem, theta) -> None:
        G, C, yy = problem.oracle.least_squares_moments()
        d, k = G.shape[0], C.shape[1]
        self._G, self._diag = G[None], np.diagonal(G)[None]
        self._fold = np.zeros(k, dtype=np.int64)
        self._c, self._yy = C, yy
        self._a1 = np.full(k, float(problem.penalty.l1))
        self._a2 = np.full(k, float(problem.penalty.l2))
        self._w = theta[:d].detach().to("cpu", torch.float64).numpy().copy()
        self._q = G @ self._w
        self._sweeps = 0
        self.optimality = None
        self.stuck = self.at_precision = False

    def step(self, problem, idx, lr):
        w, q, c, yy, a1, a2 = self._w, self._q, self._c, self._yy, self._a1, self._a2
        moved = cd_sweep(self._G, self._diag, self._fold, w, q, c, a1, a2)
        self._sweeps += 1
        if self._sweeps % POLISH_EVERY == 0:
            polish(
                self._G,
                self._fold,
                w,
                q,
                c,
                yy,
                a1,
                a2,
                GAP_TOL * yy,
                search=self._sweeps >= SEARCH_AFTER,
            )
        gap = duality_gap(w, q, c, yy, a1, a2)
        scale = np.where(self._yy > 0, self._yy, 1.0)
        self.optimality = float(np.max(np.maximum(gap, 0.0) / scale))
        # a sweep that moves nothing is coordinate descent's fixed point:
        # the optimum, to the rounding of its updates
        self.stuck = self.at_precision = not moved
        theta = self._param
        d = w.shape[0]
        theta[:d] = torch.from_numpy(w).to(theta.dtype)
        if theta.shape[0] > d:
            b = problem.oracle.intercept_of(w)
            theta[d] = torch.from_numpy(b).to(theta.dtype)
        primal = (
            0.5 * (w * q).sum(0)
            - (self._c * w).sum(0)
            + 0.5 * self._yy
            + self._a1 * np.abs(w).sum(0)
            + 0.5 * self._a2 * (w * w).sum(0)
        )
        return float(primal.mean()), 1.0
