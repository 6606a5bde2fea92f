"""Default fits reach the optimum of their objective, or say they did not.

Every case compares the default estimator (``optimizer="auto"``,
``tol="auto"``) with an exact solver of the same objective, on standardised
features and on the same features rescaled over four decades. The rule of
the package: a relative objective gap <= 1e-4, or a ConvergenceWarning;
never a silent stop above that.
"""

import warnings

import numpy as np
import pytest
from _objective import classifier_objective, estimator_objective
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LogisticRegression,
    QuantileRegressor,
    Ridge,
)
from sklearn.svm import SVC, SVR

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor

ALPHA = 1e-3
N, D = 200, 5


def _data(scaled, classify=False):
    rng = np.random.RandomState(0)
    X = rng.randn(N, D)
    X = (X - X.mean(0)) / X.std(0)
    y = X @ np.array([1.5, -2.0, 0.0, 0.7, 3.0]) + 0.5 + 0.5 * rng.randn(N)
    if classify:
        y = (y > np.median(y)).astype(int)
    if scaled:
        X = X * np.logspace(-2, 2, D)
    return X, y


def _scipy(objective, d):
    """Reference for smooth objectives: L-BFGS-B in float64 to its limit."""
    r = minimize(
        lambda v: objective(v[:d], v[d:]),
        np.zeros(d + 1),
        method="L-BFGS-B",
        options=dict(maxiter=50000, maxfun=10**6, ftol=1e-15, gtol=1e-12),
    )
    return r.x[:d], r.x[d:]


def _reference(loss, penalty, X, y, est):
    n = X.shape[0]
    C = 1.0 / (ALPHA * n)
    if loss == "squared_error":
        model = {
            "l2": Ridge(alpha=ALPHA * n),
            "l1": Lasso(alpha=ALPHA, tol=1e-14, max_iter=10**6),
            "elasticnet": ElasticNet(
                alpha=ALPHA, l1_ratio=0.15, tol=1e-14, max_iter=10**6
            ),
        }[penalty]
    elif loss == "quantile":
        model = QuantileRegressor(quantile=0.5, alpha=ALPHA, solver="highs")
    elif loss == "epsilon_insensitive":
        model = SVR(kernel="linear", C=C, epsilon=0.1, tol=1e-10, max_iter=10**7)
    elif loss == "log_loss":
        model = LogisticRegression(C=C, tol=1e-14, max_iter=10**5)
    elif loss == "hinge":  # its intercept is not penalised, as ours
        model = SVC(kernel="linear", C=C, tol=1e-10)
    else:  # huber, modified_huber: no sklearn solver of these objectives
        f = classifier_objective if loss == "modified_huber" else estimator_objective
        return _scipy(lambda w, b: f(_Params(est, w, b), X, y), X.shape[1])
    model.fit(X, y)
    return np.ravel(model.coef_), np.ravel(model.intercept_)


class _Params:
    """``est``'s settings with other parameters, for the objective."""

    def __init__(self, est, coef, intercept):
        self.__dict__.update(est.__dict__)
        self.coef_, self.intercept_ = coef, intercept


CASES = [
    ("squared_error", "l2"),
    ("squared_error", "l1"),
    ("squared_error", "elasticnet"),
    ("huber", "l2"),
    ("quantile", "l1"),
    ("epsilon_insensitive", "l2"),
    ("log_loss", "l2"),
    ("modified_huber", "l2"),
    ("hinge", "l2"),
]
CLASSIFICATION = ("log_loss", "modified_huber", "hinge")


