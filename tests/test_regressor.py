"""TorchSGDRegressor: closed-form agreement, contracts, integration, errors."""

import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gd import DivergenceError, TorchSGDRegressor

# Settings that run full-batch gradient descent to the float precision: the
# Gram path makes each step O(d^2), so thousands of epochs cost milliseconds.
TIGHT = dict(tol=None, max_iter=3000, learning_rate="constant")


def _closed_form(X, Y, alpha):
    """Ridge on centred data in float64: our alpha times n is Ridge's alpha."""
    n = X.shape[0]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    A = Xc.T @ Xc + n * alpha * np.eye(X.shape[1])
    W = np.linalg.solve(A, Xc.T @ Yc)
    return W, Y.mean(0) - X.mean(0) @ W


# ------------------------------------------------------------- closed form
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("penalty,alpha", [(None, 0.0), ("l2", 0.1)])
def test_matches_closed_form(regression_data, dtype, multi, penalty, alpha):
    X, y = regression_data
    rng = np.random.RandomState(1)
    Y = np.c_[y, X @ rng.randn(5) - 2.0] if multi else y
    reg = TorchSGDRegressor(penalty=penalty, alpha=alpha, **TIGHT)
    reg.fit(X.astype(dtype), Y.astype(dtype))
    W, b = _closed_form(X, Y.reshape(200, -1), alpha)
    # two LAPACK solutions of one well-conditioned system (standardised
    # features: cond(X'X) < 10): they differ by ~eps * cond of the scale of
    # W, < 1e-14 absolute. A coefficient whose true value is 0 comes out
    # ~1e-4, where rtol=1e-10 alone allowed 1e-14 (measured 2e-15 apart on
    # this CPU): the bound is absolute, 1e-12 of W's scale
    atol = 1e-12 * np.abs(W).max()
    if penalty is None:
        W_ls = np.linalg.lstsq(np.c_[X, np.ones(200)], Y, rcond=None)[0]
        assert_allclose(W, W_ls[:-1].reshape(W.shape), rtol=1e-10, atol=atol)
    else:
        ridge = Ridge(alpha=alpha * 200, solver="cholesky").fit(X, Y)
        assert_allclose(W.T.squeeze(), ridge.coef_, rtol=1e-10, atol=atol)
    # 1e-4 relative: the bar. GD with step 1/L on this well-conditioned
    # problem reaches float32 resolution (~1e-6 relative) well within max_iter.
    coef = reg.coef_.T if multi else reg.coef_[:, None]
    assert_allclose(coef, W, rtol=1e-4, atol=1e-5)
    assert_allclose(reg.intercept_, np.atleast_1d(b), rtol=1e-4, atol=1e-5)
    assert reg.coef_.dtype == dtype and reg.intercept_.dtype == dtype
    assert reg.predict(X.astype(dtype)).dtype == dtype


def test_minibatch_reaches_ridge(regression_data):
    X, y = regression_data
    reg = TorchSGDRegressor(
        alpha=0.01,
        batch_size=20,
        random_state=0,
        tol=None,
        max_iter=300,
        learning_rate="invscaling",
        power_t=0.5,
        average=True,
    ).fit(X, y)
    ridge = Ridge(alpha=0.01 * 200).fit(X, y)
    # averaged SGD converges at O(1/t): 300 epochs of 10 steps gets ~1e-3
    assert_allclose(reg.coef_, ridge.coef_, rtol=2e-2, atol=2e-2)


def test_multioutput_equals_separate_fits(regression_data):
    X, y = regression_data
    Y = np.c_[y, -y + X[:, 0], 2 * y]
    params = dict(max_iter=50, tol=None, learning_rate="constant")
    joint = TorchSGDRegressor(**params).fit(X, Y)
    assert joint.coef_.shape == (3, 5) and joint.intercept_.shape == (3,)
    for j in range(3):
        single = TorchSGDRegressor(**params).fit(X, Y[:, j])
        # the same iterates; only summation order differs. 50 steps <= 1/L
        # (non-expansive) each add a few ulps of the iterates' scale (up to
        # 3): < 1e-13 absolute. That rounding is absolute, not relative to
        # each coefficient, and one of them is 9e-5 (its true value is 0),
        # where rtol=1e-10 alone allowed 9e-15: hence 1e-12 of the scale
        # (measured 2e-13 relative on the coefficients, 1 and 2 threads)
        atol = 1e-12 * np.abs(single.coef_).max()
        assert_allclose(joint.coef_[j], single.coef_, rtol=1e-10, atol=atol)
        assert_allclose(joint.intercept_[j], single.intercept_[0], rtol=1e-10)


