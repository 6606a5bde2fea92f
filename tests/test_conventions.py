"""The drop-in conventions of scikit-learn's SGD estimators, over the four
estimators: parameter names, values and messages as SGDRegressor and
SGDClassifier have them (issue 26, "Conventions a drop-in must keep")."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.model_selection import ShuffleSplit

from sklearn_gd import (
    TorchSGDClassifier,
    TorchSGDClassifierCV,
    TorchSGDRegressor,
    TorchSGDRegressorCV,
)

# the parameters the CV estimators replace (alphas) or do not take
CV_DROPPED = ("alpha", "warm_start")


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(60, 4, noise=1.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(
        90, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0
    )
    return X, y


def _data(estimator, regression, classification):
    is_clf = isinstance(estimator, TorchSGDClassifier)
    return classification if is_clf else regression


# (our estimator, scikit-learn's peer, extra parameters of ours)
PEERS = [
    (TorchSGDRegressor, SGDRegressor, {}),
    (TorchSGDClassifier, SGDClassifier, {}),
    (TorchSGDRegressorCV, SGDRegressor, dict(alphas=3, cv=2)),
    (TorchSGDClassifierCV, SGDClassifier, dict(alphas=3, cv=2)),
]
PEER_IDS = [ours.__name__ for ours, _, _ in PEERS]


@pytest.mark.parametrize("ours, peer, extra", PEERS, ids=PEER_IDS)
def test_takes_the_peers_parameters(ours, peer, extra, regression, classification):
    # TorchSGDClassifier(**SGDClassifier().get_params()) raised a TypeError
    # on n_jobs; every name of the peer's must be taken, with its default
    params = peer().get_params()
    if ours in (TorchSGDRegressorCV, TorchSGDClassifierCV):
        params = {k: v for k, v in params.items() if k not in CV_DROPPED}
    est = ours(**params, **extra)
    assert set(params) <= set(est.get_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SGD's tol=1e-3 stops early
        est.fit(*_data(est, regression, classification))


def test_n_jobs_is_accepted_and_changes_nothing(classification):
    # one-vs-rest problems are trained together, as one weight matrix
    X, y = classification
    fits = [TorchSGDClassifier(n_jobs=n).fit(X, y) for n in (None, 1, 2, -1)]
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.coef_, fits[0].coef_)
    with pytest.raises(ValueError, match="'n_jobs' parameter"):
        TorchSGDClassifier(n_jobs="two").fit(X, y)


ESTIMATORS = [
    (TorchSGDRegressor, {}),
    (TorchSGDClassifier, {}),
    (TorchSGDRegressorCV, dict(alphas=3, cv=2)),
    (TorchSGDClassifierCV, dict(alphas=3, cv=2)),
]
ESTIMATOR_IDS = [cls.__name__ for cls, _ in ESTIMATORS]


@pytest.mark.parametrize("cls, extra", ESTIMATORS, ids=ESTIMATOR_IDS)
@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_l1_ratio_none_where_the_penalty_ignores_it(
    cls, extra, penalty, regression, classification
):
    # as scikit-learn >= 1.6: l1_ratio=None is a value for penalties that
    # do not read it, and then fits as any l1_ratio does
    # (max_iter=50: equal fits, not converged ones, are what is compared)
    est = cls(penalty=penalty, l1_ratio=None, max_iter=50, **extra)
    X, y = _data(est, regression, classification)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unset = est.fit(X, y)
        ref = clone(est).set_params(l1_ratio=0.7).fit(X, y)
    np.testing.assert_array_equal(unset.coef_, ref.coef_)


@pytest.mark.parametrize("cls, extra", ESTIMATORS, ids=ESTIMATOR_IDS)
def test_l1_ratio_none_with_elasticnet_is_sklearns_error(
    cls, extra, regression, classification
):
    est = cls(penalty="elasticnet", l1_ratio=None, **extra)
    with pytest.raises(
        ValueError, match="l1_ratio must be set when penalty is 'elasticnet'"
    ):
        est.fit(*_data(est, regression, classification))


@pytest.mark.parametrize("cls, extra", ESTIMATORS, ids=ESTIMATOR_IDS)
def test_negative_power_t_warns_as_sklearn_and_fits(
    cls, extra, regression, classification
):
    # scikit-learn 1.8 deprecated negative power_t: a FutureWarning, no error
    est = cls(power_t=-0.5, learning_rate="invscaling", eta0=1e-4, **extra)
    X, y = _data(est, regression, classification)
    with pytest.warns(
        FutureWarning, match="Negative values for `power_t` are deprecated"
    ):
        est.fit(X, y)
    assert np.isfinite(est.coef_).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        cls(power_t=0.5, **extra).fit(X, y)


# ---------------------------------------------------------------- messages
# scikit-learn's own tests (sklearn/linear_model/tests/test_sgd.py) match
# these messages; ours begin with its words and may say more


@pytest.mark.parametrize(
    "cls, n_classes",
    [(TorchSGDClassifier, 2), (TorchSGDClassifier, 3)] + [(TorchSGDRegressor, None)],
)
def test_init_shape_messages_are_sklearns(cls, n_classes, regression):
    X, y = regression
    if n_classes is not None:
        y = np.arange(len(y)) % n_classes
    est = cls(max_iter=5)
    with pytest.raises(ValueError, match="Provided coef_init does not match dataset"):
        est.fit(X, y, coef_init=np.zeros(X.shape[1] + 1))
    with pytest.raises(
        ValueError, match="Provided intercept_init does not match dataset"
    ):
        est.fit(X, y, intercept_init=np.zeros(5))


def test_balanced_partial_fit_message_is_sklearns(classification):
    X, y = classification
    regex = (
        r"class_weight 'balanced' is not supported for "
        r"partial_fit\. In order to use 'balanced' weights, "
        r"use compute_class_weight\('balanced', classes=classes, y=y\). "
        r"In place of y you can use a large enough sample "
        r"of the full training set target to properly "
        r"estimate the class frequency distributions\. "
        r"Pass the resulting weights as the class_weight "
        r"parameter\."
    )
    with pytest.raises(ValueError, match=regex):
        TorchSGDClassifier(class_weight="balanced").partial_fit(
            X, y, classes=np.unique(y)
        )


OVERFLOW = (
    r"Floating-point under-/overflow occurred at epoch #.*"
    " Scaling input data with StandardScaler or MinMaxScaler"
    " might help."
)


@pytest.mark.parametrize(
    "params", [{}, dict(optimizer="sgd", batch_size=1)], ids=["auto", "sgd"]
)
def test_overflowing_features_message_is_sklearns(params):
    # scikit-learn's test_underflow_or_overflow: finite features of 1e300,
    # whose second moments overflow; under errstate(all="raise") as there
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 10))
    X[:, :2] *= 1e300
    y = (X[:, 2:] @ rng.normal(size=8) > 0).astype(np.int32)
    model = TorchSGDClassifier(alpha=0.1, loss="squared_hinge", max_iter=500)
    with np.errstate(all="raise"), pytest.raises(ValueError, match=OVERFLOW):
        model.set_params(**params).fit(X, y)


def test_overflowing_training_message_is_sklearns(regression):
    # a step so long that the objective overflows in the first epoch
    X, y = regression
    reg = TorchSGDRegressor(
        learning_rate="constant", eta0=1e10, batch_size=1, tol=None, max_iter=5
    )
    with pytest.raises(ValueError, match=OVERFLOW) as info:
        reg.fit(X.astype(np.float32), y)
    # and our own details: the epoch, the objective and the step
    assert "diverged at epoch 1: the objective became nan" in str(info.value)


@pytest.mark.parametrize("cls", [TorchSGDClassifier, TorchSGDRegressor])
@pytest.mark.parametrize("container", ["numpy", "torch"])
def test_all_zero_weights_with_early_stopping_message_is_sklearns(
    cls, container, classification
):
    # SGDClassifier's test_sgd_error_on_zero_validation_weight: the split
    # names the set whose weights are all zero
    X, y = classification
    sw = np.zeros(len(y))
    if container == "torch":
        X, sw = torch.as_tensor(X), torch.as_tensor(sw)
    est = cls(early_stopping=True, validation_fraction=0.4, random_state=0)
    with pytest.raises(
        ValueError,
        match="The sample weights for validation set are all zero, consider using a"
        " different random state.",
    ):
        est.fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="at least one non-zero"):
        cls().fit(X, y, sample_weight=sw)


def test_all_zero_training_weights_with_early_stopping(regression):
    # weights only on the rows the split holds out: nothing to train on
    X, y = regression
    _, idx_val = next(ShuffleSplit(test_size=0.5, random_state=0).split(X))
    sw = np.zeros(len(y))
    sw[idx_val] = 1.0
    est = TorchSGDRegressor(
        early_stopping=True, validation_fraction=0.5, random_state=0
    )
    with pytest.raises(ValueError, match="training set are all zero"):
        est.fit(X, y, sample_weight=sw)


# ------------------------------------------------------ sparsify, densify
@pytest.mark.parametrize(
    "cls, extra",
    [(TorchSGDRegressor, dict(alpha=1.0)), (TorchSGDRegressorCV, dict(cv=2))],
    ids=["TorchSGDRegressor", "TorchSGDRegressorCV"],
)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_sparsify_and_densify(cls, extra, n_outputs):
    # SGDRegressor's SparseCoefMixin: an L1 model's coef_ as a sparse
    # matrix predicts the same, through numpy, sparse X and torch, and pickles
    X, y = make_regression(60, 8, n_informative=2, random_state=0)
    y = y if n_outputs == 1 else np.c_[y, -2 * y]
    reg = cls(penalty="l1", **extra).fit(X, y)
    assert np.any(reg.coef_ == 0)
    shape, expected = reg.coef_.shape, reg.predict(X)
    assert reg.sparsify() is reg and sp.issparse(reg.coef_)
    # float64 products of the same numbers in another order: a few ulps
    tol = dict(rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(reg.predict(X), expected, **tol)
    np.testing.assert_allclose(reg.predict(sp.csr_matrix(X)), expected, **tol)
    on_torch = reg.set_params(device="cpu").predict(torch.from_numpy(X))
    np.testing.assert_allclose(on_torch, expected, **tol)
    copy = pickle.loads(pickle.dumps(reg))
    assert sp.issparse(copy.coef_)
    np.testing.assert_allclose(copy.predict(X), expected, **tol)
    assert reg.densify() is reg and isinstance(reg.coef_, np.ndarray)
    assert reg.coef_.size == np.prod(shape)
    np.testing.assert_allclose(reg.predict(X), expected, **tol)


# -------------------------------------------------- inputs left untouched
def _unsorted_csr(X):
    """X as CSR whose column indices run backwards within each row."""
    A = sp.csr_matrix(X)
    indices, data = A.indices.copy(), A.data.copy()
    for start, stop in zip(A.indptr[:-1], A.indptr[1:]):
        indices[start:stop] = indices[start:stop][::-1]
        data[start:stop] = data[start:stop][::-1]
    U = sp.csr_matrix((data, indices, A.indptr.copy()), shape=A.shape)
    assert not U.has_sorted_indices
    return U


def _container(X, kind, tmp_path):
    if kind == "csr_unsorted":
        return _unsorted_csr(X)
    if kind == "fortran":
        return np.asfortranarray(X)
    if kind == "memmap":
        path = tmp_path / f"X{X.shape[0]}.dat"
        out = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
        out[:] = X
        out.flush()
        return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)
    return torch.from_numpy(X.copy())


def _snapshot(a):
    if sp.issparse(a):
        return ("sparse", a.data.copy(), a.indices.copy(), a.indptr.copy())
    if isinstance(a, torch.Tensor):
        return ("tensor", a.clone(), a.stride())
    return ("array", np.array(a), a.flags.c_contiguous, a.flags.f_contiguous)


def _assert_unchanged(a, snap):
    if snap[0] == "sparse":
        for now, before in zip((a.data, a.indices, a.indptr), snap[1:]):
            np.testing.assert_array_equal(now, before)
    elif snap[0] == "tensor":
        assert torch.equal(a, snap[1]) and a.stride() == snap[2]
    else:
        np.testing.assert_array_equal(a, snap[1])
        assert (a.flags.c_contiguous, a.flags.f_contiguous) == snap[2:]


CONTAINERS = ["csr_unsorted", "fortran", "memmap", "tensor"]


@pytest.mark.parametrize("cls, extra", ESTIMATORS, ids=ESTIMATOR_IDS)
@pytest.mark.parametrize("kind", CONTAINERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_partial_fit_and_predict_leave_inputs_alone(
    cls, extra, kind, dtype, regression, classification, tmp_path
):
    # fit sorted an unsorted CSR X in place (X.tocsr() is X itself)
    est = cls(**extra)
    X, y = _data(est, regression, classification)
    Xc = _container(X.astype(dtype), kind, tmp_path)
    yc, sw = y.copy(), np.linspace(0.5, 2.0, len(y))
    if kind == "tensor":
        yc, sw = torch.from_numpy(yc), torch.from_numpy(sw)
    snaps = [_snapshot(a) for a in (Xc, yc, sw)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xc, yc, sample_weight=sw)
        est.predict(Xc)
        if hasattr(est, "decision_function"):
            est.decision_function(Xc)
        if not extra:  # the CV estimators have no partial_fit
            is_clf = isinstance(est, TorchSGDClassifier)
            kwargs = {"classes": np.unique(y)} if is_clf else {}
            cls(**extra).partial_fit(Xc, yc, sample_weight=sw, **kwargs)
            est.partial_fit(Xc, yc, sample_weight=sw)
    for a, snap in zip((Xc, yc, sw), snaps):
        _assert_unchanged(a, snap)


# ------------------------------------------------------ device at predict
@pytest.mark.parametrize("cls, extra", ESTIMATORS, ids=ESTIMATOR_IDS)
@pytest.mark.parametrize("container", ["numpy", "torch"])
def test_device_set_after_fit_fails_at_predict_as_at_fit(
    cls, extra, container, regression, classification, monkeypatch
):
    # after a CPU fit, set_params(device="cuda") on a machine without CUDA
    # predicted on the CPU; it is a request for CUDA, refused as fit refuses
    est = cls(**extra)
    X, y = _data(est, regression, classification)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    est.set_params(device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available") as at_fit:
        clone(est).fit(X, y)
    Xp = torch.from_numpy(X) if container == "torch" else X
    with pytest.raises(ValueError) as at_predict:
        est.predict(Xp)
    assert str(at_predict.value) == str(at_fit.value)
    if hasattr(est, "decision_function"):
        with pytest.raises(ValueError, match="CUDA is not available"):
            est.decision_function(Xp)


# ------------------------------------------------- scikit-learn's messages
def _peer_message(ours, Xbad, X, y, method):
    """The message scikit-learn's own peer gives for ``Xbad``, with our
    estimator's name in place of its own."""
    peer = SGDClassifier if isinstance(ours, TorchSGDClassifier) else SGDRegressor
    est = peer(max_iter=5, tol=None)
    with pytest.raises(ValueError) as info:
        if method == "predict":
            est.fit(X, y).predict(Xbad)
        else:
            getattr(est, method)(Xbad, y, **_classes(est, y, method))
    return str(info.value).replace(peer.__name__, type(ours).__name__)


