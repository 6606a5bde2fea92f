"""TorchSGDRegressorCV and TorchSGDClassifierCV: one fit, every alpha x fold.

The search must be the search GridSearchCV does with the base estimator (same
grid, same splits: same scores, same choice), and agree with scikit-learn's
own cross-validated linear models where the objectives map onto each other.
Everything here runs in float64 on standardised data unless said otherwise.
"""

from __future__ import annotations

import functools
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning, NotFittedError
from sklearn.linear_model import (
    ElasticNet,
    ElasticNetCV,
    Lasso,
    LassoCV,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)
from sklearn.metrics import make_scorer, r2_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    StratifiedKFold,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gd import (
    DivergenceError,
    TorchSGDClassifier,
    TorchSGDClassifierCV,
    TorchSGDRegressor,
    TorchSGDRegressorCV,
)
from sklearn_gd.model._losses import SquaredError
from sklearn_gd.model._penalties import Penalty
from sklearn_gd.objective._cv_oracles import ColumnDirectOracle, Layout
from sklearn_gd.search._cv_columns import ColumnTraining
from sklearn_gd.search._cv_scores import unit_r2, unit_r2_from_moments

# the searches below run configurations that do not all converge in max_iter;
# the tests that count them catch the warning themselves
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --------------------------------------------------------------------- data
@functools.cache
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@functools.cache
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@functools.cache
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def splits(n, n_splits=5, y=None):
    """Fixed splits, so that both sides of a comparison see the same folds."""
    if y is None:
        return list(KFold(n_splits, shuffle=True, random_state=0).split(np.zeros(n)))
    cv = StratifiedKFold(n_splits, shuffle=True, random_state=0)
    return list(cv.split(np.zeros(n), y))


def _as_searched(base):
    """``base`` training as the CV estimators' column loop does with its
    settings: where their optimizer="auto" is gradient descent (one of
    gradient descent's own settings), "sgd" at tol 1e-3; elsewhere "auto"
    fits every configuration as the base estimator's default does, and
    ``base`` is left as it is."""
    params = base.get_params()
    if params["optimizer"] == "auto" and base._planner().asks_for_sgd():
        base = base.set_params(optimizer="sgd")
        if params["tol"] == "auto":
            base = base.set_params(tol=1e-3)
    return base


def gridsearch(base, alphas, cv, X, y, **kwargs):
    grid = {"alpha": list(alphas)}
    return GridSearchCV(_as_searched(base), grid, cv=cv, **kwargs).fit(X, y)


def both_searches(base, alphas, cv, X, y, X_ours=None, scoring="neg_log_loss"):
    """Ours (no ConvergenceWarning allowed) and GridSearchCV over ``base``,
    on the same grid and splits (``X_ours``: the data ours is given, when
    another form of ``X``)."""
    params = {
        k: v for k, v in base.get_params().items() if k not in ("alpha", "warm_start")
    }
    cv_class = (
        TorchSGDClassifierCV
        if isinstance(base, TorchSGDClassifier)
        else (TorchSGDRegressorCV)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = cv_class(alphas=alphas, cv=cv, scoring=scoring, **params)
        ours.fit(X if X_ours is None else X_ours, y)
    ref = GridSearchCV(base, {"alpha": list(alphas)}, cv=cv, scoring=scoring)
    return ours, ref.fit(X, y)


def assert_same_search(ours, ref, rtol=1e-7, atol=0.0):
    """The same choice and, to the tolerance, the same mean test scores."""
    assert ours.alpha_ == ref.best_params_["alpha"]
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        rtol=rtol,
        atol=atol,
    )


ALPHAS = np.geomspace(1.0, 1e-4, 5)
# alphas whose default full-batch fits converge in few epochs (cheap searches)
QUICK = np.geomspace(1.0, 1e-2, 3)


# ---------------------------------------------------------- the components
def test_penalty_columns_equal_scalar_penalties():
    """A penalty with per-column strengths is, column by column, the scalar
    penalty of that column: values, gradients and proximal steps."""
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    alpha = torch.tensor([0.0, 0.1, 1.0, 2.5], dtype=torch.float64)
    ratio = torch.tensor([0.0, 0.5, 1.0, 0.15], dtype=torch.float64)
    step = torch.rand(6, 4, generator=gen, dtype=torch.float64)
    columns = Penalty(alpha, ratio)
    grad, prox = torch.zeros_like(W), W.clone()
    columns.add_gradient_(grad, W)
    columns.prox_(prox, step)
    values = columns.column_values(W)
    assert columns.has_prox
    for j in range(4):
        one = Penalty(float(alpha[j]), float(ratio[j]))
        g, p = torch.zeros(6, 1, dtype=torch.float64), W[:, j : j + 1].clone()
        one.add_gradient_(g, W[:, j : j + 1])
        one.prox_(p, step[:, j : j + 1])
        # the same arithmetic in the same order: equal to the last bit
        assert_array_equal(grad[:, j], g[:, 0])
        assert_array_equal(prox[:, j], p[:, 0])
        # two computations of a sum of 6 non-negative terms (a column sum
        # against a dot product, which BLAS may fuse and reorder): each
        # within (5 additions + 3 products and scalings) * u = 8.9e-16 of
        # the value, so 1.8e-15 apart at most; 1e-15 was tighter than that
        assert float(values[j]) == pytest.approx(float(one.total(W[:, j])), rel=4e-15)
    # the same operations on the same tensor: equal to the last bit
    assert float(columns.total(W)) == float(values.sum())