def test_single_output_shapes(regression_data):
    X, y = regression_data
    reg = TorchSGDRegressor().fit(X, y)
    assert reg.coef_.shape == (5,) and reg.intercept_.shape == (1,)
    assert reg.predict(X).shape == (200,)
    # a column vector is flattened with a warning, as SGDRegressor does: a
    # (200, 1) prediction would broadcast y - predict(X) to (200, 200)
    for target in (y[:, None], torch.from_numpy(y[:, None])):
        Xin = X if isinstance(target, np.ndarray) else torch.from_numpy(X)
        with pytest.warns(DataConversionWarning, match="column-vector y"):
            reg2 = TorchSGDRegressor().fit(Xin, target)
        assert reg2.coef_.shape == (5,) and reg2.intercept_.shape == (1,)
        assert reg2.predict(X).shape == (200,)
        # the same fit once y is flattened (measured bitwise equal)
        assert_allclose(reg2.coef_, reg.coef_, rtol=1e-12)
    # two outputs keep Ridge's shapes
    reg3 = TorchSGDRegressor().fit(X, np.c_[y, y])
    assert reg3.coef_.shape == (2, 5) and reg3.predict(X).shape == (200, 2)


@pytest.mark.parametrize(
    "params, atol",
    [
        # fixed-step full-batch descent: the same gradients up to summation
        # order, so the same path; not at the optimum after 40 epochs
        (dict(max_iter=40, tol=None, learning_rate="constant", eta0=0.05), None),
        # torch's L-BFGS stalls ~1e-9 from the optimum (measured 8e-10)
        (dict(optimizer="lbfgs", tol=1e-12), 1e-8),
        # the default's direct solve: exact up to rounding (measured 4e-15)
        (dict(), 1e-12),
    ],
)
def test_sample_weight_is_repetition(regression_data, params, atol):
    X, y = regression_data
    rng = np.random.RandomState(3)
    w = rng.randint(0, 4, size=200)
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w)
    a = TorchSGDRegressor(**params).fit(X, y, sample_weight=w)
    b = TorchSGDRegressor(**params).fit(Xr, yr)
    if params.get("optimizer") == "lbfgs":
        # weights and repeated rows sum in another order, and L-BFGS's path
        # (its line search's choices, its stopping epoch) follows rounding:
        # the two fits agree only through the optimum, each within the
        # solver's stopping precision ``atol`` of it (on an AMD EPYC they
        # differ by 2.7e-8 relative, where one CPU gave 1e-11)
        assert_allclose(a.coef_, b.coef_, rtol=0, atol=2 * atol)
        # the objective is flat at the optimum: points 2 atol apart have
        # values equal to second order, ~1e-16 relative, far below 1e-10
        assert_allclose(a.loss_curve_[-1], b.loss_curve_[-1], rtol=1e-10)
    else:
        # the same path: 40 contracting steps, or one direct solve, add up
        # float64 rounding (2e-16) times the condition number (~10 on these
        # standardised features) at most a few hundred times: far below 1e-10
        assert_allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)
        assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    if atol is not None:
        # the objective's minimiser: Ridge on the repeated rows (the mean
        # squared loss over sum(w) rows, so alpha scales by sum(w))
        ref = Ridge(alpha=1e-4 * w.sum(), solver="svd").fit(Xr, yr)
        assert_allclose(a.coef_, ref.coef_, rtol=0, atol=atol)
        assert_allclose(a.intercept_, [ref.intercept_], rtol=0, atol=atol)


def test_loss_curve_is_objective(regression_data):
    X, y = regression_data
    reg = TorchSGDRegressor(alpha=0.1, max_iter=3, tol=None, learning_rate="constant")
    reg.fit(X, y)
    # full batch: loss_curve_[0] is the objective at the zero start; torch
    # and numpy each sum 200 positive terms, within 200 u = 2.2e-14 of it
    assert_allclose(reg.loss_curve_[0], 0.5 * np.mean(y**2), rtol=1e-12)
    assert np.all(np.diff(reg.loss_curve_) < 0)
    assert reg.best_loss_ == min(reg.loss_curve_)


