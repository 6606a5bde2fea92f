"""Proof by reference: our solutions against independent solvers.

Each pairing fits ``TorchSGDRegressor`` and a reference solver (numpy, sklearn,
scipy) on the same data and scores both with the one objective of the test
suite (``tests/_objective.py``, numpy float64). Ours must be within 1e-4
relative of the reference objective (being better is fine). The table of
measured gaps is printed by ``benchmarks/reference_gaps.py`` from the same
``CASES``.

Every fit here is deterministic: full-batch gradient descent (the default) or
a fixed ``random_state``.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from _objective import LOSS_NAMES, PENALTY_NAMES, estimator_objective, objective
from scipy.optimize import minimize
from sklearn.datasets import load_diabetes, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    QuantileRegressor,
    Ridge,
    SGDRegressor,
)
from sklearn.metrics import r2_score
from sklearn.model_selection import ShuffleSplit
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVR

from sklearn_gd import TorchSGDRegressor
from sklearn_gd.solvers._optimizers import OPTIMIZERS

RTOL = 1e-4  # the objective gap the issue asks for


# --------------------------------------------------------------------- data
@functools.cache
def synthetic():
    """200 x 6, three informative features (so L1 zeros some), standardised;
    y scaled to unit variance with an offset, so the intercept matters."""
    X, y = make_regression(
        n_samples=200, n_features=6, n_informative=3, noise=5.0, random_state=0
    )
    X = StandardScaler().fit_transform(X)
    return X, (y - y.mean()) / y.std() + 0.5


@functools.cache
def diabetes():
    """sklearn's diabetes set (442 x 10, correlated features: ill-conditioned)."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X, (y - y.mean()) / y.std()


DATASETS = {"synthetic": synthetic, "diabetes": diabetes}


# --------------------------------------------------------------- references
def ref_lstsq(X, y, params):
    X1 = np.c_[X, np.ones(len(y))]
    sol = np.linalg.lstsq(X1, y, rcond=None)[0]
    return sol[:-1], sol[-1]


def ref_ridge(X, y, params):
    # Ridge minimises ||y - Xw - b||^2 + a ||w||^2 = 2n * [our objective] when
    # a = alpha * n (our loss carries 1/2 and 1/n, our l2 penalty 1/2).
    r = Ridge(alpha=params["alpha"] * len(y), solver="cholesky").fit(X, y)
    return r.coef_, r.intercept_


def ref_lasso(X, y, params):
    # Lasso: 1/(2n) ||y - Xw - b||^2 + alpha ||w||_1, our convention exactly;
    # ElasticNet: ... + alpha (l1_ratio ||w||_1 + (1 - l1_ratio)/2 ||w||^2).
    kw = dict(alpha=params["alpha"], tol=1e-12, max_iter=100_000)
    if params["penalty"] == "l1":
        r = Lasso(**kw).fit(X, y)
    else:
        r = ElasticNet(l1_ratio=params["l1_ratio"], **kw).fit(X, y)
    return r.coef_, r.intercept_


def ref_scipy(X, y, params):
    """L-BFGS-B on the objective of tests/_objective.py (huber + l2 only: its
    gradient is written out here)."""
    assert params["loss"] == "huber" and params["penalty"] == "l2"
    d, n = X.shape[1], len(y)
    alpha, eps = params["alpha"], params["epsilon"]

    def fun(theta):
        return objective(
            theta[:d], theta[d], X, y, loss="huber", alpha=alpha, epsilon=eps
        )

    def jac(theta):
        g = np.clip(X @ theta[:d] + theta[d] - y, -eps, eps) / n
        return np.r_[X.T @ g + alpha * theta[:d], g.sum()]

    res = minimize(
        fun,
        np.zeros(d + 1),
        jac=jac,
        method="L-BFGS-B",
        options=dict(ftol=1e-15, gtol=1e-12, maxiter=10_000),
    )
    return res.x[:d], res.x[d]


def ref_sgdregressor(X, y, params):
    # sklearn's own SGD, run long with a small constant rate and averaging:
    # per-sample SGD only gets to the optimum's neighbourhood (see its tolerance)
    r = SGDRegressor(
        loss="huber",
        alpha=params["alpha"],
        epsilon=params["epsilon"],
        learning_rate="constant",
        eta0=1e-3,
        average=True,
        max_iter=3000,
        tol=None,
        random_state=0,
    ).fit(X, y)
    return r.coef_, r.intercept_


