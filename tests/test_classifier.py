"""TorchSGDClassifier: sklearn's checks, parity with exact solvers, labels,
probabilities, partial_fit, class weights, and integration.

Objective parity: every solution is scored by one numpy float64 objective
(:func:`objective` below), ``mean_i s_i L(y_i, p_i) / mean(s) + alpha R(W)``,
summed over the one-vs-rest problems. LogisticRegression minimises
``C sum_i L + R``, the same problem for ``C = 1 / (alpha n)``; LinearSVC with
``loss="hinge"`` likewise (without intercept, which liblinear would
penalise).
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import expit, logsumexp, softmax
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils import compute_class_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_gd import TorchSGDClassifier
from sklearn_gd.gradcheck import check_loss_gradients
from sklearn_gd.model._losses import CLASSIFICATION_LOSSES, MULTINOMIAL_LOSSES

# ------------------------------------------------------------ common checks
# Minibatch configurations get max_iter=50, as in test_common.py: a
# Python-level step per batch makes 1000 epochs slow, and no check needs them.
CHECKED = [
    TorchSGDClassifier(),
    TorchSGDClassifier(
        loss="log_loss",
        multi_class="multinomial",
        penalty="l1",
        batch_size=8,
        random_state=0,
        max_iter=50,
    ),
    TorchSGDClassifier(
        loss="modified_huber",
        penalty="elasticnet",
        batch_size=16,
        random_state=0,
        average=True,
        max_iter=50,
    ),
]


def expected_failed_checks(estimator):
    if estimator.batch_size is None:
        return {}
    # sklearn lists these for its own SGDClassifier
    # (instance_generator.py, PER_ESTIMATOR_XFAIL_CHECKS): with minibatches,
    # repeating a row changes which rows share a batch.
    reason = "sample_weight is not equivalent to removing/repeating samples."
    return {
        "check_sample_weight_equivalence_on_dense_data": reason,
        "check_sample_weight_equivalence_on_sparse_data": reason,
    }


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_classifier(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- helpers
def objective(clf, X, y, *, sample_weight=None):
    """The classifier's objective in numpy float64 (sum over OvR problems)."""
    X = np.asarray(X, dtype=np.float64)
    W = np.atleast_2d(np.asarray(clf.coef_, dtype=np.float64))
    b = np.asarray(clf.intercept_, dtype=np.float64)
    P = X @ W.T + b
    s = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
    idx = np.searchsorted(clf.classes_, y)
    reg = 0.5 * clf.alpha * (W * W).sum()
    if clf.multi_class == "multinomial" and len(clf.classes_) > 2:
        rows = logsumexp(P, axis=1) - P[np.arange(len(y)), idx]
        return float(s @ rows / s.sum() + reg)
    if W.shape[0] == 1:
        Y = (2 * idx - 1)[:, None]
    else:
        Y = np.where(idx[:, None] == np.arange(W.shape[0]), 1, -1)
    z = Y * P
    L = {
        "log_loss": lambda z: np.logaddexp(0, -z),
        "hinge": lambda z: np.maximum(0, 1 - z),
        "squared_hinge": lambda z: np.maximum(0, 1 - z) ** 2,
    }[clf.loss](z)
    return float((s @ L).sum() / s.sum() + reg)


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(
        200, 6, n_informative=4, n_redundant=0, random_state=0, flip_y=0.1
    )
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def three_class():
    X, y = make_classification(
        240,
        6,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        random_state=1,
        flip_y=0.1,
    )
    return StandardScaler().fit_transform(X), y


ALPHA = 1e-2


# ------------------------------------------------------------ parity
# Tolerance: the issue asks for 1e-4 relative in the objective. Full-batch
# GD with tol=1e-8 reaches about 1e-7 on these problems; L-BFGS reaches
# rounding level. The exact solvers are run to tol=1e-12, so their objective
# is the minimum to well below the tolerance; ours may not undercut it by
# more than rounding.
REL_TOL = 1e-4


