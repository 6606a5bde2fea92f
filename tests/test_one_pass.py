"""The compiled one-pass kernel (``sklearn_gd/objective/_rowpass.c``): the same losses,
gradients and fits as torch's two products, for every loss it computes."""

import numpy as np
import pytest
import torch

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor
from sklearn_gd.model._losses import (
    CLASSIFICATION_LOSSES,
    LOSSES,
    Huber,
    LogLoss,
    SquaredError,
)
from sklearn_gd.objective import _one_pass
from sklearn_gd.objective._oracles import DirectOracle

pytestmark = pytest.mark.skipif(
    _one_pass._rowpass is None,
    reason="the compiled extension was not built (no C compiler at install)",
)

KERNEL_LOSSES = [
    pytest.param(registry[name](0.3, 0.3), kind, id=f"{kind}-{name}")
    for registry, kind in ((LOSSES, "regression"), (CLASSIFICATION_LOSSES, "margin"))
    for name in registry
]

# float64: the kernel's sums run in another order than torch's (rows four at
# a time, blocks of 64, float64 totals), a few ulps of the sums' magnitude;
# float32: both accumulate rows' products in float32 (torch within its
# blocked GEMV, the kernel within blocks of 64 rows), about sqrt(n) eps
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5}


def _torch_path(oracle, theta, idx):
    one_pass, oracle._one_pass = oracle._one_pass, None
    try:
        return oracle.loss_grad(theta, idx)
    finally:
        oracle._one_pass = one_pass


def _relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _problem(loss, kind, dtype, n=2003, d=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    if kind == "regression":
        Y = torch.randn(n, 1, generator=g, dtype=dtype)
    else:
        Y = torch.randn(n, 1, generator=g, dtype=dtype).sign()
    sw = torch.rand(n, generator=g, dtype=dtype)
    theta = torch.randn(d + 1, 1, generator=g, dtype=dtype)
    return X, Y, sw, theta


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss, kind", KERNEL_LOSSES)
def test_one_pass_is_torchs_two_products(loss, kind, dtype):
    X, Y, sw, theta = _problem(loss, kind, dtype)
    rows = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(1))
    for weights in (None, sw):
        for fit_intercept in (True, False):
            th = theta if fit_intercept else theta[:-1].clone()
            oracle = DirectOracle(X, Y, weights, loss, fit_intercept=fit_intercept)
            assert oracle._one_pass is not None
            for idx in (oracle.full_batch(), slice(5, 68), rows[:777]):
                values, weight, grad = oracle.loss_grad(th, idx)
                want_values, want_weight, want_grad = _torch_path(oracle, th, idx)
                assert grad.shape == want_grad.shape and grad.dtype == dtype
                assert _relative(values, want_values) <= TOLERANCE[dtype]
                assert _relative(grad, want_grad) <= TOLERANCE[dtype]
                assert float(weight) == float(want_weight)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss, kind", KERNEL_LOSSES)
def test_one_pass_losses_row_by_row_across_their_range(loss, kind, dtype):
    """Each row's loss and derivative, at predictions from -200 to 200 (the
    logistic loss's exp and log1p are the kernel's own polynomials; its
    float64 figures match torch's to 1e-14 relative, float32 to 3e-7)."""
    p = torch.tensor(
        [-200, -87.5, -30, -20.5, -3, -1, -0.3, -1e-9, 0, 1e-9, 0.3, 1, 3, 20.5,
         30, 87.5, 200], dtype=torch.float64,
    )
    p = torch.cat([p, torch.linspace(-6, 6, 101, dtype=torch.float64)])
    n = p.shape[0]
    y = torch.full((n, 1), 0.25, dtype=dtype) if kind == "regression" else (
        torch.ones(n, 1, dtype=dtype))
    X = p.to(dtype)[:, None]
    theta = torch.tensor([[1.0], [0.0]], dtype=dtype)
    oracle = DirectOracle(X, y, None, loss)
    rtol = 1e-14 if dtype == torch.float64 else 3e-7
    # beyond |z| = 87 (float32) the logistic loss and its derivative are
    # subnormal: a few units of the least subnormal apart
    atol = 8 * float(torch.finfo(dtype).smallest_normal) * float(torch.finfo(dtype).eps)
    for i in range(n):
        values, _, grad = oracle.loss_grad(theta, slice(i, i + 1))
        want_values, _, want_grad = _torch_path(oracle, theta, slice(i, i + 1))
        if isinstance(loss, LogLoss):
            # torch's softplus returns z itself beyond z = 20 (its threshold),
            # dropping log1p(exp(-z)) < 2.1e-9, which the kernel keeps: the
            # reference is logaddexp(0, z)
            z = -y[i] * X[i].to(torch.float64)
            want_values = torch.logaddexp(torch.zeros_like(z), z).to(dtype)
        for got, want in ((values, want_values), (grad[1], want_grad[1])):
            assert torch.allclose(got, want, rtol=rtol, atol=atol), (float(p[i]),)