# ----------------------------------------------------- GridSearchCV's search
def test_regressor_equals_gridsearch_lbfgs():
    """Diabetes, 5 folds: the same choice as GridSearchCV over
    TorchSGDRegressor, and every configuration's test R^2 to rounding.

    Under ``optimizer="lbfgs"`` every configuration is the base estimator's
    own L-BFGS fit on its split's training rows, as GridSearchCV's: the same
    fits, whose held-out R^2 differ only by the summation order of the
    scores (measured 7e-16 relative), hence 1e-12.
    """
    X, y = diabetes()
    cv = splits(len(y))
    params = dict(optimizer="lbfgs", tol=1e-8, max_iter=300)
    ours = TorchSGDRegressorCV(alphas=ALPHAS, cv=cv, **params).fit(X, y)
    ref = gridsearch(TorchSGDRegressor(**params), ALPHAS, cv, X, y)
    assert ours.alpha_ == ref.best_params_["alpha"]
    assert ours.best_index_ == ref.best_index_
    for key in ["mean_test_score"] + [f"split{i}_test_score" for i in range(5)]:
        assert_allclose(ours.cv_results_[key], ref.cv_results_[key], rtol=1e-12)
    assert_array_equal(
        ours.cv_results_["rank_test_score"], ref.cv_results_["rank_test_score"]
    )
    # the refit is the base estimator's fit with the chosen alpha: the same
    # code on the same rows in the same order, so equal up to torch's choice
    # of kernel for the same shapes (1e-12: far below L-BFGS's tol=1e-8,
    # so a refit through any other path would show)
    assert_allclose(ours.coef_, ref.best_estimator_.coef_, rtol=1e-12)
    assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-12)


def test_cv_results_have_gridsearch_format():
    """GridSearchCV's keys and dtypes, and the scores of GridSearchCV over the
    base estimator's defaults."""
    X, y = diabetes()
    cv = splits(len(y))
    ours = TorchSGDRegressorCV(alphas=QUICK, cv=cv).fit(X, y)
    ref = GridSearchCV(
        TorchSGDRegressor(l1_ratio=0.15),
        {"alpha": list(QUICK), "l1_ratio": [0.15]},
        cv=cv,
    ).fit(X, y)
    res, expected = ours.cv_results_, ref.cv_results_
    timing = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}
    assert set(res) == set(expected) - timing
    assert res["params"] == expected["params"]
    for name in ("param_alpha", "param_l1_ratio"):
        assert isinstance(res[name], np.ma.MaskedArray)
        assert res[name].dtype == expected[name].dtype
        assert_array_equal(res[name].mask, expected[name].mask)
        assert_array_equal(res[name], expected[name])
    assert res["rank_test_score"].dtype == expected["rank_test_score"].dtype
    # ours are the closed-form optima; the base estimator's conjugate
    # gradients stop at a gradient 1e-5 of the first, which moves the
    # held-out R^2 by up to 1.4e-9 relative here (measured)
    assert_allclose(res["mean_test_score"], expected["mean_test_score"], rtol=1e-8)
    assert_allclose(res["std_test_score"], expected["std_test_score"], rtol=1e-6)
    assert ours.best_score_ == res["mean_test_score"][ours.best_index_]


def test_classifier_equals_gridsearch_lbfgs():
    """Breast cancer, log_loss, 5 stratified folds: the same choice as
    GridSearchCV over TorchSGDClassifier, the same accuracies and held-out
    log-losses.

    The log-loss on the held-out folds is continuous, so it would show any
    difference between the two searches' fits; under ``optimizer="lbfgs"``
    each configuration is the base estimator's own L-BFGS fit on its split,
    as GridSearchCV's, so the scores agree to rounding (measured: equal),
    hence 1e-12.
    """
    X, y = breast_cancer()
    cv = splits(len(y), y=y)
    params = dict(loss="log_loss", optimizer="lbfgs", tol=1e-10, max_iter=300)
    params["learning_rate"] = "constant"
    scoring = {"accuracy": "accuracy", "neg_log_loss": "neg_log_loss"}
    ref = gridsearch(
        TorchSGDClassifier(**params), ALPHAS, cv, X, y, scoring=scoring, refit=False
    )
    for name, rtol in [("accuracy", 1e-12), ("neg_log_loss", 1e-12)]:
        ours = TorchSGDClassifierCV(
            alphas=ALPHAS, cv=cv, scoring=None if name == "accuracy" else name, **params
        ).fit(X, y)
        theirs = ref.cv_results_[f"mean_test_{name}"]
        assert ours.alpha_ == ALPHAS[np.argmax(theirs)]
        assert_allclose(ours.cv_results_["mean_test_score"], theirs, rtol=rtol)
    refit = TorchSGDClassifier(alpha=ours.alpha_, **params).fit(X, y)
    assert_array_equal(ours.predict(X), refit.predict(X))