def _gap(ours, ref):
    return (ours - ref) / abs(ref)


@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_log_loss_binary_matches_logistic_regression(binary, optimizer):
    X, y = binary
    ref = LogisticRegression(C=1 / (ALPHA * len(y)), tol=1e-12, max_iter=10_000)
    ref.fit(X, y)
    ref.alpha, ref.loss, ref.multi_class = ALPHA, "log_loss", "ovr"
    clf = TorchSGDClassifier(
        loss="log_loss", alpha=ALPHA, tol=1e-8, optimizer=optimizer
    ).fit(X, y)
    gap = _gap(objective(clf, X, y), objective(ref, X, y))
    assert -1e-10 <= gap <= REL_TOL
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_multinomial_matches_logistic_regression(three_class, optimizer):
    X, y = three_class
    # sklearn's LogisticRegression is multinomial for more than two classes
    ref = LogisticRegression(C=1 / (ALPHA * len(y)), tol=1e-12, max_iter=10_000)
    ref.fit(X, y)
    ref.alpha, ref.loss, ref.multi_class = ALPHA, "log_loss", "multinomial"
    clf = TorchSGDClassifier(
        loss="log_loss",
        multi_class="multinomial",
        alpha=ALPHA,
        tol=1e-8,
        optimizer=optimizer,
    ).fit(X, y)
    gap = _gap(objective(clf, X, y), objective(ref, X, y))
    assert -1e-10 <= gap <= REL_TOL
    # loss_curve_ is the whole objective (not divided by the classes)
    assert clf.loss_curve_[-1] == pytest.approx(objective(clf, X, y), rel=1e-3)


def test_weighted_log_loss_matches_logistic_regression(binary):
    # LogisticRegression scales its penalty by the sum of sample weights
    # (class weights included), as our objective does
    X, y = binary
    sw = np.random.RandomState(0).uniform(0.5, 2, len(y))
    cw = {0: 1.0, 1: 3.0}
    s = sw * np.where(y == 1, 3.0, 1.0)
    ref = LogisticRegression(
        C=1 / (ALPHA * s.sum()), tol=1e-12, max_iter=10_000, class_weight=cw
    ).fit(X, y, sample_weight=sw)
    ref.alpha, ref.loss, ref.multi_class = ALPHA, "log_loss", "ovr"
    clf = TorchSGDClassifier(
        loss="log_loss", alpha=ALPHA, tol=1e-10, optimizer="lbfgs", class_weight=cw
    ).fit(X, y, sample_weight=sw)
    gap = _gap(
        objective(clf, X, y, sample_weight=s), objective(ref, X, y, sample_weight=s)
    )
    assert -1e-10 <= gap <= 1e-8


def test_hinge_matches_linear_svc(binary):
    X, y = binary
    ref = LinearSVC(
        loss="hinge",
        C=1 / (ALPHA * len(y)),
        fit_intercept=False,
        tol=1e-10,
        max_iter=100_000,
    ).fit(X, y)
    ref.alpha, ref.loss, ref.multi_class = ALPHA, "hinge", "ovr"
    clf = TorchSGDClassifier(
        loss="hinge", alpha=ALPHA, fit_intercept=False, tol=1e-8
    ).fit(X, y)
    # hinge is not smooth: subgradient steps with the adaptive schedule reach
    # a few 1e-6 here; liblinear's dual solution is the reference minimum
    gap = _gap(objective(clf, X, y), objective(ref, X, y))
    assert -1e-8 <= gap <= REL_TOL
    np.testing.assert_allclose(clf.coef_, ref.coef_, atol=2e-2)


def test_ovr_objective_not_worse_than_sgdclassifier():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    theirs = SGDClassifier(alpha=ALPHA, max_iter=1000, tol=1e-6, random_state=0)
    theirs.fit(X, y)
    theirs.multi_class = "ovr"
    ours = TorchSGDClassifier(alpha=ALPHA, tol=1e-6).fit(X, y)
    assert objective(ours, X, y) <= objective(theirs, X, y) * (1 + 1e-3)
    assert ours.score(X, y) >= theirs.score(X, y) - 0.05


