"""Data where it lives: torch tensors, array API dispatch, sparse input, devices."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import sklearn.utils._array_api
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_gd import TorchSGDRegressor
from sklearn_gd.data._data import resolve_device
from sklearn_gd.estimators import _base
from sklearn_gd.solvers._optimizers import OPTIMIZERS

CUDA = pytest.mark.gpu


@pytest.fixture
def data32(regression_data):
    X, y = regression_data
    return X.astype(np.float32), y.astype(np.float32)


# ------------------------------------------------------------------ tensors
def test_tensor_input_matches_numpy(data32):
    X, y = data32
    params = dict(max_iter=30, tol=None)
    ref = TorchSGDRegressor(**params).fit(X, y)
    reg = TorchSGDRegressor(**params).fit(torch.from_numpy(X), torch.from_numpy(y))
    assert reg.coef_.dtype == np.float32  # float32 in, float32 out
    # the same computation on the same device: identical up to float32 rounding
    assert_allclose(reg.coef_, ref.coef_, rtol=1e-6)
    pred = reg.predict(torch.from_numpy(X))
    assert isinstance(pred, np.ndarray) and pred.dtype == np.float32
    # sample weights as a tensor too
    w = torch.ones(200)
    reg.fit(torch.from_numpy(X), torch.from_numpy(y), sample_weight=w)
    # float32 sums in another order: rounding relative to the largest
    # coefficient (a near-zero one differs by 2e-5 of itself)
    scale = np.abs(ref.coef_).max()
    assert_allclose(reg.coef_, ref.coef_, rtol=1e-6, atol=1e-6 * scale)


def test_tensor_training_uses_the_tensor_in_place(data32, monkeypatch):
    X, y = data32
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    seen = {}
    import sklearn_gd.estimators._training as base

    real = base.choose_oracle

    def spy(Xa, *args, **kwargs):
        seen["ptr"] = Xa.data_ptr()
        return real(Xa, *args, **kwargs)

    monkeypatch.setattr(base, "choose_oracle", spy)
    TorchSGDRegressor(max_iter=2, tol=None).fit(Xt, yt)
    assert seen["ptr"] == Xt.data_ptr()  # no copy of X


def test_array_api_dispatch_returns_tensors(data32):
    X, y = data32
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    with sklearn.config_context(array_api_dispatch=True):
        reg = TorchSGDRegressor(max_iter=20, tol=None).fit(Xt, yt)
        pred = reg.predict(Xt)
        assert isinstance(pred, torch.Tensor) and pred.dtype == torch.float32
        assert isinstance(reg.coef_, torch.Tensor)
        assert reg.score(Xt, yt) > 0.9
    # a pickle holds numpy only, and predicts without dispatch
    copy = pickle.loads(pickle.dumps(reg))
    assert isinstance(copy.coef_, np.ndarray)
    # numpy and torch matmul round differently in float32: |y| ~ 10 gives
    # absolute differences of a few ulps (~1e-6)
    assert_allclose(copy.predict(X), pred.numpy(), rtol=1e-6, atol=1e-5)


def test_tensor_errors(data32):
    X, y = data32
    Xt = torch.from_numpy(X).clone()
    Xt[3, 1] = float("nan")
    with pytest.raises(ValueError, match="Input X contains NaN"):
        TorchSGDRegressor().fit(Xt, torch.from_numpy(y))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        TorchSGDRegressor().fit(torch.from_numpy(X), torch.from_numpy(y[:10]))
    with pytest.raises(ValueError, match="Expected 2D array"):
        TorchSGDRegressor().fit(torch.from_numpy(y), torch.from_numpy(y))
    reg = TorchSGDRegressor(max_iter=3).fit(torch.from_numpy(X), torch.from_numpy(y))
    with pytest.raises(ValueError, match="expecting 5 features"):
        reg.predict(torch.from_numpy(X[:, :2]))


# ------------------------------------------------------------------- sparse
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csr_array])
def test_sparse_equals_dense(fmt, container):
    rng = np.random.RandomState(0)
    Xd = sp.random(300, 20, density=0.2, random_state=rng).toarray()
    y = Xd @ rng.randn(20) + 0.1 * rng.randn(300)
    Xs = container(Xd).asformat(fmt)
    for params in (
        dict(max_iter=50, tol=None),  # full batch
        dict(max_iter=5, tol=None, batch_size=32, shuffle=False),
        dict(max_iter=5, tol=None, batch_size=32, random_state=0, loss="huber"),
    ):
        dense = TorchSGDRegressor(**params).fit(Xd, y)
        sparse = TorchSGDRegressor(**params).fit(Xs, y)
        # same arithmetic up to summation order: 1e-6 relative (float64 data;
        # the dense full-batch path goes through the Gram matrix, and both
        # solve to their own objective's rounding: a near-zero prediction
        # differs by 5e-9 of the predictions' scale)
        pred = dense.predict(Xd)
        atol = 1e-8 * np.abs(pred).max()
        assert_allclose(sparse.coef_, dense.coef_, rtol=1e-6, atol=1e-9)
        assert_allclose(sparse.predict(Xs), pred, rtol=1e-6, atol=atol)


def test_sparse_is_not_densified(monkeypatch):
    Xs = sp.random(200, 50, density=0.05, format="csr", random_state=0)
    y = np.arange(200.0)
    monkeypatch.setattr(sp.csr_matrix, "toarray", lambda *a, **k: 1 / 0)
    reg = TorchSGDRegressor(max_iter=3, tol=None, early_stopping=True).fit(Xs, y)
    assert reg.predict(Xs).shape == (200,)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_tensors_train_in_float32(data32, half):
    # not float64: four times the memory of the half-precision input
    X, y = data32
    reg = TorchSGDRegressor(max_iter=5, tol=None)
    reg.fit(torch.from_numpy(X).to(half), torch.from_numpy(y).to(half))
    assert reg.coef_.dtype == np.float32
    assert reg.predict(torch.from_numpy(X).to(half)).dtype == np.float32


@pytest.mark.parametrize("shuffle", [False, True])
def test_sparse_minibatches_equal_dense(shuffle):
    # batches cut from the CSR arrays (contiguous views, or gathered rows of a
    # shuffled batch whose non-zeros are counted on the host) are the dense
    # batches: the same permutation, the same updates
    rng = np.random.RandomState(0)
    X = rng.randn(300, 20) * (rng.rand(300, 20) < 0.3)
    y = X @ rng.randn(20) + 0.1 * rng.randn(300)
    params = dict(batch_size=16, random_state=0, max_iter=3, tol=None, loss="huber")
    params["shuffle"] = shuffle
    sparse = TorchSGDRegressor(**params).fit(sp.csr_matrix(X), y)
    dense = TorchSGDRegressor(**params).fit(X, y)
    # float64 sums in another order: each of the 57 steps (3 epochs of 19
    # batches) adds a few ulps of the iterates' scale (coefficients up to
    # 0.56), and steps <= 1/L do not amplify them: 57 * 4 ulps < 5e-14 of the
    # scale. The rounding is absolute at that scale, not relative to each
    # coefficient (the smallest is 2e-3): measured 4.4e-16 absolute with 1
    # and 2 threads, kernel or torch, against 1e-12 of the scale here
    scale = np.abs(dense.coef_).max()
    assert_allclose(sparse.coef_, dense.coef_, rtol=0, atol=1e-12 * scale)


# ------------------------------------------------------------------ devices
def test_auto_device_without_accelerator():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None, torch.zeros(1)).type == "cpu"
    assert resolve_device(None, np.zeros(1)).type == "cpu"


def test_mps_is_refused_clearly(data32, monkeypatch):
    # MPS has no float64, which training's statistics need: refuse at fit,
    # before any work, and never pick it for "auto" (even where it exists)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    X, y = data32
    assert resolve_device("auto").type in ("cpu", "cuda")
    reg = TorchSGDRegressor(max_iter=5).fit(X, y)
    before = pickle.dumps(reg)
    with pytest.raises(ValueError, match="MPS is not supported.*float64"):
        reg.set_params(device="mps").fit(X, y)
    assert pickle.dumps(reg.set_params(device=None)) == before


def test_cpu_device_grid_search_with_tensors(data32):
    X, y = data32
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    reg = TorchSGDRegressor(device="cpu", max_iter=20)
    search = GridSearchCV(reg, {"alpha": [1e-4, 1e-2]}, cv=3).fit(Xt, yt)
    assert search.best_score_ > 0.9
    assert cross_val_score(reg, Xt, yt, cv=3).min() > 0.9


@CUDA
def test_cuda_tensor_in_cuda_tensor_out(data32):
    X, y = data32
    Xc, yc = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    with sklearn.config_context(array_api_dispatch=True):
        reg = TorchSGDRegressor(max_iter=20, tol=None).fit(Xc, yc)
        pred = reg.predict(Xc)
    assert pred.is_cuda and reg.coef_.is_cuda
    ref = TorchSGDRegressor(max_iter=20, tol=None).fit(X, y)
    assert_allclose(pred.cpu().numpy(), ref.predict(X), rtol=1e-4, atol=1e-5)
    # without dispatch: numpy out, computed on the GPU
    out = TorchSGDRegressor(max_iter=20, tol=None).fit(Xc, yc).predict(Xc)
    assert isinstance(out, np.ndarray)


@CUDA
def test_cuda_pickle_round_trip(data32):
    X, y = data32
    reg = TorchSGDRegressor(device="cuda", max_iter=20, tol=None).fit(X, y)
    copy = pickle.loads(pickle.dumps(reg.set_params(device=None)))
    assert isinstance(copy.coef_, np.ndarray)
    assert_allclose(copy.predict(X), reg.predict(X), rtol=1e-6)
    cpu = TorchSGDRegressor(max_iter=20, tol=None).fit(X, y)
    assert_allclose(
        cpu.set_params(device="cuda").predict(X),
        cpu.set_params(device="cpu").predict(X),
        rtol=1e-5,
    )


@CUDA
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cuda_grid_search(data32, n_jobs):
    X, y = data32
    search = GridSearchCV(
        TorchSGDRegressor(device="cuda", max_iter=20),
        {"alpha": [1e-4, 1e-2]},
        cv=3,
        n_jobs=n_jobs,
    ).fit(X, y)
    assert search.best_score_ > 0.9


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_pickle_has_no_tensors(data32, optimizer):
    # every optimizer's state (L-BFGS keeps lists of tensors) pickles as numpy
    X, y = data32
    reg = TorchSGDRegressor(
        max_iter=5, optimizer=optimizer, batch_size=50, random_state=0, tol=None
    ).fit(X, y)
    reg.set_params(device="cpu").predict(torch.from_numpy(X))  # fills the cache
    blob = pickle.dumps(reg)
    assert b"torch" not in blob
    copy = pickle.loads(blob)
    assert_array_equal(copy.predict(X), reg.predict(X))
    # the optimizer's state comes back: partial_fit goes on identically
    assert_array_equal(copy.partial_fit(X, y).coef_, reg.partial_fit(X, y).coef_)


def test_gpu_model_predicts_on_a_cpu_host(data32, monkeypatch):
    # a pickle of a model fitted with device="cuda" holds numpy state and
    # device="cuda"; loaded where CUDA is absent it still predicts. The GPU
    # fit is simulated: "cuda" resolves to the CPU while it runs.
    X, y = data32
    expected = TorchSGDRegressor(optimizer="lbfgs", max_iter=5).fit(X, y).predict(X)
    with monkeypatch.context() as patch:
        patch.setattr(_base, "resolve_device", lambda *args: torch.device("cpu"))
        reg = TorchSGDRegressor(device="cuda", optimizer="lbfgs", max_iter=5)
        reg.fit(X, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    copy = pickle.loads(pickle.dumps(reg))
    with pytest.warns(UserWarning, match="predicting on the CPU"):
        assert_array_equal(copy.predict(X), expected)


@CUDA
def test_lbfgs_fitted_on_cuda_loads_on_a_cpu_host(data32, monkeypatch):
    X, y = data32
    reg = TorchSGDRegressor(device="cuda", optimizer="lbfgs", max_iter=10).fit(X, y)
    blob = pickle.dumps(reg)
    assert b"torch" not in blob
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    copy = pickle.loads(blob)
    with pytest.warns(UserWarning, match="predicting on the CPU"):
        pred = copy.predict(X)
    # float32 products on two devices: a few ulps of predictions of order 10
    assert_allclose(pred, reg.coef_ @ X.T + reg.intercept_, rtol=1e-5, atol=1e-5)


def test_predictions_follow_coef_(data32):
    # as scikit-learn's linear models: predict reads coef_ and intercept_,
    # on the numpy path and on the torch path (whose device copy is cached)
    X, y = data32
    Xt = torch.from_numpy(X)
    reg = TorchSGDRegressor(max_iter=20, tol=None).fit(X, y)
    reg.set_params(device="cpu")
    before = reg.predict(Xt)
    reg.coef_ = 2 * reg.coef_
    reg.intercept_[0] += 1.0  # in place: the cache must notice
    expected = X @ reg.coef_ + reg.intercept_
    # float32 products: one rounding of values of order 10
    assert_allclose(reg.predict(Xt), expected, rtol=1e-5, atol=1e-5)
    assert_allclose(reg.set_params(device=None).predict(X), expected, rtol=1e-5)
    assert not np.allclose(before, expected)


# --------------------------------------------------------- array API
def _array_api_strict():
    xp = pytest.importorskip("array_api_strict")
    return xp, xp.Device("device1")  # a device other than the CPU's


def test_array_api_strict_in_and_out(data32):
    # any array API namespace: trained through numpy/torch, fitted arrays and
    # predictions back in the input's namespace and on its device
    xp, device = _array_api_strict()
    X, y = data32
    ref = TorchSGDRegressor(max_iter=30, tol=None).fit(X, y)
    Xs, ys = xp.asarray(X, device=device), xp.asarray(y, device=device)
    with sklearn.config_context(array_api_dispatch=True):
        reg = TorchSGDRegressor(max_iter=30, tol=None).fit(Xs, ys)
        pred = reg.predict(Xs)
        for a in (reg.coef_, reg.intercept_, pred):
            assert a.__array_namespace__() is xp and a.device == device
            assert a.dtype == xp.float32
        assert isinstance(reg.score(Xs, ys), float)
    # the same numbers went through the same computation
    np.testing.assert_array_equal(
        np.asarray(xp.asarray(reg.coef_, device=xp.Device("CPU_DEVICE"))), ref.coef_
    )
    back = pickle.loads(pickle.dumps(reg))
    assert isinstance(back.coef_, np.ndarray)
    assert_array_equal(back.predict(X), ref.predict(X))


@pytest.mark.parametrize(
    "params", [dict(loss="log_loss"), dict(loss="log_loss", multi_class="multinomial")]
)
def test_classifier_under_dispatch_follows_the_input(params):
    # labels, scores and probabilities in the input's namespace, as
    # LogisticRegression returns them
    from sklearn.datasets import load_iris

    from sklearn_gd import TorchSGDClassifier

    X, y = load_iris(return_X_y=True)
    ref = TorchSGDClassifier(**params).fit(X, y)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = TorchSGDClassifier(**params).fit(Xt, yt)
        outputs = {
            "coef_": clf.coef_,
            "predict": clf.predict(Xt),
            "decision_function": clf.decision_function(Xt),
            "predict_proba": clf.predict_proba(Xt),
            "predict_log_proba": clf.predict_log_proba(Xt),
        }
        if hasattr(sklearn.utils._array_api, "check_same_namespace"):
            # scikit-learn >= 1.9: numpy into a model fitted on tensors
            with pytest.raises(ValueError, match="same namespace"):
                clf.predict(X)
    for name, value in outputs.items():
        assert isinstance(value, torch.Tensor), name
        expected = getattr(ref, name) if name == "coef_" else getattr(ref, name)(X)
        # float64, the same arithmetic on the same device
        assert_allclose(value.numpy(), expected, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["numpy", "sparse"])
def test_host_data_predicted_on_a_device_in_chunks(data32, kind, monkeypatch):
    # an accelerator receives host rows a bounded chunk at a time (never all
    # of X); run here on the CPU device with chunks of 7 rows
    import sklearn_gd.estimators._prediction as base

    X, y = data32
    reg = TorchSGDRegressor(max_iter=10, tol=None).fit(X, y)
    monkeypatch.setattr(base, "rows_per_chunk", lambda d, itemsize: 7)
    Xin = sp.csr_matrix(X) if kind == "sparse" else X
    out = reg._host_rows_on_device(Xin, kind, torch.device("cpu"))
    assert out.shape == (200, 1) and out.dtype == np.float32
    # float32 products: a few ulps of predictions of order 10
    assert_allclose(out[:, 0], reg.predict(X), rtol=1e-5, atol=1e-5)


def test_out_of_memory_releases_the_failed_fit(data32, monkeypatch):
    # the MemoryError keeps its cause, but not the failed fit's tensors
    import gc
    import weakref

    X, y = data32
    reg = TorchSGDRegressor(max_iter=5).fit(X, y)
    before = pickle.dumps(reg)
    held = []

    def oom(*args, **kwargs):
        big = torch.empty(1000, 1000)
        held.append(weakref.ref(big))
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(TorchSGDRegressor, "_train", oom)
    with pytest.raises(MemoryError, match="Out of memory while fitting") as info:
        reg.fit(X, y)
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    gc.collect()
    assert held[0]() is None  # freed although the exception is still held
    assert pickle.dumps(reg) == before