def _classes(est, y, method):
    is_clf = isinstance(est, (TorchSGDClassifier, SGDClassifier))
    return {"classes": np.unique(y)} if is_clf and method == "partial_fit" else {}


# every data path of X: numpy through the Gram statistics (squared loss) or
# the rows (huber, early stopping, weights), CSR, tensors, streamed memmaps
PATHS = {
    "gram": ({}, "numpy"),
    "rows": (dict(loss="huber"), "numpy"),
    "early_stopping": (dict(early_stopping=True), "numpy"),
    "weighted": ({}, "weighted"),
    "minibatch": (dict(batch_size=8), "numpy"),
    "sparse": ({}, "sparse"),
    "tensor": ({}, "tensor"),
    "memmap": ({}, "memmap"),
}


def _bad_X(X, bad, kind, tmp_path):
    Xb = X.copy()
    Xb[7, 2] = bad
    if kind == "sparse":
        return sp.csr_matrix(Xb)
    if kind == "tensor":
        return torch.from_numpy(Xb)
    if kind == "memmap":
        return _container(Xb, "memmap", tmp_path)
    return Xb


def _fit_kwargs(kind, n):
    return {"sample_weight": np.linspace(0.5, 2, n)} if kind == "weighted" else {}


@pytest.mark.parametrize("cls", [TorchSGDRegressor, TorchSGDClassifier])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_X_gets_sklearns_message(
    cls, path, method, bad, regression, classification, tmp_path
):
    # NaN in X gave only "Input X contains NaN." where SGDRegressor names
    # itself and points to imputers (check_array's full message)
    params, kind = PATHS[path]
    if cls is TorchSGDClassifier and "loss" in params:
        params = {}
    if method != "fit" and path in ("early_stopping", "minibatch"):
        pytest.skip("partial_fit and predict have no such path")
    est = cls(**params)
    X, y = _data(est, regression, classification)
    Xbad = _bad_X(X, bad, kind, tmp_path)
    expected = _peer_message(est, _bad_X(X, bad, "numpy", tmp_path), X, y, method)
    with pytest.raises(ValueError) as info:
        if method == "predict":
            est.fit(X, y)
            est.predict(Xbad)
        else:
            kwargs = {**_fit_kwargs(kind, len(y)), **_classes(est, y, method)}
            getattr(est, method)(Xbad, y, **kwargs)
    assert str(info.value) == expected
    if bad != bad:  # NaN: the message points to imputers
        assert "imputer" in expected and cls.__name__ in expected