def test_ovr_columns_are_independent_binary_problems(three_class):
    X, y = three_class
    kw = dict(loss="log_loss", alpha=ALPHA, optimizer="lbfgs", tol=1e-10)
    ovr = TorchSGDClassifier(**kw).fit(X, y)
    for j in range(3):
        one = TorchSGDClassifier(**kw).fit(X, (y == j).astype(int))
        np.testing.assert_allclose(ovr.coef_[j], one.coef_[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ovr.intercept_[j], one.intercept_[0], atol=1e-6)


def test_loss_curve_is_objective_at_epoch_start(three_class):
    X, y = three_class
    for multi_class in ("ovr", "multinomial"):
        clf = TorchSGDClassifier(
            loss="log_loss",
            optimizer="sgd",  # a GD epoch's objective is at its start
            multi_class=multi_class,
            alpha=ALPHA,
            record_history=True,
            max_iter=5,
            tol=None,
        ).fit(X, y)
        # full batch: epoch e's value is the objective at the end of epoch e-1
        for e in range(1, 5):
            clf.coef_, clf.intercept_ = (
                clf.coef_path_[e - 1],
                clf.intercept_path_[e - 1],
            )
            value = objective(clf, X, y)
            if multi_class == "ovr":
                value /= 3  # the mean over the binary problems
            assert clf.loss_curve_[e] == pytest.approx(value, rel=1e-10)


# ------------------------------------------------------------ losses
@pytest.mark.parametrize("name", sorted(CLASSIFICATION_LOSSES))
def test_classification_loss_derivatives(name):
    res = check_loss_gradients(CLASSIFICATION_LOSSES[name](0.1, 0.5))
    assert res.autograd_error <= 1e-12
    assert res.finite_difference_error <= 1e-6


def test_softmax_derivative_matches_autograd():
    loss = MULTINOMIAL_LOSSES["log_loss"](0.1, 0.5)
    gen = torch.Generator().manual_seed(0)
    P = torch.randn(50, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    Y = torch.eye(4, dtype=torch.float64)[torch.randint(0, 4, (50,), generator=gen)]
    (auto,) = torch.autograd.grad(loss.value(Y, P).sum(), P)
    torch.testing.assert_close(loss.derivative(Y, P.detach()), auto)
    # each row's values sum to its cross-entropy
    rows = loss.value(Y, P.detach()).sum(1)
    expected = torch.logsumexp(P.detach(), 1) - (Y * P.detach()).sum(1)
    torch.testing.assert_close(rows, expected)


def test_perceptron_moves_from_zero(binary):
    X, y = binary
    clf = TorchSGDClassifier(loss="perceptron", max_iter=3, tol=None).fit(X, y)
    assert np.abs(clf.coef_).sum() > 0


# ------------------------------------------------------------ labels
def test_string_labels_and_shapes(three_class):
    X, y = three_class
    names = np.array(["cat", "dog", "emu"])
    clf = TorchSGDClassifier(random_state=0).fit(X, names[y])
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.coef_.shape == (3, 6) and clf.intercept_.shape == (3,)
    assert clf.decision_function(X).shape == (len(y), 3)
    pred = clf.predict(X)
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    assert clf.score(X, names[y]) > 0.5  # LogisticRegression: 0.6


@pytest.mark.parametrize(
    "y, ok",
    [
        (np.array([0, 1, 2, 1]), True),
        (np.array([0.0, 1.0, 2.0, 1.0]), True),  # integral floats are classes
        (np.array([True, False, True, False]), True),
        (np.array([0.5, 1.0, 2.0, 1.0]), False),  # continuous
        (np.array([0.0, np.nan, 1.0, 1.0]), False),
        (np.array([0.0, np.inf, 1.0, 1.0]), False),
    ],
)
def test_class_labels_fast_check_matches_sklearn(y, ok):
    """The direct check of numeric labels accepts and refuses what
    scikit-learn's check_classification_targets does, with its errors."""
    from sklearn.utils.multiclass import check_classification_targets

    from sklearn_gd.data._validation import class_labels

    try:
        check_classification_targets(y)
        sk_error = None
    except ValueError as exc:
        sk_error = exc
    assert (sk_error is None) == ok
    if ok:
        np.testing.assert_array_equal(class_labels(y), y)
    else:
        with pytest.raises(ValueError):
            class_labels(y)


def test_binary_shapes_and_positive_class(binary):
    X, y = binary
    labels = np.where(y == 1, 7, -3)
    clf = TorchSGDClassifier(loss="log_loss").fit(X, labels)
    assert list(clf.classes_) == [-3, 7]
    assert clf.coef_.shape == (1, 6) and clf.intercept_.shape == (1,)
    d = clf.decision_function(X)
    assert d.shape == (len(y),)
    np.testing.assert_array_equal(clf.predict(X), np.where(d > 0, 7, -3))


def test_float32_stays_float32(three_class):
    X, y = three_class
    clf = TorchSGDClassifier().fit(X.astype(np.float32), y)
    assert clf.coef_.dtype == np.float32
    assert clf.decision_function(X.astype(np.float32)).dtype == np.float32


# ------------------------------------------------------------ probabilities
def test_predict_proba_log_loss(binary, three_class):
    X, y = binary
    clf = TorchSGDClassifier(loss="log_loss").fit(X, y)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], expit(clf.decision_function(X)))
    np.testing.assert_allclose(p.sum(1), 1)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(p))

    X, y = three_class
    ovr = TorchSGDClassifier(loss="log_loss").fit(X, y)
    p = ovr.predict_proba(X)
    e = expit(ovr.decision_function(X))
    np.testing.assert_allclose(p, e / e.sum(1, keepdims=True))
    multi = TorchSGDClassifier(loss="log_loss", multi_class="multinomial").fit(X, y)
    p = multi.predict_proba(X)
    np.testing.assert_allclose(p, softmax(multi.decision_function(X), axis=1))
    np.testing.assert_allclose(multi.predict_log_proba(X), np.log(p), atol=1e-12)
    np.testing.assert_array_equal(
        p.argmax(1), np.searchsorted(multi.classes_, multi.predict(X))
    )