@pytest.mark.parametrize(
    "params",
    [
        dict(loss="log_loss", multi_class="multinomial"),
        dict(loss="hinge"),
        dict(loss="log_loss", penalty="elasticnet", l1_ratio=0.5),
    ],
    ids=["multinomial", "ovr-hinge", "elasticnet"],
)
def test_multiclass_equals_gridsearch(params):
    """Three classes: softmax units of three joint columns, and one-vs-rest
    units of three independent ones (the default full-batch GD: the steps of
    the base estimator, up to rounding)."""
    X, y = iris()
    cv = splits(len(y), y=y)
    alphas = np.geomspace(0.1, 1e-4, 4)
    ours = TorchSGDClassifierCV(alphas=alphas, cv=cv, **params).fit(X, y)
    ref = gridsearch(TorchSGDClassifier(**params), alphas, cv, X, y)
    assert ours.alpha_ == ref.best_params_["alpha"]
    assert_allclose(
        ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"]
    )


def test_multioutput_and_row_path_equal_gridsearch():
    """Two outputs, the huber loss (the row-reading path) and sample weights:
    the base estimator's search. Both run Newton's method to the precision of
    the objective (tol=None), ours per column: on one split the base
    estimator's stops 3e-12 relative above the optimum, ours 3e-15 (checked
    with scipy's BFGS), and with epsilon=50 most residuals sit on the flat
    linear part, so that gap moves a held-out R^2 by 1.8e-7; hence 1e-6."""
    X, y = diabetes()
    rng = np.random.RandomState(0)
    Y = np.c_[y, X @ rng.randn(X.shape[1])]
    sw = rng.randint(1, 4, size=len(y)).astype(float)
    cv = splits(len(y))
    alphas = QUICK
    params = dict(loss="huber", epsilon=50.0, tol=None, max_iter=100)
    ours = TorchSGDRegressorCV(alphas=alphas, cv=cv, **params)
    ours.fit(X, Y, sample_weight=sw)
    assert ours.coef_.shape == (2, X.shape[1])
    # our test scores are weighted (the base estimator's score, as LassoCV's
    # are); GridSearchCV weights its scorer only under metadata routing
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(r2_score).set_score_request(sample_weight=True)
        base = TorchSGDRegressor(**params).set_fit_request(sample_weight=True)
        ref = GridSearchCV(
            _as_searched(base), {"alpha": list(alphas)}, cv=cv, scoring=scorer
        )
        ref.fit(X, Y, sample_weight=sw)
    assert ours.alpha_ == ref.best_params_["alpha"]
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "params",
    [
        dict(learning_rate="invscaling", eta0=0.1),
        dict(learning_rate="optimal"),  # diverges at the smaller alphas
        dict(average=True),
        dict(momentum=0.9),
        dict(optimizer="adam", eta0=0.5),
        dict(optimizer="adagrad", eta0=5.0),
        dict(optimizer="adamw", eta0=0.5, penalty="elasticnet"),
    ],
    ids=["invscaling", "optimal", "average", "momentum", "adam", "adagrad", "adamw"],
)
def test_solvers_and_schedules_equal_gridsearch(params):
    """Each solver steps at rate 1 and each column's change is scaled by its
    rate: for every update that is its rate times a direction independent of
    the rate, the base estimator's steps, to rounding. Configurations that
    diverge do so on both sides (NaN scores)."""
    X, y = diabetes()
    cv = splits(len(y))
    params = dict(params, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)
        warnings.simplefilter("ignore", UserWarning)  # GridSearchCV's NaN
        ours = TorchSGDRegressorCV(alphas=QUICK, cv=cv, **params).fit(X, y)
        ref = gridsearch(TorchSGDRegressor(**params), QUICK, cv, X, y)
    # the same iterates, each step's sums over the fold's rows taken in
    # another order (a column of a batched product, against a fit's own):
    # a few ulps of the iterates' scale per epoch, not amplified by steps
    # that contract, so ~1e-13 after 200 epochs. The epoch at which a fit
    # stops (an epoch's loss above best - tol, n_iter_no_change times) is a
    # comparison that rounding flips only where a loss lies within ~1e-13
    # relative of that threshold; then the scores would differ by an
    # epoch's progress and this would fail, loudly, rather than drift
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        rtol=1e-10,
    )
    assert ours.alpha_ == ref.best_params_["alpha"]


@pytest.mark.parametrize("cv_class", [TorchSGDRegressorCV, TorchSGDClassifierCV])
def test_early_stopping_equals_gridsearch(cv_class):
    """early_stopping holds out, of each split's training rows, what the base
    estimator's fit on that split would (its own split, random_state=0), and
    each unit stops on, and reports the best of, its validation score."""
    regression = cv_class is TorchSGDRegressorCV
    X, y = diabetes() if regression else iris()
    base = TorchSGDRegressor if regression else TorchSGDClassifier
    cv = splits(len(y), y=None if regression else y)
    params = dict(early_stopping=True, random_state=0)
    ours = cv_class(alphas=QUICK, cv=cv, **params).fit(X, y)
    ref = gridsearch(base(**params), QUICK, cv, X, y)
    assert ours.alpha_ == ref.best_params_["alpha"]
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        rtol=1e-10,
    )