def ref_quantile(X, y, params):
    # QuantileRegressor: (1/n) sum pinball_q + alpha ||w||_1, our quantile + l1.
    # absolute_error is |r| = 2 pinball_0.5, so our objective is twice
    # QuantileRegressor's with alpha / 2.
    if params["loss"] == "absolute_error":
        q, a = 0.5, params["alpha"] / 2
    else:
        q, a = params["quantile"], params["alpha"]
    r = QuantileRegressor(quantile=q, alpha=a, solver="highs").fit(X, y)
    return r.coef_, r.intercept_


def ref_linearsvr(X, y, params):
    # LinearSVR: 1/2 ||w||^2 + C sum_i L(r_i); dividing our objective by alpha
    # gives 1/2 ||w||^2 + 1/(alpha n) sum_i L(r_i), so C = 1 / (alpha n).
    # liblinear penalises the intercept (as a feature of value
    # intercept_scaling); a large scaling makes that penalty negligible, but
    # the dual solver of the L1 loss then stalls, so epsilon_insensitive is
    # compared without an intercept.
    loss = params["loss"]
    r = LinearSVR(
        loss=loss,
        epsilon=params["epsilon"],
        C=1.0 / (params["alpha"] * len(y)),
        fit_intercept=params["fit_intercept"],
        intercept_scaling=1e3,
        dual=loss == "epsilon_insensitive",
        tol=1e-12,
        max_iter=1_000_000,
    ).fit(X, y)
    return r.coef_, r.intercept_


# -------------------------------------------------------------------- cases
# Settings that converge for each kind of problem, measured (see the report
# of benchmarks/reference_gaps.py):
# smooth losses: the defaults (full-batch GD, step 1/L, adaptive) with a tiny
# tol; non-smooth losses (subgradients): the adaptive schedule divides the
# step by 5 whenever 50 epochs make no progress, a geometric decay under which
# the subgradient method converges on these sharp (piecewise-linear) problems.
SMOOTH = dict(tol=1e-12, max_iter=20_000)
NONSMOOTH = dict(tol=1e-9, n_iter_no_change=50, max_iter=20_000)


@dataclass(frozen=True)
class Case:
    id: str
    data: str
    params: dict = field(hash=False)
    reference: object = field(hash=False)
    rtol: float = RTOL  # allowed relative excess of our objective
    # ours is also not allowed to beat the reference by more than this (a
    # much better "ours" means the two solved different problems)
    better_rtol: float = 1e-6