def test_predict_proba_modified_huber(binary, three_class):
    X, y = binary
    clf = TorchSGDClassifier(loss="modified_huber").fit(X, y)
    d = clf.decision_function(X)
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], (np.clip(d, -1, 1) + 1) / 2)
    X, y = three_class
    p = TorchSGDClassifier(loss="modified_huber").fit(X, y).predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1)
    assert (p >= 0).all()


def test_no_proba_for_hinge(binary):
    clf = TorchSGDClassifier().fit(*binary)
    assert not hasattr(clf, "predict_proba")
    assert not hasattr(clf, "predict_log_proba")
    with pytest.raises(AttributeError, match="predict_proba"):
        clf.predict_proba(binary[0])


# ------------------------------------------------------------ multinomial
def test_multinomial_binary_is_logistic(binary):
    X, y = binary
    a = TorchSGDClassifier(loss="log_loss", multi_class="multinomial").fit(X, y)
    b = TorchSGDClassifier(loss="log_loss").fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_multinomial_needs_log_loss(three_class):
    with pytest.raises(ValueError, match="multinomial"):
        TorchSGDClassifier(loss="hinge", multi_class="multinomial").fit(*three_class)


# ------------------------------------------------------------ class weights
def test_class_weight_balanced_equals_dict_and_sample_weight(three_class):
    X, y = three_class
    keep = (y != 2) | (np.arange(len(y)) % 4 == 0)  # make class 2 rare
    X, y = X[keep], y[keep]
    cw = compute_class_weight("balanced", classes=np.unique(y), y=y)
    kw = dict(loss="log_loss", optimizer="lbfgs", tol=1e-10)
    a = TorchSGDClassifier(class_weight="balanced", **kw).fit(X, y)
    b = TorchSGDClassifier(class_weight=dict(enumerate(cw)), **kw).fit(X, y)
    c = TorchSGDClassifier(**kw).fit(X, y, sample_weight=cw[y])
    np.testing.assert_allclose(a.coef_, b.coef_)
    np.testing.assert_allclose(a.coef_, c.coef_, rtol=1e-6, atol=1e-8)
    plain = TorchSGDClassifier(**kw).fit(X, y)
    recall = [(m.predict(X)[y == 2] == 2).mean() for m in (plain, a)]
    assert recall[1] >= recall[0]