# ----------------------------------------- scikit-learn's own CV estimators
def _weighted_reference(penalty, alpha, fit_intercept):
    """scikit-learn's solver of our squared-loss objective with ``penalty``,
    for sample weights that sum to ``n`` (ours divide by their sum; Ridge's
    alpha is then ours times that sum)."""
    if penalty == "l2":
        return lambda n: Ridge(alpha * n, fit_intercept=fit_intercept)
    cls = Lasso if penalty == "l1" else functools.partial(ElasticNet, l1_ratio=0.5)
    return lambda n: cls(
        alpha=alpha, fit_intercept=fit_intercept, tol=1e-14, max_iter=10**6
    )


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet"])
def test_squared_defaults_solve_every_configuration(penalty, fit_intercept):
    """The squared loss under the defaults: every (split, alpha) configuration
    is its optimum, solved from the split's moments (closed form for L2,
    coordinate descent to a duality gap of 1e-12 yy with an L1 part), on raw
    diabetes with sample weights and a constant column. Each split's test R^2
    equals that of Ridge / Lasso / ElasticNet fitted on the split's training
    rows (coordinate descent at tol=1e-14) to 1e-10: the gap bounds the
    training objective's excess by 1e-12 of yy, which could move a held-out
    R^2 by ~1e-6 at most, but both sides are much closer to the optimum than
    their certificates say (measured: 5e-12, at an R^2 near 0)."""
    X, y = load_diabetes(return_X_y=True)
    X = np.c_[X * 50 + 3, np.ones(len(y))]
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    cv = splits(len(y))
    ours = TorchSGDRegressorCV(
        penalty=penalty,
        l1_ratio=0.5,
        alphas=6,
        cv=cv,
        fit_intercept=fit_intercept,
    ).fit(X, y, sample_weight=sw)
    for a, alpha in enumerate(ours.alphas_):
        make = _weighted_reference(penalty, alpha, fit_intercept)
        for i, (tr, te) in enumerate(cv):
            w = sw[tr] * len(tr) / sw[tr].sum()
            model = make(len(tr)).fit(X[tr], y[tr], sample_weight=w)
            expected = r2_score(y[te], model.predict(X[te]), sample_weight=sw[te])
            got = ours.cv_results_[f"split{i}_test_score"][a]
            assert got == pytest.approx(expected, rel=0, abs=1e-10), (alpha, i)
    # and the refit is the base estimator's default fit
    base = TorchSGDRegressor(
        penalty=penalty, l1_ratio=0.5, alpha=ours.alpha_, fit_intercept=fit_intercept
    ).fit(X, y, sample_weight=sw)
    assert_array_equal(ours.coef_, base.coef_)


@pytest.mark.parametrize("standardised", [False, True], ids=["raw", "standardised"])
def test_classifier_defaults_solve_every_configuration(standardised):
    """log_loss under the defaults: every configuration is solved by Newton's
    method per column, preconditioned and stopped as the base estimator's
    default fit is (its gradient 1e-5 of the first, in the metric of the
    features' means and variances), so on raw data too (breast cancer:
    feature scales from 1e-3 to 1e3) the held-out log-losses are GridSearchCV's
    over the defaults: the same Newton iterates on each configuration, to
    rounding (measured 3e-14 relative). With a tight tol both reach the
    optimum (measured 4e-7 apart at tol=1e-7)."""
    X, y = load_breast_cancer(return_X_y=True)
    if standardised:
        X = StandardScaler().fit_transform(X)
    cv = splits(len(y), y=y)
    alphas = np.geomspace(1.0, 1e-5, 6)
    for tol, rtol in [("auto", 1e-9), (1e-7, 1e-5)]:
        base = TorchSGDClassifier(loss="log_loss", tol=tol)
        ours, ref = both_searches(base, alphas, cv, X, y)
        assert_same_search(ours, ref, rtol=rtol)
    # and the refit is the base estimator's default fit
    base = TorchSGDClassifier(loss="log_loss", alpha=ours.alpha_, tol=1e-7).fit(X, y)
    assert_array_equal(ours.coef_, base.coef_)


def test_multinomial_defaults_solve_every_configuration():
    """The softmax under the defaults: Newton's method per unit of three
    joint columns on its (k q, k q) Hessian, as the base estimator's default
    fit on each configuration: raw wine (features from 0.1 to 1e3), the
    held-out log-losses of GridSearchCV over the defaults to rounding
    (measured 1.5e-14 relative). Rounding moves Newton's iterates by eps
    times the Hessian's condition number (raw wine: ~1e6 before the
    preconditioner's scaling, far less after), < 1e-10 relative; the stop
    (a gradient 1e-5 of the first) could flip only where the measure lies
    within rounding of it, and Newton's measure falls by orders of
    magnitude per step, so no CPU's summation order decides it."""
    X, y = load_wine(return_X_y=True)
    cv = splits(len(y), y=y)
    alphas = np.geomspace(0.1, 1e-4, 4)
    base = TorchSGDClassifier(loss="log_loss", multi_class="multinomial")
    ours, ref = both_searches(base, alphas, cv, X, y)
    assert_same_search(ours, ref, rtol=1e-9)