# ------------------------------------------------------------- determinism
def test_same_random_state_is_bit_identical(regression_data):
    X, y = regression_data
    params = dict(batch_size=16, random_state=42, max_iter=20, tol=None)
    a = TorchSGDRegressor(**params).fit(X, y)
    b = TorchSGDRegressor(**params).fit(X, y)
    assert_array_equal(a.coef_, b.coef_)
    assert_array_equal(a.intercept_, b.intercept_)
    c = TorchSGDRegressor(**{**params, "random_state": 7}).fit(X, y)
    assert not np.array_equal(a.coef_, c.coef_)


def test_no_global_torch_rng(regression_data):
    X, y = regression_data
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    TorchSGDRegressor(batch_size=8, random_state=0, max_iter=3).fit(X, y)
    assert torch.equal(torch.rand(1), before)


# ------------------------------------------------------------------- dtypes
def test_dtypes_and_containers(regression_data):
    pd = pytest.importorskip("pandas")
    X, y = regression_data
    params = dict(max_iter=20, tol=None)
    ref = TorchSGDRegressor(**params).fit(X, y).predict(X)
    # ints become float64
    Xi = np.round(X * 10).astype(np.int64)
    assert TorchSGDRegressor(**params).fit(Xi, y).coef_.dtype == np.float64
    # lists, pandas, F-ordered and read-only arrays give the same model: each
    # becomes the same C-ordered float64 array first, so the same arithmetic
    # in the same order (measured bitwise equal, with 1 and 2 threads; by
    # contrast, permuting the rows moves these predictions by 1.2e-13
    # relative, so 1e-12 would also catch a path that reorders the sums)
    for Xc in (
        X.tolist(),
        pd.DataFrame(X, columns=list("abcde")),
        np.asfortranarray(X),
    ):
        assert_allclose(
            TorchSGDRegressor(**params).fit(Xc, y).predict(X), ref, rtol=1e-12
        )
    Xro = X.copy()
    Xro.setflags(write=False)
    assert_allclose(
        TorchSGDRegressor(**params).fit(Xro, y).predict(Xro), ref, rtol=1e-12
    )
    df = pd.DataFrame(X, columns=list("abcde"))
    assert list(TorchSGDRegressor(**params).fit(df, y).feature_names_in_) == list(
        "abcde"
    )


def test_readonly_memmap(tmp_path, regression_data):
    X, y = regression_data
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    Xm = np.load(path, mmap_mode="r")
    reg = TorchSGDRegressor(max_iter=20, tol=None).fit(Xm, y.astype(np.float32))
    assert reg.predict(Xm).dtype == np.float32


# -------------------------------------------------------------- integration
def test_pipeline_grid_search_cross_val(regression_data):
    X, y = regression_data
    X = X * np.array([1e-2, 1, 10, 100, 1e3]) + 5.0
    pipe = make_pipeline(StandardScaler(), TorchSGDRegressor())
    search = GridSearchCV(
        pipe,
        {
            "torchsgdregressor__alpha": [1e-4, 1e-2],
            "torchsgdregressor__eta0": ["auto", 0.1],
        },
        n_jobs=2,
        cv=3,
    ).fit(X, y)
    assert search.best_score_ > 0.95
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.min() > 0.95


def test_clone_and_pickle(regression_data):
    X, y = regression_data
    reg = TorchSGDRegressor(batch_size=10, random_state=0, max_iter=10).fit(X, y)
    copy = pickle.loads(pickle.dumps(reg))
    assert_array_equal(copy.predict(X), reg.predict(X))
    # the pickle holds numpy, not tensors
    assert not any(isinstance(v, torch.Tensor) for v in vars(copy).values())
    fresh = clone(reg)
    assert not hasattr(fresh, "coef_")
    assert fresh.get_params() == reg.get_params()
    # clone + same random_state gives the same model
    assert_array_equal(fresh.fit(X, y).coef_, reg.coef_)


def test_warm_start_and_coef_init(regression_data):
    X, y = regression_data
    # gradient descent keeps no history: 5 + 5 warm epochs are 10 cold ones
    reg = TorchSGDRegressor(optimizer="sgd", max_iter=5, tol=None, warm_start=True)
    reg.fit(X, y)
    first = reg.coef_.copy()
    reg.fit(X, y)
    cold = TorchSGDRegressor(optimizer="sgd", max_iter=10, tol=None).fit(X, y)
    # the same ten steps on the same rows in the same order (measured
    # bitwise equal): 1e-10 is far below what one step more or less moves
    assert_allclose(reg.coef_, cold.coef_, rtol=1e-10)
    assert not np.allclose(first, reg.coef_)
    init = TorchSGDRegressor(max_iter=5, tol=None).fit(
        X, y, coef_init=first, intercept_init=cold.intercept_ * 0 + reg.intercept_
    )
    assert init.coef_.shape == (5,)


