"""Regression tests of the full-batch solvers' numerics (issue 26).

Each test names the defect it pins down and fails on the code before its
fix (5a7853b). The package's promise, which every tolerance here comes
from: a default fit ends within a relative objective gap of 1e-4 of the
optimum, or warns, and a warning says what is true of the fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _objective import estimator_objective, objective
from scipy.optimize import linprog, minimize
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning

from sklearn_gd import TorchSGDRegressor
from sklearn_gd._linalg import guarded_solve

# the package's promise: a relative objective gap of at most 1e-4, or a warning
PROMISE = 1e-4


def _fit(est, X, y):
    """Fit, returning the estimator and its ConvergenceWarnings' texts."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return est, [
        str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)
    ]


def _gap(ours: float, reference: float) -> float:
    best = min(ours, reference)
    return (ours - best) / abs(best)


# piecewise-linear losses as max_k (a_k r + c_k) of the residual r = y - p
_PIECES = {
    "absolute_error": [(1.0, 0.0), (-1.0, 0.0)],
    "quantile": [(0.5, 0.0), (-0.5, 0.0)],
    "epsilon_insensitive": [(1.0, -0.1), (-1.0, -0.1), (0.0, 0.0)],
}


def _lp_reference(X, y, loss, l1):
    """The exact optimum of ``mean(loss) + l1 ||w||_1`` (a linear program,
    HiGHS): variables ``w+, w-, b+, b-`` and one epigraph variable a row."""
    n, d = X.shape
    c = np.r_[l1 * np.ones(2 * d), 0.0, 0.0, np.ones(n) / n]
    one = np.ones((n, 1))
    blocks, rhs = [], []
    for a, b in _PIECES[loss]:  # u_i >= a (y_i - x_i w - b) + c
        blocks.append(sp.hstack([-a * X, a * X, -a * one, a * one, -sp.eye(n)]))
        rhs.append(-a * y - b)
    A = sp.vstack(blocks).tocsr()
    x = linprog(c, A_ub=A, b_ub=np.concatenate(rhs), bounds=(0, None)).x
    return x[:d] - x[d : 2 * d], x[2 * d] - x[2 * d + 1]


def _lp_objective(est, X, y):
    """The LP optimum's objective, scored by the suite's one formula."""
    l1 = est.alpha if est.penalty == "l1" else 0.0
    Y = y.reshape(len(y), -1)
    return sum(
        objective(
            *_lp_reference(X, Y[:, j], est.loss, l1),
            X,
            Y[:, j],
            loss=est.loss,
            penalty_name=est.penalty,
            alpha=est.alpha,
        )
        for j in range(Y.shape[1])
    )


# ------------------------------------------------- singular Newton systems
def test_guarded_solve_never_raises_on_singular_systems():
    """Exactly singular, rank-deficient and zero systems get the smallest
    ridge in the given metric that makes them sound; nothing raises."""
    rng = np.random.RandomState(0)
    B = rng.randn(6, 2)
    H = np.stack([B @ B.T, np.zeros((6, 6)), np.ones((6, 6)), np.eye(6)])
    G = rng.randn(4, 6)
    x, ok = guarded_solve(H, G, lambda j: np.eye(6))
    assert ok.all() and np.isfinite(x).all()
    np.testing.assert_allclose(x[3], G[3], rtol=1e-15)  # the identity: exact
    # the zero system's ridge is a multiple of the identity: x parallel to g
    cos = x[1] @ G[1] / np.linalg.norm(x[1]) / np.linalg.norm(G[1])
    assert cos == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("loss", list(_PIECES))
@pytest.mark.parametrize("two_d", [False, True], ids=["1d-y", "2d-y"])
def test_unpenalised_piecewise_linear_loss_does_not_crash(loss, two_d):
    """Issue 26: the generalised Hessian of the smoothing is singular to
    rounding, passed Cholesky, then ``np.linalg.solve`` raised LinAlgError
    (seed 3: absolute_error with 2-D y, epsilon_insensitive with both)."""
    X, y = make_regression(300, 5, noise=10, random_state=3)
    Y = np.c_[y, 0.5 * y + 3.0] if two_d else y
    est, _ = _fit(TorchSGDRegressor(loss=loss, penalty=None), X, Y)
    assert np.isfinite(est.coef_).all()
    gap = _gap(estimator_objective(est, X, Y), _lp_objective(est, X, Y))
    assert gap <= PROMISE


# ------------------------------------------------------- huber on float32
def _huber_reference(X, y) -> float:
    """scipy's L-BFGS-B on the exact float64 huber + l2 objective (its
    gradient written out: huber is C1)."""
    n, d = X.shape

    def f(v):
        return objective(v[:d], v[d], X, y, loss="huber", alpha=1e-4)

    def g(v):
        r = np.clip(y - X @ v[:d] - v[d], -0.1, 0.1)  # -dL/dp
        return np.r_[-(X.T @ r) / n + 1e-4 * v[:d], -r.sum() / n]

    opts = dict(maxiter=10**5, maxfun=10**6, ftol=1e-16, gtol=1e-13)
    return minimize(f, np.zeros(d + 1), jac=g, method="L-BFGS-B", options=opts).fun


@pytest.mark.parametrize("seed", [0, 1, 3, 5])
@pytest.mark.parametrize("layout", ["dense", "sparse", "torch"])
def test_huber_float32_reaches_the_float64_optimum(seed, layout):
    """Issue 26: on float32 data the Newton line search took Armijo's
    fraction (1e-4) of the linear model's decrease as the decrease a step
    could make, found it below float32's rounding after a few trials along
    the long first direction (no row in huber's quadratic zone at w = 0)
    and stopped at the constant model (R^2 -0.0015, 56 of 60 seeds)."""
    X, y = make_regression(300, 6, noise=1, random_state=seed)
    X32 = X.astype(np.float32)
    Xin = {
        "dense": X32,
        "sparse": sp.csr_matrix(X32),
        "torch": torch.from_numpy(X32),
    }[layout]
    est, warned = _fit(TorchSGDRegressor(loss="huber"), Xin, y)
    # float32 resolves the objective to ~10 eps32 ~ 1e-6 relative: the
    # promise's 1e-4 is reachable, and was reached on all 180 cases measured
    gap = _gap(estimator_objective(est, X, y), _huber_reference(X, y))
    assert gap <= PROMISE and not warned, (gap, warned)
