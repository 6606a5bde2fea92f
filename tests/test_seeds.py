"""The seed tutorials' printed traces, reproduced by TorchSGDRegressor.

Conversions (see /examples): the seeds minimise torch's MSELoss, the mean of
(y - p)^2 over samples and outputs, and we minimise the mean over samples of
(y - p)^2 / 2, averaged over outputs in ``loss_curve_``. So a seed's loss is
``2 * loss_curve_`` and its learning rate ``lr`` is our ``eta0 = 2 lr / k``
with k outputs.
"""

import numpy as np
import pytest

from sklearn_gd import TorchSGDRegressor


def plain_gd(eta0, max_iter, **kw):
    return TorchSGDRegressor(
        penalty=None,
        learning_rate="constant",
        eta0=eta0,
        max_iter=max_iter,
        tol=None,
        **kw,
    )


# ------------------------------------------------------------------ seed 000
SEED000_LOSSES = [21.75, 9.359808, 4.027862335488, 1.733334166004564]
SEED000_LOSSES.append(0.7459160916617404)
# W2 (16 x 4) after step 4 is the outer product of x with a 4-vector (every
# gradient is), printed to 4 decimals; its rows for x = -16 and x = 14
SEED000_W2_FIRST = [-0.0204, -0.0306, -0.0511, -0.0715]
SEED000_W2_LAST = [0.0179, 0.0268, 0.0447, 0.0626]


@pytest.fixture(scope="module")
def seed000():
    x = np.arange(-16, 16, 2, dtype=np.float64).reshape(1, -1)
    y = np.array([[2.0, 3.0, 5.0, 7.0]])
    reg = plain_gd(2 * 0.0005 / 4, 5, fit_intercept=False, record_history=True)
    return x, y, reg.fit(x, y)


def test_seed000_losses(seed000):
    _, _, reg = seed000
    # float64 with the same operations up to summation order: 1e-12 relative
    np.testing.assert_allclose(
        2 * np.asarray(reg.loss_curve_), SEED000_LOSSES, rtol=1e-12
    )


def test_seed000_weight_matrix(seed000):
    x, y, reg = seed000
    assert reg.coef_.shape == (4, 16) and reg.coef_.dtype == np.float64
    W2 = reg.coef_.T  # the seed's (16, 4) layout
    np.testing.assert_array_equal(np.round(W2[0], 4), SEED000_W2_FIRST)
    np.testing.assert_array_equal(np.round(W2[-1], 4), SEED000_W2_LAST)
    # the middle row multiplies x = 0: never updated
    np.testing.assert_array_equal(W2[8], 0.0)
    # closed form: with one sample, W_t = x^T v_t, v_t = (1 - (1 - c)^t) y / |x|^2
    # where c = eta0 |x|^2
    xx = float((x @ x.T)[0, 0])
    c = reg.eta0_ * xx
    v = (1 - (1 - c) ** 5) * y[0] / xx
    np.testing.assert_allclose(W2, np.outer(x[0], v), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(reg.coef_path_[-1], reg.coef_)


# ------------------------------------------------------------------ seed 001
SEED001_TORCH = [
    (0.300, 30.00000000), (0.772, 15.66018772), (1.113, 8.17471695),
    (1.359, 4.26725292), (1.537, 2.22753215), (1.665, 1.16278565),
    (1.758, 0.60698116), (1.825, 0.31684780), (1.874, 0.16539653),
    (1.909, 0.08633806),
]  # fmt: skip


@pytest.fixture(scope="module")
def seed001():
    X = np.array([[1], [2], [3], [4]], dtype=np.float32)
    y = 2 * X[:, 0]
    return X, plain_gd(2 * 0.01, 20, fit_intercept=False, record_history=True).fit(X, y)


def test_seed001_torch_trace(seed001):
    _, reg = seed001
    assert reg.coef_.dtype == np.float32
    for i, (w_seed, loss_seed) in enumerate(SEED001_TORCH):
        epoch = 2 * i  # the seed prints epochs 1, 3, ..., 19
        # 3 decimals: the exact iterates lie >= 750 float32 ulps from a
        # rounding boundary of the third decimal, so no rounding flips them
        assert f"{reg.coef_path_[epoch, 0]:.3f}" == f"{w_seed:.3f}"
        # float32: both runs round differently, and the order of the 4-term
        # sums is the CPU's (its vector width). Emulated in numpy float32,
        # pairwise or reversed sums move the late losses by up to 14 eps from
        # the seed's, in-order sums by 0.2 eps: each late loss is a residual
        # (2 - w)^2 with 2 - w ~ 0.1, so the iterate's rounding (ulps of
        # w ~ 1.9, accumulated over steps contracting by 0.85) weighs ~20x
        # more in it than in w. 4 eps held on one CPU's order only: 32 eps
        loss = 2 * reg.loss_curve_[epoch]
        # (pytest >= 9 takes only Python numbers as tolerances)
        rel = 32 * float(np.finfo(np.float32).eps)
        assert loss == pytest.approx(loss_seed, rel=rel)


def test_seed001_prediction(seed001):
    _, reg = seed001
    pred = reg.predict(np.array([[5.0]], dtype=np.float32))
    assert pred.dtype == np.float32
    assert f"{pred[0]:.5f}" == "9.61241"


def test_seed001_numpy_trace():
    # the seed's numpy "gradient" sums over the 4 samples: a 4x larger step
    X = np.array([[1], [2], [3], [4]], dtype=np.float32)
    reg = plain_gd(2 * 4 * 0.01, 10, fit_intercept=False).fit(X, 2 * X[:, 0])
    assert f"{reg.predict([[5.0]])[0]:.5f}" == "9.99895"
