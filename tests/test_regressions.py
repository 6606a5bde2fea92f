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
from _objective import classifier_objective, estimator_objective, objective
from _sweep import run_case
from scipy.optimize import linprog, minimize
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor
from sklearn_gd.objective._linalg import guarded_solve

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


def test_guarded_solve_judges_each_pivot_on_its_own_scale():
    """A column of mean -7e5 and spread 8e2 beside the intercept's ones: the
    Gram matrix's diagonal spans 5e11, and its scaled condition number is
    about 1e7, so Cholesky solves it to about 1e-9. Judged against the
    largest diagonal entry, the intercept's pivot looked like rounding, and
    the ridge then added missed the equations by percents (sweep seeds 994,
    1250: huber fits that warned at true gaps of 3e-9; 254, a multinomial
    fit whose ridged Newton steps crawled)."""
    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(40, 3), -7e5 + 8e2 * rng.randn(40), np.ones(40)]
    H = (X.T @ X)[None]
    g = rng.randn(1, 5)
    x, ok = guarded_solve(H, g, lambda j: np.diag(np.diag(H[0])))
    assert ok.all()
    # the unridged solution, in the scaled metric: exact to the scaled
    # condition number (1e7) times float64's epsilon, with a margin of 100
    D = 1.0 / np.sqrt(np.diag(H[0]))
    exact = D * np.linalg.solve(D[:, None] * H[0] * D, D * g[0])
    err = np.abs((x[0] - exact) / D).max() / np.abs(exact / D).max()
    assert err <= 1e-7, err
    # a genuinely dependent column (a copy in another unit) is still caught
    Xd = np.c_[X, 3.0 * X[:, 3]]
    x, ok = guarded_solve((Xd.T @ Xd)[None], rng.randn(1, 6), lambda j: np.eye(6))
    assert ok.all() and np.isfinite(x).all()


@pytest.mark.parametrize("seed", [254, 994, 1250])
def test_badly_scaled_newton_systems_are_solved_without_a_ridge(seed):
    # sweep seeds 994 and 1250 (huber + L1, float32, one-vs-rest, a column
    # of mean -7e4): the certificate's Newton-refined point missed the L1
    # equalities by 2%, and the fits ran to max_iter warning at certified
    # gaps of 5e-3 at true gaps of 3e-9; 254 (multinomial without a
    # penalty, nearly separable) warned at a true 6e-8. Each pivot judged
    # on its own diagonal, all three stop certified below the promise
    res = run_case(seed)
    assert res.exception is None
    assert res.gap <= PROMISE and not res.warned, (res.gap, res.messages)


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