@pytest.mark.parametrize("cls, extra", ESTIMATORS[2:], ids=ESTIMATOR_IDS[2:])
@pytest.mark.parametrize("kind", ["numpy", "sparse", "tensor", "memmap"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_X_gets_sklearns_message_in_cv(
    cls, extra, kind, bad, regression, classification, tmp_path
):
    est = cls(**extra)
    X, y = _data(est, regression, classification)
    expected = _peer_message(est, _bad_X(X, bad, "numpy", tmp_path), X, y, "fit")
    with pytest.raises(ValueError) as info:
        est.fit(_bad_X(X, bad, kind, tmp_path), y)
    assert str(info.value) == expected
    for method in ("predict", "score"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        Xbad = _bad_X(X, bad, kind, tmp_path)
        with pytest.raises(ValueError) as info:
            getattr(est, method)(*(Xbad,) if method == "predict" else (Xbad, y))
        assert str(info.value) == _peer_message(
            est, _bad_X(X, bad, "numpy", tmp_path), X, y, "predict"
        )


@pytest.mark.parametrize("target", ["y", "sample_weight"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_tensor_targets_get_sklearns_message(bad, target, regression):
    X, y = regression
    y, sw = y.copy(), np.ones(len(y))
    (y if target == "y" else sw)[3] = bad
    with pytest.raises(ValueError) as peer:
        SGDRegressor().fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError) as ours:
        TorchSGDRegressor().fit(
            torch.from_numpy(X), torch.from_numpy(y), sample_weight=torch.from_numpy(sw)
        )
    assert str(ours.value) == str(peer.value)