def _cases():
    cases = []
    for data in DATASETS:
        cases += [
            Case(f"ridge-sgd-{data}", data, dict(alpha=0.01, **SMOOTH), ref_ridge),
            Case(
                f"ridge-lbfgs-{data}",
                data,
                dict(alpha=0.01, optimizer="lbfgs", **SMOOTH),
                ref_ridge,
            ),
            Case(f"ols-sgd-{data}", data, dict(penalty=None, **SMOOTH), ref_lstsq),
            # Adagrad at its default step (eta0="auto" is 0.1): per-coordinate
            # steps, and a per-coordinate L1 step (as Adam's)
            Case(
                f"ridge-adagrad-{data}",
                data,
                dict(alpha=0.01, optimizer="adagrad", **SMOOTH),
                ref_ridge,
            ),
            Case(
                f"lasso-adagrad-{data}",
                data,
                dict(penalty="l1", alpha=0.05, optimizer="adagrad", **SMOOTH),
                ref_lasso,
            ),
            Case(
                f"lasso-sgd-{data}",
                data,
                dict(penalty="l1", alpha=0.05, **SMOOTH),
                ref_lasso,
            ),
            Case(
                f"enet-sgd-{data}",
                data,
                dict(penalty="elasticnet", alpha=0.05, l1_ratio=0.5, **SMOOTH),
                ref_lasso,
            ),
            Case(
                f"huber-sgd-{data}",
                data,
                dict(loss="huber", alpha=0.01, epsilon=0.1, **SMOOTH),
                ref_scipy,
            ),
            Case(
                f"quantile-sgd-{data}",
                data,
                dict(loss="quantile", quantile=0.3, penalty="l1", alpha=0.01)
                | NONSMOOTH,
                ref_quantile,
            ),
            Case(
                f"absolute-sgd-{data}",
                data,
                dict(loss="absolute_error", penalty="l1", alpha=0.01) | NONSMOOTH,
                ref_quantile,
            ),
            Case(
                f"epsins-sgd-{data}",
                data,
                dict(
                    loss="epsilon_insensitive",
                    alpha=0.01,
                    epsilon=0.1,
                    fit_intercept=False,
                )
                | NONSMOOTH,
                ref_linearsvr,
            ),
            Case(
                f"sqepsins-sgd-{data}",
                data,
                dict(loss="squared_epsilon_insensitive", alpha=0.01, epsilon=0.1)
                | SMOOTH,
                ref_linearsvr,
            ),
        ]
    cases += [
        # Adam: proximal step scaled per coordinate; a larger eta0 than the
        # default 1e-3 keeps it to a few hundred epochs
        Case(
            "lasso-adam-synthetic",
            "synthetic",
            dict(penalty="l1", alpha=0.05, optimizer="adam", eta0=0.01, **SMOOTH),
            ref_lasso,
        ),
        Case(
            "sqepsins-lbfgs-diabetes",
            "diabetes",
            dict(
                loss="squared_epsilon_insensitive",
                alpha=0.01,
                epsilon=0.1,
                optimizer="lbfgs",
                **SMOOTH,
            ),
            ref_linearsvr,
        ),
        # sklearn's per-sample SGD stops short of the optimum: it may be worse
        # than ours by up to 1e-3 relative (measured 1.4e-5), never better
        Case(
            "huber-vs-SGDRegressor-diabetes",
            "diabetes",
            dict(loss="huber", alpha=0.01, epsilon=0.1, **SMOOTH),
            ref_sgdregressor,
            better_rtol=1e-3,
        ),
    ]
    return cases


CASES = _cases()
CASE_IDS = {c.id: c for c in CASES}


def _full_params(params):
    # the reference functions read every relevant setting from here
    defaults = dict(
        loss="squared_error",
        penalty="l2",
        alpha=1e-4,
        l1_ratio=0.15,
        epsilon=0.1,
        quantile=0.5,
        fit_intercept=True,
    )
    return defaults | params