def test_threads_split_rows_and_repeat_exactly(monkeypatch):
    X, Y, sw, theta = _problem(Huber(0.3), "regression", torch.float32, n=4001)
    oracle = DirectOracle(X, Y, sw, Huber(0.3))
    # a pass this small runs on one thread unless the threshold is lowered
    monkeypatch.setattr(_one_pass, "THREADED_ELEMENTS", 1000)
    rows = torch.randperm(4001, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    results = {}
    try:
        for count in (1, 2, 3, 2):
            torch.set_num_threads(count)
            for name, idx in (("all", oracle.full_batch()), ("some", rows[:3001])):
                got = oracle.loss_grad(theta, idx)
                if (count, name) in results:  # the same split repeats exactly
                    want = results[count, name]
                    assert torch.equal(got[0], want[0])
                    assert torch.equal(got[2], want[2])
                results[count, name] = got
    finally:
        torch.set_num_threads(threads)
    for count in (2, 3):
        for name in ("all", "some"):
            one, many = results[1, name], results[count, name]
            assert _relative(many[0], one[0]) <= TOLERANCE[torch.float32]
            assert _relative(many[2], one[2]) <= TOLERANCE[torch.float32]


def test_a_loss_that_redefines_its_derivative_gets_no_kernel():
    class Doubled(SquaredError):
        def derivative(self, y, p):
            return 2 * (p - y)

    assert SquaredError().row_kernel() == (0, 0.0)
    assert Doubled().row_kernel() is None
    X, Y, _, _ = _problem(Doubled(), "regression", torch.float64)
    assert DirectOracle(X, Y, None, Doubled())._one_pass is None


def test_where_the_kernel_does_not_apply():
    X, Y, sw, _ = _problem(Huber(), "regression", torch.float64)
    assert _one_pass.one_pass_for(X, torch.cat([Y, Y], 1), None, Huber()) is None
    assert _one_pass.one_pass_for(X.float(), Y, None, Huber()) is None
    assert _one_pass.one_pass_for(X.T, Y[:7], None, Huber()) is None
    assert _one_pass.one_pass_for(X.half(), Y.half(), None, Huber()) is None
    assert _one_pass.one_pass_for(X, Y, sw.float(), Huber()) is None
    assert _one_pass.one_pass_for(X, Y, sw, Huber()) is not None


@pytest.mark.parametrize(
    "Estimator, loss",
    [(TorchSGDRegressor, "huber"), (TorchSGDClassifier, "log_loss")],
)
@pytest.mark.parametrize(
    "options",
    [
        dict(optimizer="sgd", eta0=0.01),  # steps in place (loss_descend_)
        dict(optimizer="sgd", eta0=0.01, batch_size=512),
        dict(optimizer="lbfgs", tol=1e-10),  # gradients (loss_grad)
    ],
    ids=["sgd-full", "sgd-512", "lbfgs"],
)
def test_fits_agree_with_and_without_the_kernel(Estimator, loss, options,
                                                monkeypatch):
    """A fit through the kernel and one through torch's products take the
    same steps up to rounding (float64: the coefficients agree to 1e-10).
    L-BFGS's line search also reads the loss's value, where the logistic
    loss differs by up to 2e-9 a row beyond z = 20 (torch's softplus drops
    log1p(exp(-z)) there, the kernel keeps it), and its steps are choices
    that rounding can flip (20 unconverged iterations moved by 1.2e-8 when
    the rows were permuted): L-BFGS runs to tol=1e-10 instead, and the two
    fits meet through the optimum."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 20))
    y = X @ rng.standard_normal(20) + rng.standard_normal(3000)
    if Estimator is TorchSGDClassifier:
        y = (y > 0).astype(int)
    kw = dict(loss=loss, random_state=0, max_iter=20, tol=None)
    kw.update(options, max_iter=500 if options["optimizer"] == "lbfgs" else 20)
    calls = []
    call = _one_pass.OnePass.__call__
    monkeypatch.setattr(
        _one_pass.OnePass,
        "__call__",
        lambda self, *args: calls.append(1) or call(self, *args),
    )
    fast = Estimator(**kw).fit(X, y)
    # every epoch's batches went through the kernel
    assert len(calls) >= 20 * -(-3000 // options.get("batch_size", 3000))
    monkeypatch.setattr(_one_pass, "_rowpass", None)
    slow = Estimator(**kw).fit(X, y)
    if options["optimizer"] == "lbfgs":
        # each stops at a relative optimality measure of 1e-10, which the
        # weak curvature of these losses (Huber with epsilon=0.1 is quadratic
        # on ~8% of the rows, alpha=1e-4) turns into coefficient gaps to the
        # optimum measured <= 1.1e-8 (against Newton at tol=1e-12, with 1
        # and 2 threads, kernel or torch, rows permuted): 1e-7 between the
        # two fits, coefficients of order 0.05 to 3
        tol = dict(rtol=0, atol=1e-7)
    else:
        # the same fixed 20 epochs of steps <= 1/L (non-expansive), each
        # step's gradient a sum of 3000 rows in another order: measured
        # 4.7e-14 relative (1 thread vs 2, kernel vs torch, rows permuted);
        # 1e-10 leaves a factor of 2000 for other CPUs' vector widths
        tol = dict(rtol=1e-10, atol=1e-12)
        assert fast.n_iter_ == slow.n_iter_
    np.testing.assert_allclose(fast.coef_, slow.coef_, **tol)
    np.testing.assert_allclose(fast.intercept_, slow.intercept_, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss, kind", KERNEL_LOSSES)
def test_a_nan_prediction_gives_what_torch_gives(loss, kind, dtype):
    """A row whose prediction is NaN (say, x'w overflowed) makes the loss NaN
    and the derivative what torch's definition makes it, as it is NaN or
    not: the divergence checks read the loss."""
    X = torch.tensor([[float("nan")], [0.5]], dtype=dtype)
    y = torch.tensor([[1.0], [1.0]], dtype=dtype)
    theta = torch.tensor([[1.0], [0.0]], dtype=dtype)
    oracle = DirectOracle(X, y, None, loss)
    values, _, grad = oracle.loss_grad(theta, slice(0, 1))
    want_values, _, want_grad = _torch_path(oracle, theta, slice(0, 1))
    assert torch.isnan(values).all() and torch.isnan(want_values).all()
    assert torch.equal(torch.isnan(grad), torch.isnan(want_grad))
    finite = ~torch.isnan(want_grad)
    assert torch.equal(grad[finite], want_grad[finite])


def test_rows_are_checked_before_the_extension_reads_them():
    X, Y, _, theta = _problem(Huber(), "regression", torch.float64, n=10)
    one_pass = DirectOracle(X, Y, None, Huber())._one_pass
    values, grad = one_pass(theta, slice(8, 12), True)  # as X[8:12]: rows 8, 9
    want_values, want_grad = one_pass(theta, torch.tensor([8, 9]), True)
    assert torch.allclose(values, want_values) and torch.allclose(grad, want_grad)
    values, grad = one_pass(theta, slice(0, 0), True)
    assert float(values) == 0 and not grad.any()
    with pytest.raises(IndexError, match=r"row number 10 outside 0 \.\. 9"):
        one_pass(theta, torch.tensor([3, 10]), True)
    with pytest.raises(IndexError, match=r"row number -1 outside 0 \.\. 9"):
        one_pass(theta, torch.tensor([-1]), True)
    # the extension checks a range of rows itself too
    w, y, grad = theta[:-1, 0].contiguous(), Y[:, 0].contiguous(), torch.zeros(8)
    with pytest.raises(IndexError, match=r"rows 8 \.\. 11 outside 0 \.\. 9"):
        _one_pass._rowpass.rowpass(
            *Huber().row_kernel(), True, X.data_ptr(), 10, 7, 7, 0, 8, 4,
            y.data_ptr(), 0, w.data_ptr(), 0.0, 1.0, grad.data_ptr(), 1,
        )
    with pytest.raises(ValueError, match="consecutive"):
        one_pass(theta, slice(0, 10, 2), True)