# ------------------------------------------------------------ partial_fit
def test_partial_fit(three_class):
    X, y = three_class
    labels = np.array(["a", "b", "c"])[y]
    clf = TorchSGDClassifier(loss="log_loss", random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X[:20], labels[:20])
    batches = np.array_split(np.arange(len(y)), 8)
    for _ in range(20):
        for idx in batches:
            clf.partial_fit(X[idx], labels[idx], classes=["c", "b", "a"])
    assert list(clf.classes_) == ["a", "b", "c"]
    assert clf.score(X, labels) > 0.6
    assert len(clf.loss_curve_) == 160
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X[:5], labels[:5], classes=["a", "b"])
    before = clf.coef_.copy()
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:5], np.array(["a", "b", "z", "a", "c"]))
    np.testing.assert_array_equal(clf.coef_, before)


def test_partial_fit_rejects_balanced(binary):
    with pytest.raises(ValueError, match="balanced"):
        TorchSGDClassifier(class_weight="balanced").partial_fit(*binary, classes=[0, 1])


def test_failed_fit_keeps_previous_state(binary):
    X, y = binary
    clf = TorchSGDClassifier().fit(X, y)
    coef, classes = clf.coef_.copy(), clf.classes_.copy()
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(X, np.zeros(len(y)))
    np.testing.assert_array_equal(clf.coef_, coef)
    np.testing.assert_array_equal(clf.classes_, classes)


# ------------------------------------------------------------ early stopping
def test_early_stopping_scores_accuracy(three_class):
    X, y = three_class
    clf = TorchSGDClassifier(early_stopping=True, random_state=0).fit(X, y)
    scores = np.asarray(clf.validation_scores_)
    assert ((scores >= 0) & (scores <= 1)).all()
    # accuracies of a stratified 10% split (24 samples): multiples of 1/24
    np.testing.assert_allclose(scores * 24, np.round(scores * 24), atol=1e-9)
    assert clf.best_validation_score_ == scores.max()


# ------------------------------------------------------------ inputs
def test_sparse_and_tensor_inputs_match_dense(three_class):
    X, y = three_class
    # sparse input takes L-BFGS where dense takes Newton: each is solved to a
    # 1e-10 relative gradient, so both are within ~1e-9 of the one optimum
    clf = TorchSGDClassifier(loss="log_loss", tol=1e-10)
    dense = clone(clf).fit(X, y)
    sparse = clone(clf).fit(sp.csr_matrix(X), y)
    tensor = clone(clf).fit(torch.from_numpy(X), torch.from_numpy(y))
    for other in (sparse, tensor):
        np.testing.assert_allclose(other.coef_, dense.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(tensor.predict(torch.from_numpy(X)), dense.predict(X))


def test_pickle_round_trip(three_class):
    X, y = three_class
    clf = TorchSGDClassifier(loss="log_loss", multi_class="multinomial").fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------------ integration
def test_pipeline_and_grid_search():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), TorchSGDClassifier(loss="log_loss"))
    search = GridSearchCV(
        pipe,
        {
            "torchsgdclassifier__alpha": [1e-4, 1e-2],
            "torchsgdclassifier__multi_class": ["ovr", "multinomial"],
        },
        cv=3,
    )
    search.fit(X, y)
    assert search.best_score_ > 0.85
    assert search.predict_proba(X).shape == (150, 3)
    assert set(search.predict(X)) == {0, 1, 2}