@functools.cache
def fit_case(case_id):
    """(X, y, our estimator, reference coef, reference intercept, objectives)."""
    case = CASE_IDS[case_id]
    X, y = DATASETS[case.data]()
    params = _full_params(case.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref_coef, ref_icpt = case.reference(X, y, params)
    # each case checks the optimizer it names against its reference; one
    # that names none checks gradient descent (test_defaults.py checks the
    # default optimizer="auto")
    est = TorchSGDRegressor(**{"optimizer": "sgd", **case.params}).fit(X, y)
    f_ours = estimator_objective(est, X, y)
    f_ref = objective(
        ref_coef,
        ref_icpt,
        X,
        y,
        loss=params["loss"],
        penalty_name=params["penalty"],
        alpha=params["alpha"],
        l1_ratio=params["l1_ratio"],
        epsilon=params["epsilon"],
        quantile=params["quantile"],
    )
    return X, y, est, np.asarray(ref_coef), float(np.ravel(ref_icpt)[0]), f_ours, f_ref


def relative_gap(case_id):
    *_, f_ours, f_ref = fit_case(case_id)
    return (f_ours - f_ref) / abs(f_ref)


# -------------------------------------------------------- objective parity
@pytest.mark.parametrize("case_id", list(CASE_IDS))
def test_objective_matches_reference(case_id):
    case = CASE_IDS[case_id]
    gap = relative_gap(case_id)
    assert gap <= case.rtol, f"ours worse than the reference by {gap:.2e} (relative)"
    assert gap >= -case.better_rtol, f"ours better by {-gap:.2e}: a different problem?"


# Predictions. For the squared loss with any convex penalty the objective
# grows at least quadratically away from the optimum theta* along the data:
#     F(theta) - F* >= 1/2 mean_i (x~_i . (theta - theta*))^2,
# so the RMS prediction difference is at most sqrt(2 (F - F*)); the 1e-6
# allows for the reference's own distance from F* (its tol is 1e-12).
@pytest.mark.parametrize(
    "case_id",
    [c.id for c in CASES if c.params.get("loss", "squared_error") == "squared_error"],
)
def test_squared_error_predictions_within_objective_bound(case_id):
    X, y, est, coef, icpt, f_ours, f_ref = fit_case(case_id)
    rms = np.sqrt(np.mean((est.predict(X) - (X @ coef + icpt)) ** 2))
    assert rms <= np.sqrt(2 * max(f_ours - f_ref, 0.0)) + 1e-6


# For an l2 penalty without intercept the objective is alpha-strongly convex,
#     F(w) - F* >= alpha/2 ||w - w*||^2,
# whatever the loss, so ||w - w*|| <= sqrt(2 (F - F*) / alpha), and each
# prediction moves by at most ||x_i|| times that. This bound is tight for the
# piecewise-linear epsilon_insensitive loss (measured: the coefficient
# distance reaches 95-100% of it), which is why its predictions differ by a
# few 1e-2 at an objective gap of a few 1e-6.
@pytest.mark.parametrize("case_id", ["epsins-sgd-synthetic", "epsins-sgd-diabetes"])
def test_strongly_convex_coef_within_objective_bound(case_id):
    X, y, est, coef, icpt, f_ours, f_ref = fit_case(case_id)
    alpha = est.alpha
    # 1e-6 on the gap: the reference's own (liblinear, tol 1e-12) sub-optimality
    bound = np.sqrt(2 * (max(f_ours - f_ref, 0.0) + 1e-6 * abs(f_ref)) / alpha)
    assert np.linalg.norm(est.coef_ - coef) <= bound
    row_norms = np.linalg.norm(X, axis=1)
    assert np.all(np.abs(est.predict(X) - X @ coef) <= row_norms * bound + 1e-12)


# Smooth losses with an l2 penalty (huber, squared_epsilon_insensitive):
# the objective is strongly convex in w and both solvers reach gaps of 1e-8
# or less, so predictions agree to 1e-3 (measured at most 5e-4 on the
# ill-conditioned diabetes data, 1e-6 on the synthetic set).
@pytest.mark.parametrize(
    "case_id",
    [
        c.id
        for c in CASES
        if c.params.get("loss") in ("huber", "squared_epsilon_insensitive")
        and "SGDRegressor" not in c.id
    ],
)
def test_smooth_loss_predictions_agree(case_id):
    X, y, est, coef, icpt, *_ = fit_case(case_id)
    np.testing.assert_allclose(est.predict(X), X @ coef + icpt, rtol=0, atol=1e-3)


def test_huber_predictions_near_sgdregressor():
    # sklearn's SGD ends at a relative objective gap of ~1e-5 from ours: its
    # predictions differ from ours by about 1e-2 (measured 9e-3), on targets of
    # unit variance
    X, y, est, coef, icpt, *_ = fit_case("huber-vs-SGDRegressor-diabetes")
    np.testing.assert_allclose(est.predict(X), X @ coef + icpt, rtol=0, atol=5e-2)


# Quantile losses (piecewise-linear loss and penalty: a linear program). The
# optimum is sharp, so the objective is first-order flat nowhere, but its
# slope along some directions is small: at a gap of 1e-5 the predictions
# differ by up to about 2e-2 (measured 3e-3 to 2e-2), on unit-variance targets.
@pytest.mark.parametrize(
    "case_id", [c.id for c in CASES if c.reference is ref_quantile]
)
def test_quantile_predictions_agree(case_id):
    X, y, est, coef, icpt, *_ = fit_case(case_id)
    np.testing.assert_allclose(est.predict(X), X @ coef + icpt, rtol=0, atol=5e-2)


# The proximal L1 step gives exact zeros; they must be where the reference
# (coordinate descent, or the LP solver) has its zeros.
@pytest.mark.parametrize(
    "case_id",
    [c.id for c in CASES if c.params.get("penalty") in ("l1", "elasticnet")],
)
def test_l1_zero_pattern_matches_reference(case_id):
    X, y, est, coef, *_ = fit_case(case_id)
    ref_zeros = np.abs(coef) < 1e-10  # highs returns exact or 1e-16 zeros
    if case_id.startswith(("lasso", "enet")):
        assert ref_zeros.any(), "alpha too small to test sparsity"
    if CASE_IDS[case_id].reference is ref_quantile:
        # Subgradient steps on the piecewise-linear loss: the adaptive rate
        # ends near 1e-6, where a coefficient the last steps knocked off zero
        # stays within lr * |gradient| of it, as the prox threshold lr * alpha
        # is too small to pull it back (measured: 1.8e-9 and 1.1e-9 on
        # diabetes). Our zeros are reference zeros; reference zeros are ours
        # up to 1e-6.
        assert not np.any((est.coef_ == 0) & ~ref_zeros)
        assert np.all(np.abs(est.coef_[ref_zeros]) <= 1e-6)
    else:
        np.testing.assert_array_equal(est.coef_ == 0, ref_zeros)


def test_ridge_conversion_is_stationary():
    # the gradient of our objective vanishes at Ridge's solution with
    # alpha_ridge = alpha * n: the conversion is right, not just close
    X, y = synthetic()
    alpha, n = 0.01, len(y)
    w, b = ref_ridge(X, y, dict(alpha=alpha))
    r = X @ w + b - y
    grad = np.r_[X.T @ r / n + alpha * w, r.mean()]
    np.testing.assert_allclose(grad, 0, atol=1e-12)


# ---------------------------------------------- L-BFGS and momentum + L1
# (shared with benchmarks/reference_gaps.py, which reports their gaps)
LBFGS_CONSTANT = dict(
    optimizer="lbfgs", learning_rate="constant", tol=None, max_iter=300
)
LBFGS_CASES = [
    ("huber", dict(penalty=None)),
    ("squared_epsilon_insensitive", dict(alpha=0.001, epsilon=0.5)),
]
MOMENTUM_L1 = dict(
    momentum=0.9,
    learning_rate="constant",
    eta0=0.05,
    tol=None,
    max_iter=300,
    penalty="l1",
    alpha=0.05,
)


@pytest.mark.parametrize("loss, params", LBFGS_CASES)
def test_lbfgs_line_search_reaches_optimum(loss, params):
    X, y = synthetic()
    ours = TorchSGDRegressor(loss=loss, **LBFGS_CONSTANT, **params).fit(X, y)
    # full-batch GD from the same objective as the reference
    gd = TorchSGDRegressor(loss=loss, **SMOOTH | params).fit(X, y)
    f_gd = estimator_objective(gd, X, y)
    assert estimator_objective(ours, X, y) <= f_gd * (1 + RTOL)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_with_l1_matches_lasso(nesterov):
    X, y = diabetes()
    est = TorchSGDRegressor(nesterov=nesterov, **MOMENTUM_L1).fit(X, y)
    params = dict(penalty="l1", alpha=0.05)
    coef, icpt = ref_lasso(X, y, _full_params(params))
    f_ref = objective(coef, icpt, X, y, penalty_name="l1", alpha=0.05)
    assert estimator_objective(est, X, y) <= f_ref * (1 + RTOL)


# ------------------------------------------------ every combination, fast
@functools.cache
def sparse_problem():
    rng = np.random.RandomState(1)
    X = rng.randn(120, 8)
    w = np.r_[1.5, -2.0, 1.0, np.zeros(5)]
    return X, X @ w + 0.3 + 0.1 * rng.randn(120)


@pytest.mark.parametrize(
    "loss, penalty, optimizer",
    list(itertools.product(LOSS_NAMES, PENALTY_NAMES, sorted(OPTIMIZERS))),
)
def test_every_combination(loss, penalty, optimizer):
    X, y = sparse_problem()
    est = TorchSGDRegressor(
        loss=loss,
        penalty=penalty,
        optimizer=optimizer,
        alpha=0.2,
        batch_size=32,
        max_iter=15,
        tol=None,
        random_state=0,
    )
    if not OPTIMIZERS[optimizer].supports_prox and penalty in ("l1", "elasticnet"):
        with pytest.raises(ValueError, match=repr(penalty)):
            est.fit(X, y)
        return
    est.fit(X, y)
    assert np.all(np.isfinite(est.coef_)) and np.all(np.isfinite(est.intercept_))
    f_zero = objective(
        np.zeros(X.shape[1]), 0.0, X, y, loss=loss, penalty_name=penalty, alpha=0.2
    )
    assert estimator_objective(est, X, y) <= f_zero
    if penalty == "l1" and optimizer == "sgd":
        # five of the eight true coefficients are zero; alpha=0.2 zeros them
        # within 15 epochs of minibatch SGD for every loss (0.05 does not for
        # the non-smooth losses, whose minibatch subgradients stay noisy)
        assert np.any(est.coef_ == 0)


# ------------------------------------------------------------ averaging
def test_average_after_burn_in_reaches_ridge():
    # Constant-step per-sample SGD ends in a noise ball around the optimum;
    # averaging the iterates after a burn-in of 5 epochs (average=1000 updates)
    # cancels the noise. Averaging from the first update keeps the transient
    # from zero in the mean, so over 20 epochs it does worse (measured gaps:
    # last iterate 6e-3, average=True 3e-2, average=1000 4e-5).
    X, y = synthetic()
    alpha = 0.01
    coef, icpt = ref_ridge(X, y, dict(alpha=alpha))
    f_ref = objective(coef, icpt, X, y, alpha=alpha)
    common = dict(
        alpha=alpha,
        batch_size=1,
        learning_rate="constant",
        eta0=0.01,
        max_iter=20,
        tol=None,
        random_state=0,
    )
    plain = TorchSGDRegressor(**common).fit(X, y)
    late = TorchSGDRegressor(average=1000, **common).fit(X, y)
    gap_plain = estimator_objective(plain, X, y) / f_ref - 1
    gap_late = estimator_objective(late, X, y) / f_ref - 1
    assert plain.t_ == late.t_ == 20 * 200 + 1
    assert gap_late < 1e-3
    assert gap_late < gap_plain / 10


@pytest.mark.parametrize("average", [True, 1, 7, 25])
def test_average_is_mean_of_iterates_from_update_n(average):
    # Full batch: one update per epoch, so the iterates are the path of the
    # same run without averaging; average=N averages updates N, N+1, ...
    X, y = synthetic()
    common = dict(
        alpha=0.01, learning_rate="constant", eta0=0.05, max_iter=30, tol=None
    )
    path = TorchSGDRegressor(record_history=True, **common).fit(X, y)
    avg = TorchSGDRegressor(average=average, **common).fit(X, y)
    n = 1 if average is True else average
    np.testing.assert_allclose(
        avg.coef_, path.coef_path_[n - 1 :].mean(0), rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(
        avg.intercept_, path.intercept_path_[n - 1 :].mean(0), rtol=1e-12, atol=1e-14
    )


def test_average_starting_after_the_fit_is_the_last_iterate():
    X, y = synthetic()
    common = dict(alpha=0.01, max_iter=10, tol=None, optimizer="sgd")
    plain = TorchSGDRegressor(**common).fit(X, y)
    never = TorchSGDRegressor(average=1000, **common).fit(X, y)
    np.testing.assert_array_equal(plain.coef_, never.coef_)


# ------------------------------------------------------- early stopping
def test_early_stopping_restores_best_validation_parameters():
    # more features than the training rows can pin down, no penalty: the
    # validation R^2 peaks and then falls as GD fits the noise
    rng = np.random.RandomState(0)
    X = rng.randn(60, 40)
    w = np.zeros(40)
    w[:3] = [1.0, -1.0, 0.5]
    y = X @ w + 0.5 * rng.randn(60)
    est = TorchSGDRegressor(
        penalty=None,
        early_stopping=True,
        validation_fraction=0.25,
        learning_rate="constant",
        tol=1e-4,
        max_iter=500,
        random_state=0,
    ).fit(X, y)
    scores = est.validation_scores_
    assert isinstance(scores, list) and len(scores) == est.n_iter_ < 500
    assert est.best_validation_score_ == max(scores)
    assert np.argmax(scores) < len(scores) - 1  # the last epoch was not the best
    # the same split as the estimator's (ShuffleSplit with its random_state)
    _, val = next(ShuffleSplit(test_size=0.25, random_state=0).split(X))
    assert r2_score(y[val], est.predict(X[val])) == pytest.approx(
        est.best_validation_score_, rel=1e-10
    )


# -------------------------------------------------------- convergence
def test_convergence_warning_when_max_iter_reached():
    X, y = synthetic()
    # the squared loss's Newton step is exact: the Huber loss's takes a few
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        TorchSGDRegressor(loss="huber", epsilon=0.1, max_iter=1, tol=1e-3).fit(X, y)


def test_no_convergence_warning_without_tol():
    X, y = synthetic()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        TorchSGDRegressor(max_iter=3, tol=None).fit(X, y)