# --------------------------------------------------- truthful warnings
@pytest.mark.parametrize("loss", list(_PIECES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unpenalised_piecewise_linear_fit_is_certified_without_warning(loss, seed):
    """Issue 26: without an L2 part the smoothing had no duality gap (it
    returned inf), so fits within 1e-10 of the LP optimum ended with a
    ConvergenceWarning about an uncertified 1.01e-4. The dual point is now
    made feasible by the least change of the smoothing's derivatives."""
    X, y = make_regression(300, 5, noise=10, random_state=seed)
    est, warned = _fit(TorchSGDRegressor(loss=loss, penalty=None), X, y)
    # a certified relative duality gap <= tol="auto" (1e-4) bounds the gap
    gap = _gap(estimator_objective(est, X, y), _lp_objective(est, X, y))
    assert not warned and gap <= PROMISE, (gap, warned)


def _reported_measure(message: str) -> float:
    return float(message.split(" is ")[1].split(",")[0])


@pytest.mark.parametrize("loss", ["absolute_error", "quantile"])
def test_warning_states_what_is_true_of_the_fit(loss):
    """Issue 26: an L1 fit that the smoothing cannot finish warned about a
    made-up measure (1.01e-4) and suggested float64 on float64 data. The
    warning now names the measure it reports, an upper bound of the fit's
    relative gap, and gives no float64 advice for float64 data."""
    X, y = make_regression(300, 5, noise=10, random_state=0)
    est, warned = _fit(TorchSGDRegressor(loss=loss, penalty="l1"), X, y)
    gap = _gap(estimator_objective(est, X, y), _lp_objective(est, X, y))
    assert gap <= PROMISE or warned
    for message in warned:
        assert "float64" not in message
        if "duality gap" in message:  # a certificate bounds the true gap
            assert _reported_measure(message) >= gap


# ----------------------------------------------------------- hinge + L1
# scikit-learn's test_sgd.py::test_sgd_l1 data (X4, Y4, shuffled by seed 13):
# two groups of redundant features; the LP optimum of hinge + 0.2 ||w||_1
# without intercept is w = [-1, 0, 0, 0, 0, 1], objective 0.4
_X4 = np.array(
    [
        [1, 0.9, 0.8, 0, 0, 0],
        [1, 0.84, 0.98, 0, 0, 0],
        [1, 0.96, 0.88, 0, 0, 0],
        [1, 0.91, 0.99, 0, 0, 0],
        [0, 0, 0, 0.89, 0.91, 1],
        [0, 0, 0, 0.79, 0.84, 1],
        [0, 0, 0, 0.91, 0.95, 1],
        [0, 0, 0, 0.93, 1, 1],
    ]
)
_Y4 = np.array([1, 1, 1, 1, 2, 2, 2, 2])


def _hinge_l1(sparse, **params):
    """scikit-learn's test_sgd_l1 fit (the LP optimum is 0.4): the estimator,
    its ConvergenceWarnings and its relative gap."""
    idx = np.arange(8)
    np.random.RandomState(13).shuffle(idx)
    X, y = _X4[idx], _Y4[idx]
    clf = TorchSGDClassifier(
        penalty="l1", alpha=0.2, fit_intercept=False, max_iter=2000, **params
    )
    clf, warned = _fit(clf, sp.csr_matrix(X) if sparse else X, y)
    return clf, warned, (classifier_objective(clf, X, y) - 0.4) / 0.4


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_hinge_l1_reaches_the_lp_optimum(sparse):
    """Issue 26: without an L2 part the smoothing had no certificate and
    shrank its parameter at every check; on CSR input it ended 3.5% above
    the optimum after max_iter. With the L1 dual point it is certified.
    On dense input the fit stopped 10% above the optimum (all coefficients
    near +-0.355) with a 0.319 duality gap: the compiled one-pass kernel
    (since removed), bound to hinge when the oracle was built, kept giving
    hinge's subgradient under the smoothing, so FISTA's step and its gap
    estimate were those of the non-smooth loss."""
    clf, warned, gap = _hinge_l1(sparse, shuffle=False)
    # a certified relative duality gap <= tol="auto" (1e-4) bounds the gap
    assert gap <= PROMISE and not warned, (gap, warned)
    # the kink set's certificate is tight, so the fit stops once the gap is
    # certified below tol (dense: coefficients -3.7e-4, -4.3e-5 still on
    # their way to 0, at a gap under 1e-4); exact zeros at tol=None are
    # scikit-learn's test_sgd_l1, in the conformance suite
    np.testing.assert_allclose(clf.coef_[0, 1:-1], 0.0, atol=1e-3)


def test_dense_oracle_computes_the_loss_it_is_given():
    """The root cause of the dense hinge + L1 defect: a loss set on a dense
    oracle after it was built (Smoothing's Moreau envelope) was ignored by
    the compiled pass, which computed the first loss's value and gradient.
    Both oracles must give the torch formula's, to rounding."""
    from sklearn_gd.model._losses import Hinge
    from sklearn_gd.model._smoothing import MoreauSmoothed
    from sklearn_gd.objective._direct import DirectOracle

    rng = np.random.RandomState(0)
    X = torch.from_numpy(rng.randn(50, 3))
    Y = torch.from_numpy(np.sign(rng.randn(50, 1)))
    theta = torch.from_numpy(0.3 * rng.randn(3, 1))
    oracle = DirectOracle(X, Y, None, Hinge(), fit_intercept=False)
    oracle.loss = smoothed = MoreauSmoothed(Hinge(), 1.0)
    values, _, grad = oracle.loss_grad(theta, oracle.full_batch())
    P = X @ theta
    expected = X.T @ smoothed.derivative(Y, P) / 50
    # float64 sums of 50 terms: rounding is ~1e-15 relative
    np.testing.assert_allclose(values, smoothed.value(Y, P).mean(0), rtol=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


# ---------------------------------------------------------------- tol=None
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_tol_none_ends_only_at_a_certified_optimum(sparse):
    """Issue 26: with tol=None (no criterion but max_iter) the dense hinge +
    L1 fit stopped after 34 of 2000 epochs, 10% above the optimum, and
    said nothing (tol=None skipped every warning); the smoothing also kept
    the 1e-4 target of "auto" and ended 6e-5 above it after 2000 epochs.
    Now it sharpens the smoothing to its floor and ends early only with a
    duality gap of at most 1e-6, a bound of the true gap."""
    clf, warned, gap = _hinge_l1(sparse, tol=None)
    # an early end is certified to 1e-6, and 2000 epochs get there too
    # (measured: 6e-11 on both layouts, in 765 and 831 epochs)
    assert gap <= 1e-6 and not warned, (clf.n_iter_, gap, warned)


def test_tol_none_warns_when_rounding_ends_the_fit_early():
    """tol=None gets no warning at max_iter (as from scikit-learn), but a
    solver that rounding stopped before a certified optimum (it idles for
    the epochs left, changing nothing) says so, with its measure."""
    from types import SimpleNamespace

    result = SimpleNamespace(
        interrupted=False,
        converged=False,
        solver_stuck=True,
        n_iter=100,
        optimality=3e-3,
        measure="relative duality gap at the last check",
        tol=None,
    )
    mode = SimpleNamespace(tol=None, partial=False, max_iter=100)
    est = TorchSGDRegressor(tol=None)
    with pytest.warns(ConvergenceWarning, match="max_iter=100 change nothing.*0.003"):
        est._warn_on_ending(result, mode, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ending in (dict(solver_stuck=False), dict(converged=True)):
            est._warn_on_ending(
                SimpleNamespace(**{**vars(result), **ending}), mode, np.float64
            )


def test_dense_l1_quantile_fit_reaches_the_lp_optimum():
    """Issue 26: dense L1 quantile fits ended up to 2.5e-3 above
    QuantileRegressor(highs) (this case, the worst of 60 in
    benchmarks/nonsmooth_sweep.py; 19 of 60 above 1e-4): the one-pass
    kernel (since removed) gave the pinball loss's subgradient under the
    smoothing. CSR fits, never affected, were within 1.8e-5; dense ones now
    are too."""
    from sklearn.linear_model import QuantileRegressor

    X, y = make_regression(482, 30, noise=10.0, random_state=9)
    est, _ = _fit(
        TorchSGDRegressor(loss="quantile", quantile=0.9, alpha=1e-3, penalty="l1"), X, y
    )
    ref = QuantileRegressor(quantile=0.9, alpha=1e-3, solver="highs").fit(X, y)
    kw = dict(loss="quantile", quantile=0.9, penalty_name="l1", alpha=1e-3)
    best = objective(ref.coef_, ref.intercept_, X, y, **kw)
    # the promise; the fit may still warn (its L1 duality gap is loose)
    assert _gap(estimator_objective(est, X, y), best) <= PROMISE


@pytest.mark.parametrize("multi_class", ["ovr", "multinomial"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_separable_unpenalised_log_loss_warns(multi_class, n_classes):
    # sweep seeds 62, 127, 191: on separable data the unpenalised log-loss
    # has no minimiser (infimum 0, not attained), and the fit reported
    # convergence once its gradient was small; it now says so
    rng = np.random.RandomState(0)
    centres = 6.0 * rng.randn(n_classes, 4)
    y = np.repeat(np.arange(n_classes), 30)
    X = centres[y] + 0.1 * rng.randn(len(y), 4)
    est = TorchSGDClassifier(loss="log_loss", penalty=None, multi_class=multi_class)
    _, caught = _fit(est, X, y)
    assert est.score(X, y) == 1.0  # the data are separated, as built
    assert any("linearly separable" in m for m in caught), caught
    # with a penalty the minimiser exists: no such warning
    _, caught = _fit(est.set_params(penalty="l2"), X, y)
    assert not any("linearly separable" in m for m in caught), caught


def test_non_separable_unpenalised_log_loss_does_not_warn():
    # overlapping classes: the unpenalised optimum exists and is reached
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3)
    y = (X[:, 0] + rng.randn(200) > 0).astype(int)
    _, caught = _fit(TorchSGDClassifier(loss="log_loss", penalty=None), X, y)
    assert caught == []


def test_fista_float32_does_not_read_a_rounded_step_as_convergence():
    # sweep seed 59: FISTA's backtracking tested f_new <= bound + 1e-12 |f|,
    # tighter than a float32 objective's rounding, so L doubled until the
    # step rounded to nothing and the zero gradient mapping read as
    # convergence at a gap of 0.74, silently; the fit must now reach the
    # promise or warn
    res = run_case(59)
    assert res.exception is None
    assert res.gap <= PROMISE or res.warned, (res.gap, res.messages)


def test_fista_float32_never_climbs_into_a_divergence_error():
    # sweep seed 266 (huber + l1, float32, column means ~1e4 times their
    # spread): X w rounds to eps |X| |w|, far above the backtracking's
    # 10 eps |f| slack, so FISTA accepted steps that went up and its momentum
    # with a shrinking L climbed from 326 to 3.5e5: DivergenceError in a
    # default fit, advising a smaller eta0 the user never set. Steps well
    # above the best objective are now taken back, and a step that rounding
    # shrank by 1/eps ends the fit as stuck, never as converged
    res = run_case(266)
    assert res.exception is None, res.exception
    assert res.gap <= PROMISE or res.warned, (res.gap, res.messages)


@pytest.mark.parametrize("seed", [19, 44, 55, 106, 163, 183, 420, 1196])
def test_kink_certificate_certifies_accurate_non_smooth_fits(seed):
    # sweep seeds 19 (epsilon_insensitive l1), 44 (quantile elasticnet
    # float32: max_iter), 55 and 183 (hinge OvR unpenalised), 106 (OvR
    # epsilon_insensitive l1, csr), 163 (absolute_error l1, csr, 3 outputs),
    # 420 (absolute_error elasticnet float32, 2 outputs): fits within
    # 1e-12..9e-7 of the LP/QP optimum warned, as the smoothed point's
    # duality gap (its derivatives at a kink, made feasible by a scaling
    # into the L1 ball or a projection) read 4e-4..1; the kink set's dual
    # point certifies them. 420 on an AMD EPYC, and 1196 (quantile
    # elasticnet, 2 outputs, real weights: within 4e-9, warned at a
    # certified 5e-3): the kink set's exact equalities could be met only far
    # from the kinks, or not at all in the free rows' boxes; the fit's last
    # check prices the L2 part's miss at its square over l2, and the point
    # of least gap certifies them (941 and 1300 too, in the slow mode)
    res = run_case(seed)
    assert res.exception is None
    assert res.gap <= PROMISE and not res.warned, (res.gap, res.messages)


# h(u) = max_k (a_k u + c_k) of u = y - p (residual) or y p (margin)
_SHAPES = {
    "absolute_error": ((-1.0, 1.0), (0.0, 0.0), False),
    "quantile": ((-0.7, 0.3), (0.0, 0.0), False),
    "epsilon_insensitive": ((-1.0, 0.0, 1.0), (-0.1, 0.0, -0.1), False),
    "hinge": ((-1.0, 0.0), (1.0, 0.0), True),
}


def _weighted_lp(X, y, s, loss, l1):
    """The exact optimum of ``sum(s l(y, Xw + b)) / sum(s) + l1 ||w||_1``
    (HiGHS): variables ``w+, w-, b`` and one epigraph variable a row."""
    n, d = X.shape
    slopes, intercepts, margin = _SHAPES[loss]
    c = np.r_[l1 * np.ones(2 * d), 0.0, s / s.sum()]
    # u = A z + u0 over z = (w+, w-, b)
    if margin:
        A, u0 = y[:, None] * np.c_[X, -X, np.ones(n)], np.zeros(n)
    else:
        A, u0 = -np.c_[X, -X, np.ones(n)], y
    rows = [np.c_[a * A, -np.eye(n)] for a in slopes]
    rhs = [-(a * u0 + ci) for a, ci in zip(slopes, intercepts)]
    bounds = [(0, None)] * (2 * d) + [(None, None)] * (1 + n)
    res = linprog(c, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=bounds)
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("loss", list(_SHAPES))
@pytest.mark.parametrize("penalty", ["l1", None, "elasticnet", "l2"])
def test_kink_certificate_bounds_the_true_gap(loss, penalty, monkeypatch):
    # every gap the certificate reports during a fit, from the first check
    # to the last (the point of least gap included), bounds that iterate's
    # true gap: its dual value is below the optimum (the LP's, for l1 and
    # None; with an L2 part, below every objective value the fit reached, a
    # weaker check)
    import sklearn_gd.objective._certificate as cert
    import sklearn_gd.solvers._smoothing as fb

    rng = np.random.default_rng(abs(hash((loss, penalty))) % 2**32)
    n, d = 60, 4
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, d)
    y = X @ rng.normal(size=d) + rng.standard_t(2, size=n)
    if loss == "hinge":
        y = np.where(y > np.median(y), 1.0, -1.0)
    s = rng.uniform(0.2, 2.0, n)
    seen = []

    def record(problem, theta, base, smoothed, enough=0.0, least_gap=False):
        primal = float(cert._AtTheta(problem, theta, base).primal.sum())
        # the point of least gap (a fit's last check) at every iterate too
        for least in (True, least_gap):
            gaps = cert.duality_gaps(
                problem, theta, base, smoothed, enough=0.0, least_gap=least
            )
            seen.append((primal, primal - gaps[1] * abs(primal)))
        return gaps

    monkeypatch.setattr(fb, "duality_gaps", record)
    kwargs = dict(alpha=0.01, penalty=penalty, l1_ratio=0.5, max_iter=300)
    if loss == "hinge":
        est = TorchSGDClassifier(loss="hinge", **kwargs)
    else:
        extra = {"quantile": {"quantile": 0.3}, "epsilon_insensitive": {"epsilon": 0.1}}
        est = TorchSGDRegressor(loss=loss, **kwargs, **extra.get(loss, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=s)
    assert seen
    if penalty in ("l1", None):
        optimum = _weighted_lp(X, y, s, loss, 0.01 if penalty else 0.0)
    else:
        optimum = min(p for p, _ in seen)
    for primal, dual in seen:
        assert dual <= optimum + 1e-9 * abs(optimum), (primal, dual, optimum)
        assert primal >= optimum - 1e-9 * abs(optimum)  # the same objective
    # and tight where the iterate is accurate (the LP's optimum known)
    for primal, dual in seen:
        if penalty in ("l1", None) and primal - optimum <= 1e-6 * abs(optimum):
            assert primal - dual <= PROMISE * abs(primal), (primal, dual, optimum)


def test_kink_certificate_does_not_round_a_float32_gap_to_zero():
    # sweep seed 167 (absolute_error unpenalised, float32, noise 0: the
    # optimum 1e-4 of the targets' scale): summed in float32, the kink set's
    # dual value rounded up to the primal's and certified a fit 48% above
    # the optimum, silently; the certificate now sums in float64
    res = run_case(167)
    assert res.exception is None
    assert res.gap <= PROMISE or res.warned, (res.gap, res.messages)


def test_coordinate_descent_solves_duplicated_columns_with_a_weak_l2_part():
    # sweep seed 1284: squared_error + elasticnet (l1_ratio 0.15, alpha
    # 2.4e-4) with two equal columns. Their coefficients' difference moved at
    # the L2 part's curvature, a2 / G_jj ~ 2e-7 a sweep, and the polish (the
    # exact solution on the support and signs) had a wrong sign: 1000 sweeps
    # ended at a duality gap of 4e-2 of yy, warned at a true gap of 6e-8.
    # The active-set polish reaches ElasticNet's optimum in a few sweeps
    from sklearn.linear_model import ElasticNet

    X, y = make_regression(200, 8, noise=10.0, random_state=0)
    X = np.c_[X, X[:, 2]]  # a duplicated column
    alpha, l1_ratio = 2.4e-4, 0.15
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = TorchSGDRegressor(penalty="elasticnet", alpha=alpha, l1_ratio=l1_ratio)
        est.fit(X, y)
    assert est.n_iter_ <= 50
    ref = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=10**6)
    ref.fit(X, y)
    f_ours = estimator_objective(est, X, y, None)
    f_ref = objective(
        ref.coef_,
        ref.intercept_,
        X,
        y,
        penalty_name="elasticnet",
        alpha=alpha,
        l1_ratio=l1_ratio,
    )
    # the fit stops on a duality gap of 1e-12 of yy (GAP_TOL), far below
    # the objective's 1e-9 here; ElasticNet's own tol is 1e-14 of ||y||^2
    assert f_ours <= f_ref * (1 + 1e-9), (f_ours, f_ref)
    # the duplicates share their weight equally at the optimum (strictly
    # convex with the L2 part); 1e-6 relative: the gap's bound on the
    # coefficients, sqrt(2 gap / a2) of ||w||
    np.testing.assert_allclose(est.coef_[2], est.coef_[8], rtol=1e-6)


def test_smoothed_hinge_is_curved_at_the_ends_of_its_curved_piece():
    # the Moreau envelope of the hinge (mu = 1) has second derivative 1 / mu
    # on margins in [1 - mu, 1] and 0 outside; at the two ends both values
    # are in its generalised Hessian, and the curved one is taken. The zero
    # model puts every margin at 0 = 1 - mu: with the flat choice Newton's
    # first system had no curvature at all
    from sklearn_gd.model._losses import Hinge
    from sklearn_gd.model._smoothing import MoreauSmoothed

    mu = 1.0
    loss = MoreauSmoothed(Hinge(), mu)
    y = torch.ones(5, dtype=torch.float64)
    p = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5], dtype=torch.float64)
    _, first, second = loss.derivatives(y, p)
    expected = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64) / mu
    torch.testing.assert_close(second, expected)
    # the first derivative is continuous there: -1 below, 0 above
    slopes = torch.tensor([-1.0, -1.0, -0.5, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(first, slopes)


def test_hinge_with_extreme_class_weights_converges():
    # scikit-learn's check_class_weight_classifiers data (make_blobs, weights
    # 1000 and 1e-4): the default hinge fit ran 1000 Newton steps at mu =
    # 1e-9 and warned 17% above the optimum, each system singular but for a
    # ridge of 1e-12 (steps of 2^-36), after the zero model's margins gave
    # the first level no curvature. It now stops certified in a few steps
    from _sweep import case_from_arrays, gap_of
    from sklearn.datasets import make_blobs

    X, y = make_blobs(centers=2, random_state=0, cluster_std=20)
    s = np.where(y == 0, 1000.0, 1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = TorchSGDClassifier().fit(X, y, sample_weight=s)
    assert est.n_iter_ <= 50
    gap, _ = gap_of(case_from_arrays("classifier", {}, X, y, sample_weight=s), est)
    assert gap <= PROMISE