def test_partial_fit_continues(regression_data):
    X, y = regression_data
    reg = TorchSGDRegressor(learning_rate="constant")
    for _ in range(5):
        reg.partial_fit(X, y)
    full = TorchSGDRegressor(learning_rate="constant", max_iter=5, tol=None).fit(X, y)
    # five one-epoch calls on the full batch equal five epochs of fit: the
    # same steps in the same order (measured bitwise equal)
    assert_allclose(reg.coef_, full.coef_, rtol=1e-10)
    assert reg.t_ == 6 and reg.n_iter_ == 1 and len(reg.loss_curve_) == 5
    with pytest.raises(ValueError, match="5 features"):
        reg.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="output"):
        reg.partial_fit(X, np.c_[y, y])


# SGDRegressor's max_iter warning, word for word
SKLEARN_MAX_ITER = (
    "Maximum number of iteration reached before convergence. Consider "
    "increasing max_iter to improve the fit."
)


@pytest.mark.parametrize(
    "params",
    [
        dict(learning_rate="constant", eta0=1e-3),  # SGD's progress rule
        dict(loss="huber", tol=1e-12),  # a full-batch solver's measure
    ],
)
def test_convergence_warning(regression_data, params):
    """Whichever rule stops a fit at max_iter, the warning opens with
    scikit-learn's sentence, so filters and matches written for
    SGDRegressor catch it."""
    X, y = regression_data
    with pytest.warns(ConvergenceWarning, match=re.escape(SKLEARN_MAX_ITER)):
        reg = TorchSGDRegressor(max_iter=2, **params).fit(X, y)
    assert reg.n_iter_ == 2


@pytest.mark.parametrize(
    "params",
    [
        dict(),  # the normal equations: exact after one epoch
        dict(loss="huber"),  # Newton
        dict(loss="epsilon_insensitive"),  # the smoothing
        dict(penalty="l1"),  # FISTA
        dict(optimizer="sgd"),
    ],
)
def test_tol_none_runs_max_iter_epochs(regression_data, params):
    """tol=None is no stopping rule, as in SGDRegressor: exactly max_iter
    epochs, without a warning, whatever the solver (a full-batch solver at
    the optimum stays there); before, ``TorchSGDRegressor(max_iter=25,
    tol=None)`` stopped after 1 epoch."""
    X, y = regression_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg = TorchSGDRegressor(max_iter=25, tol=None, **params).fit(X, y)
    assert reg.n_iter_ == 25
    assert len(reg.loss_curve_) == 25
    ref = TorchSGDRegressor(**params).fit(X, y)
    assert reg.score(X, y) >= ref.score(X, y) - 1e-6


def test_tol_zero_trains_until_no_progress(regression_data):
    """tol=0 sets no threshold: as scikit-learn's tol=0 trains until the
    objective stops decreasing, the fit ends, converged and without a
    warning, once no step decreases it at the data's precision (not after
    max_iter epochs of rounding)."""
    X, y = regression_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg = TorchSGDRegressor(loss="huber", tol=0, max_iter=2000).fit(X, y)
    assert reg.n_iter_ < 100


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("average", [False, True])
def test_per_sample_sgd_is_sgdregressors(regression_data, sparse, average):
    """optimizer="sgd", batch_size=1 with SGDRegressor's schedule is its
    algorithm, step for step: on sparse X too, where scikit-learn damps the
    intercept's step by 0.01 (its SPARSE_INTERCEPT_DECAY), as ours now does.
    The same float64 operations in another order: 1e-10."""
    import scipy.sparse as sp
    from sklearn.linear_model import SGDRegressor

    X, y = regression_data
    X = sp.csr_matrix(X) if sparse else X
    params = dict(
        learning_rate="invscaling",
        eta0=0.01,
        power_t=0.25,
        alpha=1e-3,
        shuffle=False,
        max_iter=3,
        tol=None,
        average=average,
    )
    ref = SGDRegressor(**params).fit(X, y)
    reg = TorchSGDRegressor(optimizer="sgd", batch_size=1, **params).fit(X, y)
    assert_allclose(reg.coef_, ref.coef_, rtol=1e-10)
    assert_allclose(reg.intercept_, ref.intercept_, rtol=1e-10)