def test_sparse_log_loss_reaches_the_optimum():
    """Sparse rows (the base estimator's fits on each split) at tol=1e-7:
    held-out log-losses within 2e-6 of the optimum's (dense fits at
    tol=1e-9; the largest difference at the smallest alpha, where held-out
    losses move most)."""
    X, y = breast_cancer()
    cv = splits(len(y), y=y)
    alphas = np.geomspace(1.0, 1e-3, 4)
    ours, _ = both_searches(
        TorchSGDClassifier(loss="log_loss", tol=1e-7),
        alphas,
        cv,
        X,
        y,
        X_ours=sp.csr_matrix(X),
    )
    _, ref = both_searches(
        TorchSGDClassifier(loss="log_loss", tol=1e-9), alphas, cv, X, y
    )
    assert_same_search(ours, ref, rtol=2e-6)


REGRESSION_LOSSES = [
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
    "absolute_error",
    "quantile",
]
CLASSIFICATION_LOSSES = ["hinge", "log_loss", "modified_huber", "squared_hinge"]


def _family_params():
    # the non-smooth losses with an L1 part take a second or more a search
    # (every configuration a Smoothing fit): in the slow run
    cases = [("reg", loss) for loss in REGRESSION_LOSSES]
    cases += [("clf", loss) for loss in CLASSIFICATION_LOSSES]
    slow_losses = {"hinge", "epsilon_insensitive", "absolute_error", "quantile"}
    for kind, loss in cases:
        for penalty in ("l2", "l1", "elasticnet"):
            slow = loss in slow_losses and penalty != "l2"
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(kind, loss, penalty, marks=marks)


@pytest.mark.parametrize("kind, loss, penalty", list(_family_params()))
def test_defaults_search_as_gridsearch_over_the_default_base(kind, loss, penalty):
    """Every loss and penalty under the defaults: the search's choice and
    mean test scores are GridSearchCV's over the default base estimator
    (the model it refits), on the same grid and splits. The squared loss's
    configurations are solved from the folds' moments by the base
    estimator's own exact solvers, to the same duality gap; the others are
    the base estimator's fits on the splits. The scores agree to the
    stopping precision of the squared loss's duality gap (1e-12 relative):
    within 1e-6 (measured: at most 5e-16)."""
    regression = kind == "reg"
    X, y = diabetes() if regression else breast_cancer()
    cv = splits(len(y), 3, y=None if regression else y)
    cv_class = TorchSGDRegressorCV if regression else TorchSGDClassifierCV
    base = TorchSGDRegressor if regression else TorchSGDClassifier
    ours = cv_class(loss=loss, penalty=penalty, alphas=3, cv=cv).fit(X, y)
    ref = GridSearchCV(
        base(loss=loss, penalty=penalty), {"alpha": list(ours.alphas_)}, cv=cv
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref.fit(X, y)
    assert ours.alpha_ == ref.best_params_["alpha"]
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-6,
    )
    assert_allclose(ours.coef_, ref.best_estimator_.coef_, rtol=1e-12)