def test_sparsify_and_densify(three_class):
    # SparseCoefMixin: an L1 model's coef_ as CSR predicts the same
    X, y = three_class
    clf = TorchSGDClassifier(loss="log_loss", penalty="l1", alpha=0.05).fit(X, y)
    assert np.any(clf.coef_ == 0)
    dense_scores = clf.decision_function(X)
    clf.sparsify()
    assert sp.issparse(clf.coef_)
    # the CPU path multiplies by the CSR matrix; the torch path densifies it.
    # Each score is a sum of 6 products and the intercept, in any order:
    # within 7 u (|X| |W|' + |b|) of the exact value (u = 1.1e-16), so two
    # of them within 1.6e-15 of that magnitude; a relative tolerance alone
    # would depend on the order wherever a score cancels to near zero
    bound = 1e-14 * (np.abs(X) @ np.abs(clf.coef_.toarray().T) + np.abs(clf.intercept_))
    np.testing.assert_array_less(np.abs(clf.decision_function(X) - dense_scores), bound)
    torch_scores = clf.set_params(device="cpu").decision_function(torch.from_numpy(X))
    np.testing.assert_array_less(np.abs(torch_scores - dense_scores), bound)
    clf.densify()
    assert isinstance(clf.coef_, np.ndarray)
    np.testing.assert_array_equal(clf.decision_function(X), dense_scores)


# ------------------------------------------------- scikit-learn's semantics
def test_strong_l2_sets_weights_to_zero_per_sample():
    """With ``eta0 * alpha = 1e4`` the L2 part scales the weights by
    ``max(0, 1 - eta0 alpha) = 0`` before each step, as SGDClassifier does,
    and the fit ends with SGDClassifier's zero coefficients; an explicit L2
    gradient step (factor ``1 - 1e4``) raised DivergenceError (NaN)."""
    X, y = load_iris(return_X_y=True)
    params = dict(
        alpha=1e5,
        learning_rate="constant",
        eta0=0.1,
        shuffle=False,
        tol=None,
        max_iter=6,
    )
    ref = SGDClassifier(**params).fit(X, y)
    with np.errstate(all="raise"):
        clf = TorchSGDClassifier(optimizer="sgd", batch_size=1, **params).fit(X, y)
    np.testing.assert_array_equal(ref.coef_, 0.0)
    np.testing.assert_array_equal(clf.coef_, 0.0)


@pytest.mark.parametrize("loss", ["hinge", "log_loss", "perceptron"])
def test_tol_none_runs_max_iter_epochs(loss):
    """tol=None runs exactly max_iter epochs, as SGDClassifier does, on the
    full-batch solvers too (hinge's smoothing, Newton) and without a
    warning."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = TorchSGDClassifier(loss=loss, tol=None, max_iter=42).fit(X, y == 1)
    assert clf.n_iter_ == 42


def test_tol_zero_trains_until_no_progress():
    """tol=0 ends the fit once no step decreases the objective at the data's
    precision (SGDClassifier: when it stops decreasing), converged; hinge's
    smoothing ran all 2000 epochs, sharpening past what float64 resolves."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = TorchSGDClassifier(tol=0, max_iter=2000).fit(X, y == 1)
    coarse = TorchSGDClassifier(tol=0.1, max_iter=2000).fit(X, y == 1)
    assert coarse.n_iter_ < clf.n_iter_ < 200


def test_power_t_default_is_sgdclassifiers():
    assert (
        TorchSGDClassifier().get_params()["power_t"]
        == SGDClassifier().get_params()["power_t"]
    )