# ------------------------------------------------------------------- errors
def _fitted(regression_data):
    X, y = regression_data
    return TorchSGDRegressor(max_iter=20, tol=None).fit(X, y)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda X, y: (np.where(np.eye(200, 5, dtype=bool), np.nan, X), y), "NaN"),
        (lambda X, y: (np.where(np.eye(200, 5, dtype=bool), np.inf, X), y), "infinity"),
        (lambda X, y: (X, np.where(np.arange(200) == 3, np.nan, y)), "NaN"),
        (lambda X, y: (X[:0], y[:0]), "0 sample"),
        (lambda X, y: (X, y[:150]), "inconsistent numbers of samples"),
        # finite features whose squares overflow: float64 and float32
        (lambda X, y: (X * 1e160, y), "too large.*StandardScaler"),
        (lambda X, y: ((X * 1e19).astype(np.float32), y), "too large.*StandardScaler"),
    ],
    ids=["nan-X", "inf-X", "nan-y", "empty", "length-mismatch", "huge-64", "huge-32"],
)
@pytest.mark.parametrize("loss", ["squared_error", "huber"])
def test_bad_input_leaves_model_untouched(regression_data, mutate, match, loss):
    X, y = regression_data
    reg = _fitted(regression_data).set_params(loss=loss)
    before = pickle.dumps(reg)
    Xb, yb = mutate(X, y)
    with pytest.raises(ValueError, match=match):
        reg.fit(Xb, yb)
    assert pickle.dumps(reg) == before


def test_wrong_number_of_features_at_predict(regression_data):
    X, _ = regression_data
    reg = _fitted(regression_data)
    with pytest.raises(
        ValueError,
        match="X has 3 features, but TorchSGDRegressor is expecting 5 features",
    ):
        reg.predict(X[:, :3])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent(regression_data):
    X, y = regression_data
    reg = _fitted(regression_data)
    before = pickle.dumps(reg)
    with pytest.raises(ValueError, match="CUDA is not available"):
        reg.set_params(device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="CUDA is not available"):
        reg.set_params(device="cuda:1").fit(X, y)
    reg.set_params(device=None)
    assert pickle.dumps(reg) == before


def test_unknown_device_string(regression_data):
    X, y = regression_data
    with pytest.raises(ValueError, match="device='tpu' is not one of"):
        TorchSGDRegressor(device="tpu").fit(X, y)


def test_divergence_names_epoch_and_keeps_old_model(regression_data):
    X, y = regression_data
    reg = _fitted(regression_data)
    before = pickle.dumps(reg)
    reg.set_params(learning_rate="constant", eta0=1e3, max_iter=100)
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+.*smaller eta0"):
        reg.fit(X, y)
    reg.set_params(learning_rate="constant", eta0="auto", max_iter=20)
    assert pickle.dumps(reg.set_params(learning_rate="adaptive")) == before


def test_adaptive_recovers_from_too_large_step(regression_data):
    X, y = regression_data
    # the step shrinks by 5 after each diverging epoch before giving up
    reg = TorchSGDRegressor(eta0=50.0, tol=1e-8, max_iter=500).fit(X, y)
    assert np.isfinite(reg.coef_).all()
    assert reg.score(X, y) > 0.95


@pytest.mark.parametrize(
    "params,match",
    [
        (dict(learning_rate="optimal", alpha=0.0), "alpha must be > 0"),
        (dict(optimizer="lbfgs", penalty="l1"), "cannot handle the non-smooth"),
        (dict(loss="hinge"), "loss"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_invalid_parameters(regression_data, params, match):
    X, y = regression_data
    with pytest.raises(ValueError, match=match):
        TorchSGDRegressor(**params).fit(X, y)


def test_negative_sample_weight(regression_data):
    X, y = regression_data
    with pytest.raises(
        ValueError, match="Negative values in data passed to `sample_weight`"
    ):
        TorchSGDRegressor().fit(X, y, sample_weight=-np.ones(200))
    with pytest.raises(ValueError, match="at least one non-zero"):
        TorchSGDRegressor().fit(X, y, sample_weight=np.zeros(200))