def _check_optimum_or_warning(loss, penalty, scaled, **params):
    classify = loss in CLASSIFICATION
    X, y = _data(scaled, classify)
    cls = TorchSGDClassifier if classify else TorchSGDRegressor
    est = cls(loss=loss, penalty=penalty, alpha=ALPHA, random_state=0, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    f = classifier_objective if classify else estimator_objective
    ours = f(est, X, y)
    ref = f(_Params(est, *_reference(loss, penalty, X, y, est)), X, y)
    gap = (ours - min(ours, ref)) / abs(min(ours, ref))
    # the package's promise: within 1e-4 of the optimum, or a warning
    assert gap <= 1e-4 or warned, f"silent stop at gap {gap:.2e}"


SCALINGS = pytest.mark.parametrize(
    "scaled", [False, True], ids=["standardised", "col-scaled"]
)


@SCALINGS
@pytest.mark.parametrize("loss, penalty", CASES)
def test_default_fit_reaches_the_optimum_or_warns(loss, penalty, scaled):
    _check_optimum_or_warning(loss, penalty, scaled)


SMOOTH_CASES = [
    ("squared_error", "l2"),
    ("squared_error", "elasticnet"),
    ("huber", "l2"),
    ("log_loss", "l2"),
]
OPTIMIZER_CASES = [
    (optimizer, loss, penalty)
    for optimizer in ("sgd", "adam", "adamw", "adagrad", "lbfgs")
    for loss, penalty in SMOOTH_CASES
    if not (optimizer == "lbfgs" and penalty != "l2")  # L-BFGS refuses L1
]


@SCALINGS
@pytest.mark.parametrize("optimizer, loss, penalty", OPTIMIZER_CASES)
def test_every_optimizer_reaches_the_optimum_or_warns(optimizer, loss, penalty, scaled):
    # tol="auto" measures the same optimality after each epoch of gradient
    # descent and the adaptive methods (smooth losses): they converge on it or
    # warn, and reaching the schedule's floor is not convergence
    _check_optimum_or_warning(loss, penalty, scaled, optimizer=optimizer)


@pytest.mark.parametrize(
    "cls, loss",
    [(TorchSGDRegressor, "squared_error"), (TorchSGDClassifier, "log_loss")],
)
def test_default_passes_do_not_depend_on_feature_scale(cls, loss):
    # features over four decades cost at most twice the passes of
    # standardised ones (the preconditioner sees each column's scale)
    classify = cls is TorchSGDClassifier
    epochs = []
    for scaled in (False, True):
        X, y = _data(scaled, classify)
        est = cls(loss=loss, alpha=ALPHA, random_state=0).fit(X, y)
        epochs.append(int(np.max(est.n_iter_)))
    assert epochs[1] <= 2 * epochs[0], epochs


def test_non_smooth_default_is_certified_by_a_duality_gap():
    # epsilon_insensitive on standardised data: the fit stops on its
    # certificate (a relative duality gap <= 1e-4), not on max_iter
    X, y = _data(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = TorchSGDRegressor(
            loss="epsilon_insensitive", alpha=ALPHA, random_state=0
        ).fit(X, y)
    assert est.n_iter_ < est.max_iter


def _three_classes(scaled):
    X, y = _data(scaled)
    return X, np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("multi_class", ["ovr", "multinomial"])
@SCALINGS
def test_multiclass_log_loss_default_matches_logistic_regression(
    multi_class, fit_intercept, scaled
):
    # Newton's method on each one-vs-rest problem, or on the softmax's joint
    # Hessian (singular along the intercepts' common shift): both reach the
    # exact optimum, so the gap is rounding, far below the 1e-4 promise
    from sklearn.multiclass import OneVsRestClassifier

    X, y = _three_classes(scaled)
    est = TorchSGDClassifier(
        loss="log_loss",
        multi_class=multi_class,
        alpha=ALPHA,
        fit_intercept=fit_intercept,
        random_state=0,
    ).fit(X, y)
    lr = LogisticRegression(
        C=1.0 / (ALPHA * len(y)), fit_intercept=fit_intercept, tol=1e-14, max_iter=10**5
    )
    ref = (OneVsRestClassifier(lr) if multi_class == "ovr" else lr).fit(X, y)
    if multi_class == "ovr":
        coef = np.vstack([e.coef_ for e in ref.estimators_])
        icpt = np.concatenate([np.ravel(e.intercept_) for e in ref.estimators_])
    else:
        coef, icpt = ref.coef_, np.ravel(ref.intercept_)
    ours = classifier_objective(est, X, y)
    best = min(ours, classifier_objective(_Params(est, coef, icpt), X, y))
    assert (ours - best) / best <= 1e-8
    assert est.n_iter_ <= 30


def test_multinomial_newton_weights_are_repeated_rows():
    # integer sample weights are repeated rows in the joint Hessian and the
    # gradient alike: both fits are Newton's on the same objective, equal to
    # the solvers' tolerance on the optimality measure (tol="auto" 1e-5 gives
    # about 1e-10 in the parameters here)
    X, y = _three_classes(True)
    w = np.random.RandomState(1).randint(0, 4, len(y))
    params = dict(loss="log_loss", multi_class="multinomial", alpha=ALPHA)
    weighted = TorchSGDClassifier(**params).fit(X, y, sample_weight=w)
    repeated = TorchSGDClassifier(**params).fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-9
    )