def test_huber_defaults_equal_gridsearch():
    """The Huber loss under the defaults (Newton on its generalised
    Hessian, the base estimator's fit on each split) against GridSearchCV
    over the base estimator's defaults, raw diabetes: the same fits, so the
    same scores to rounding at tol="auto" and at tol=1e-9."""
    X, y = load_diabetes(return_X_y=True)
    cv = splits(len(y))
    alphas = np.geomspace(1.0, 1e-4, 5)
    for tol, atol in [("auto", 1e-6), (1e-9, 1e-12)]:
        base = TorchSGDRegressor(loss="huber", epsilon=20.0, tol=tol)
        ours, ref = both_searches(base, alphas, cv, X, y, scoring=None)
        assert_same_search(ours, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("tol", [1e-8, None])
def test_squared_tol_is_the_relative_duality_gap(tol):
    """On the folds' moments a float ``tol`` is the relative duality gap
    (LassoCV's meaning) and None the data's precision: raw diabetes, the
    lasso's held-out R^2 of every configuration within 1e-10 of Lasso's
    (measured 2e-15: the polish lands on the exact solution)."""
    X, y = load_diabetes(return_X_y=True)
    cv = splits(len(y))
    ours = TorchSGDRegressorCV(penalty="l1", alphas=6, cv=cv, tol=tol).fit(X, y)
    for a, alpha in enumerate(ours.alphas_):
        lasso = Lasso(alpha=alpha, tol=1e-14, max_iter=10**6)
        expected = np.mean(
            [r2_score(y[te], lasso.fit(X[tr], y[tr]).predict(X[te])) for tr, te in cv]
        )
        got = ours.cv_results_["mean_test_score"][a]
        assert got == pytest.approx(expected, rel=0, abs=1e-10)


def test_sparse_squared_loss_reaches_the_optimum():
    """Sparse rows have no Gram path: the squared loss takes L-BFGS per
    column in the base estimator's metric, stopped at a gradient 1e-5 of
    the first; its held-out R^2 are within 1e-5 of the optimum's (measured
    2.4e-6 on raw diabetes)."""
    X, y = load_diabetes(return_X_y=True)
    cv = splits(len(y))
    alphas = np.geomspace(1.0, 1e-4, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = TorchSGDRegressorCV(alphas=alphas, cv=cv).fit(sp.csr_matrix(X), y)
    exact = TorchSGDRegressorCV(alphas=alphas, cv=cv).fit(X, y)
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        exact.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-5,
    )


def test_ridgecv_same_alpha_and_scores():
    """Squared loss + l2: Ridge's alpha is ours times n_train. The mapping
    needs one n_train for every split: 440 samples in 5 folds of 88."""
    X, y = diabetes()
    X, y = X[:440], y[:440]
    cv = splits(440)
    n_train = 352
    alphas = np.geomspace(1.0, 1e-4, 9)
    ours = TorchSGDRegressorCV(
        alphas=alphas, cv=cv, optimizer="lbfgs", tol=1e-10, max_iter=300
    ).fit(X, y)
    ridge = RidgeCV(alphas=alphas * n_train, cv=cv, scoring="r2").fit(X, y)
    # the same grid point (one product of floats apart): an ulp or two
    assert ours.alpha_ * n_train == pytest.approx(ridge.alpha_, rel=1e-12)
    assert ours.best_score_ == pytest.approx(ridge.best_score_, rel=1e-7)


def test_lassocv_same_grid_alpha_and_mse_path():
    """Squared loss + l1 is Lasso's objective (alpha unchanged): the same
    grid (LassoCV's alpha_max), the same choice by mean squared error, and
    the MSE path.

    LassoCV runs coordinate descent to a duality gap of 1e-10, ours proximal
    GD until the objective gains less than 1e-10 in five epochs. At the small
    alphas of the path the diabetes features' correlations (X'X/n has
    condition number ~ 500) slow GD down, and its last steps move the
    held-out MSE by about 1e-6 relative (measured 1.5e-6): hence 1e-5.
    """
    X, y = diabetes()
    cv = splits(len(y))
    ours = TorchSGDRegressorCV(
        penalty="l1",
        alphas=12,
        cv=cv,
        scoring="neg_mean_squared_error",
        tol=1e-10,
        max_iter=20000,
    ).fit(X, y)
    lasso = LassoCV(alphas=12, cv=cv, tol=1e-10, max_iter=100000).fit(X, y)
    # alpha_max = max |X'y| / n (442 terms: <= 442 u = 5e-14 relative
    # apart, in numpy and torch), then a geometric grid: 1e-10 is ample,
    # and the chosen alpha is one of the grid's points
    assert_allclose(ours.alphas_, lasso.alphas_, rtol=1e-10)
    assert ours.alpha_ == pytest.approx(lasso.alpha_, rel=1e-10)
    scores = np.c_[[ours.cv_results_[f"split{i}_test_score"] for i in range(5)]].T
    assert_allclose(-scores, lasso.mse_path_, rtol=1e-5)


def test_elasticnetcv_grids_per_l1_ratio():
    """A list of l1_ratio: one LassoCV grid per ratio (ElasticNetCV's), the
    candidates ordered l1_ratio then alpha, and the same choice."""
    X, y = diabetes()
    cv = splits(len(y))
    ratios = [0.3, 0.9]
    ours = TorchSGDRegressorCV(
        penalty="elasticnet",
        l1_ratio=ratios,
        alphas=6,
        cv=cv,
        scoring="neg_mean_squared_error",
        tol=1e-10,
        max_iter=20000,
    ).fit(X, y)
    enet = ElasticNetCV(l1_ratio=ratios, alphas=6, cv=cv, tol=1e-10).fit(X, y)
    assert ours.alphas_.shape == (2, 6)
    # alpha_max from 442-term sums (<= 5e-14 apart), then a geometric grid
    assert_allclose(ours.alphas_, enet.alphas_, rtol=1e-10)
    assert_allclose(ours.cv_results_["param_l1_ratio"], np.repeat(ratios, 6))
    assert ours.l1_ratio_ == enet.l1_ratio_
    assert ours.alpha_ == pytest.approx(enet.alpha_, rel=1e-10)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # its 1.10 transition
def test_logisticregressioncv_same_choice():
    """log_loss + l2 is LogisticRegression with C = 1 / (alpha n_train), n_train
    the same in every split: 560 samples in 5 stratified folds of 112 (the
    class counts 210/350 split evenly). Scored by log-loss, which has no ties."""
    X, y = breast_cancer()
    X, y = X[:560], y[:560]
    cv = splits(560, y=y)
    assert {len(tr) for tr, _ in cv} == {448}
    alphas = np.geomspace(1.0, 1e-4, 9)
    ours = TorchSGDClassifierCV(
        loss="log_loss",
        alphas=alphas,
        cv=cv,
        scoring="neg_log_loss",
        optimizer="lbfgs",
        tol=1e-10,
        max_iter=300,
    ).fit(X, y)
    Cs = 1.0 / (alphas * 448)
    logreg = LogisticRegressionCV(
        Cs=Cs, cv=cv, scoring="neg_log_loss", tol=1e-10, max_iter=10000
    ).fit(X, y)
    # the same grid point, a product and a division apart: a few ulps
    assert 1.0 / (ours.alpha_ * 448) == pytest.approx(logreg.C_[0], rel=1e-10)
    # LogisticRegressionCV keeps scores per fold and C (in Cs' order). At the
    # smallest alphas the problem is nearly separable and both solvers stop
    # a few 1e-9 above the optimum (ours once its objective gains less than
    # tol=1e-10 for five epochs): held-out log-losses differ by up to 3e-5
    # relative there
    theirs = logreg.scores_[1].mean(0)
    assert_allclose(ours.cv_results_["mean_test_score"], theirs, rtol=1e-4)


# ------------------------------------------------------------- the columns
@pytest.mark.parametrize(
    "params",
    [dict(optimizer="sgd"), dict(loss="huber", epsilon=20.0, optimizer="sgd")],
    ids=["moments", "rows"],
)
def test_memory_budget_trains_in_groups(params):
    """A budget that holds a few units: the same search, group by group
    (gradient descent on the folds' moments, and on the rows)."""
    X, y = diabetes()
    cv = splits(len(y))
    one = TorchSGDRegressorCV(alphas=QUICK, cv=cv, **params).fit(X, y)
    grouped = TorchSGDRegressorCV(alphas=QUICK, cv=cv, memory_budget=4000, **params)
    grouped.fit(X, y)
    training = ColumnTraining(
        SimpleNamespace(**grouped.get_params()), SimpleNamespace(optimizer="sgd"), 0
    )
    assert training.units_per_group(_FakeData(X, grouped._make_loss()), 15) < 15
    assert_allclose(
        grouped.cv_results_["mean_test_score"],
        one.cv_results_["mean_test_score"],
        rtol=1e-12,
    )


class _FakeData:
    def __init__(self, X, loss):
        self.shape = (*X.shape, 1)
        self.dtype = X.dtype
        self.device = torch.device("cpu")
        self.loss = loss


def test_sparse_and_tensor_inputs_give_the_same_search():
    X, y = diabetes()
    cv = splits(len(y))
    # the row path (huber), a fixed number of epochs: the same arithmetic
    params = dict(
        alphas=QUICK,
        cv=cv,
        loss="huber",
        epsilon=50.0,
        penalty="l1",
        tol=None,
        max_iter=50,
    )
    dense = TorchSGDRegressorCV(**params).fit(X, y)
    sparse = TorchSGDRegressorCV(**params).fit(sp.csr_matrix(X), y)
    tensor = TorchSGDRegressorCV(**params).fit(torch.as_tensor(X), torch.as_tensor(y))
    for other in (sparse, tensor):
        assert other.alpha_ == dense.alpha_
        assert_allclose(
            other.cv_results_["mean_test_score"],
            dense.cv_results_["mean_test_score"],
            rtol=1e-10,
        )


def test_minibatches_reach_the_full_batch_search():
    """Shuffled minibatches read every batch once for all columns; a column
    whose fold has no row in a batch does not step. They end near the
    full-batch optimum: every mean R^2 within 2e-3 (SGD's noise at the
    adaptive schedule's last rate), so that the choice is as good."""
    X, y = diabetes()
    cv = splits(len(y))
    full = TorchSGDRegressorCV(alphas=ALPHAS, cv=cv, optimizer="lbfgs", tol=1e-10)
    full.fit(X, y)
    mini = TorchSGDRegressorCV(
        alphas=ALPHAS, cv=cv, batch_size=32, random_state=0, tol=1e-6, max_iter=200
    ).fit(X, y)
    best = full.cv_results_["mean_test_score"]
    assert_allclose(mini.cv_results_["mean_test_score"], best, atol=2e-3)
    assert best[mini.best_index_] > best.max() - 2e-3


def test_l1_ratio_zero_gets_the_l2_grid():
    X, y = diabetes()
    search = TorchSGDRegressorCV(penalty="elasticnet", l1_ratio=[0.0, 0.5], alphas=4)
    search.fit(X, y)
    l2 = TorchSGDRegressorCV(alphas=4).fit(X, y)
    assert_allclose(search.alphas_[0], l2.alphas_)
    # standardised features, squared loss: from 1 down to 1e-6
    assert_allclose(l2.alphas_, np.geomspace(1.0, 1e-6, 4), rtol=1e-6)


def test_heldout_r2_from_moments_equals_rows():
    """For k-fold splits the pass that builds the folds' Gram matrices also
    gives their held-out moments; R^2 from them equals R^2 from the rows
    (float64: the moments are centred, no cancellation to speak of)."""
    X, y = diabetes()
    rng = np.random.RandomState(0)
    sw = rng.randint(1, 4, size=len(y)).astype(float)
    folds = splits(len(y))
    W = np.zeros((len(y), 5))
    for f, (train, _) in enumerate(folds):
        W[train, f] = sw[train]
    Y = torch.as_tensor(np.c_[y, 2 * y + 1.0])
    oracle = ColumnDirectOracle(
        torch.as_tensor(X),
        Y,
        torch.as_tensor(W),
        [len(tr) for tr, _ in folds],
        SquaredError(),
        piece_rows=100,
    )
    tests = [te for _, te in folds]
    moments = oracle.fold_moments(targets=True, tests=tests)
    layout = Layout(np.repeat(np.arange(5), 3), 2, "cpu")
    coef = torch.as_tensor(rng.randn(X.shape[1], 30))
    intercept = torch.as_tensor(rng.randn(30) * 50 + 150)
    rows = unit_r2(oracle, layout, coef, intercept, tests, Y, torch.as_tensor(sw))
    from_moments = unit_r2_from_moments(layout, coef, intercept, moments.test)
    # R^2 from the held-out moments against R^2 from the rows: sums of ~90
    # rows in another grouping, of residuals that do not cancel (random
    # coefficients, R^2 far from 1): ~90 u = 1e-14 relative; 1e-12 leaves
    # a factor of 100 for the moments' cancellation (y'y - 2 b'X'y + ...)
    assert_allclose(from_moments, rows, rtol=1e-12)
    # a split whose held-out rows are not the rows it leaves out: no moments
    shuffled = [(tr, te[:-1]) for tr, te in folds]
    assert (
        oracle.fold_moments(targets=True, tests=[te for _, te in shuffled]).test is None
    )


# ------------------------------------------------------ stopping and failing
def test_each_fit_stops_on_its_own():
    """Units stop on their own: a budget too small for some warns once,
    counting them; the converged ones are unaffected by the others."""
    X, y = diabetes()
    cv = splits(len(y))
    with pytest.warns(ConvergenceWarning, match=r"of 25 fits .* reached max_iter"):
        TorchSGDRegressorCV(alphas=ALPHAS, cv=cv, max_iter=20, optimizer="sgd").fit(
            X, y
        )
    # coordinate descent too: one sweep leaves the small alphas' lasso short
    with pytest.warns(ConvergenceWarning, match=r"of 25 fits .* reached max_iter"):
        TorchSGDRegressorCV(penalty="l1", alphas=ALPHAS, cv=cv, max_iter=1).fit(X, y)


def test_diverging_fits_score_nan():
    """A constant step too long for the larger alphas (whose penalty adds
    curvature) diverges there only: those fits score NaN, rank last, warn."""
    X, y = diabetes()
    cv = splits(len(y))
    lam = np.linalg.eigvalsh(np.cov(X.T, bias=True)).max()
    alphas = [10 * lam, 1e-3]
    search = TorchSGDRegressorCV(
        alphas=alphas,
        cv=cv,
        learning_rate="constant",
        eta0=2.5 / (lam + 1),
        tol=1e-6,
    )
    with pytest.warns(FitFailedWarning, match="5 of 10 fits"):
        search.fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"][0])
    assert list(search.cv_results_["rank_test_score"]) == [2, 1]
    assert search.alpha_ == 1e-3
    with pytest.raises(DivergenceError):
        TorchSGDRegressorCV(
            alphas=alphas[:1], cv=cv, learning_rate="constant", eta0=2.5 / (lam + 1)
        ).fit(X, y)


# ---------------------------------------------------------- the estimators
def test_pipeline_clone_pickle_and_refit_false():
    X, y = diabetes()
    model = make_pipeline(StandardScaler(), TorchSGDRegressorCV(alphas=5, cv=3))
    model.fit(X, y)
    assert model.score(X, y) > 0.45
    again = pickle.loads(pickle.dumps(model))
    assert_array_equal(again.predict(X), model.predict(X))
    search = clone(model[-1]).set_params(refit=False).fit(X, y)
    assert not hasattr(search, "coef_") and hasattr(search, "alpha_")
    with pytest.raises(NotFittedError, match="refit=False"):
        search.predict(X)
    assert not hasattr(search, "partial_fit")


def test_parameters_are_the_base_estimators():
    """Every base parameter but alpha and warm_start, with its default."""
    for cv_class, base in [
        (TorchSGDRegressorCV, TorchSGDRegressor),
        (TorchSGDClassifierCV, TorchSGDClassifier),
    ]:
        ours, theirs = cv_class().get_params(), base().get_params()
        del theirs["alpha"], theirs["warm_start"]
        assert {k: ours[k] for k in theirs} == theirs
        extra = set(ours) - set(theirs)
        assert extra == {"alphas", "eps", "cv", "scoring", "refit", "memory_budget"}


def test_groups_reach_the_splitter():
    X, y = diabetes()
    groups = np.arange(len(y)) % 4
    search = TorchSGDRegressorCV(alphas=3, cv=GroupKFold(4)).fit(X, y, groups=groups)
    assert search.n_splits_ == 4


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(l1_ratio=[0.1, 0.5]), "needs penalty='elasticnet'"),
        (dict(alphas=[1.0, -1.0]), "non-negative"),
        (dict(optimizer="lbfgs", penalty="l1"), "cannot handle"),
    ],
)
def test_invalid_settings_are_named(params, match):
    X, y = diabetes()
    with pytest.raises(ValueError, match=match):
        TorchSGDRegressorCV(**params).fit(X, y)


def test_every_class_must_train_in_every_split():
    X, y = iris()
    cv = [(np.arange(100), np.arange(100, 150))]  # class 2 never trains
    with pytest.raises(ValueError, match=r"miss classes \[2\]"):
        TorchSGDClassifierCV(alphas=3, cv=cv).fit(X, y)


@pytest.mark.gpu
def test_cuda_search_equals_cpu():
    X, y = diabetes()
    cv = splits(len(y))
    cpu = TorchSGDRegressorCV(alphas=ALPHAS, cv=cv, penalty="l1").fit(X, y)
    gpu = TorchSGDRegressorCV(alphas=ALPHAS, cv=cv, penalty="l1", device="cuda")
    gpu.fit(X, y)
    assert gpu.alpha_ == cpu.alpha_
    assert_allclose(
        gpu.cv_results_["mean_test_score"],
        cpu.cv_results_["mean_test_score"],
        rtol=1e-9,
    )
