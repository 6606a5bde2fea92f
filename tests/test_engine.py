"""The training loop's named parts: restarts, the divergence guard and the
stopping rule."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_regression
from sklearn.preprocessing import StandardScaler

from sklearn_gd import TorchSGDRegressor
from sklearn_gd.engine._iterate import (
    DivergenceGuard,
    Iterate,
    Restarts,
)
from sklearn_gd.engine._records import TrainState
from sklearn_gd.engine._stopping import NoImprovement
from sklearn_gd.model._schedules import make_schedule
from sklearn_gd.objective._problem import Problem
from sklearn_gd.solvers._optimizers import make_solver


def _iterate(average):
    init = TrainState(
        coef=torch.zeros(3, 2, dtype=torch.float64),
        intercept=torch.zeros(2, dtype=torch.float64),
        t=1,
    )
    return Iterate(init, fit_intercept=True, average=average)


ONE = np.array([True])  # the one problem of a single fit


def _restarts(it, learning_rate="adaptive"):
    schedule = make_schedule(learning_rate, eta0=0.1, power_t=0.25, alpha=1e-4)
    solver = make_solver("adam")
    solver.start(it.theta, 0.1)
    problem = Problem(None, None, 3, 2, joint=False)
    return Restarts(it, schedule, solver, problem), schedule, solver


def test_restart_restores_parameters_update_count_and_average():
    it = _iterate(average=1)
    restarts, schedule, solver = _restarts(it)
    # one good epoch: two updates, the average follows
    for _ in range(2):
        it.theta.add_(1.0)
        it.advance()
    restarts.epoch_done(improved=ONE)
    good = it.snapshot()
    # a diverging epoch
    for _ in range(3):
        it.theta.mul_(1e300)
        it.advance()
    assert not math.isfinite(float(it.finite_check()))
    solver._opt.state[it.theta] = {"step": torch.tensor(3.0)}  # some state
    assert restarts.can_shrink().all()
    restarts.shrink(ONE)
    restarts.restart(ONE)
    # the start of the best epoch: zeros, t = 1, a zero average
    assert it.t == 1
    assert torch.equal(it.theta, torch.zeros_like(it.theta))
    assert torch.equal(it.averager.value, torch.zeros_like(it.theta))
    assert math.isfinite(float(it.finite_check()))
    # the epoch after a restart starts from the restored point
    assert restarts.epoch_start[1] == 1
    assert good[1] == 3
    # the step shrank and the solver starts afresh
    assert schedule.eta0 == pytest.approx(0.02) and solver.state_dict()["state"] == {}


def test_only_an_adaptive_step_above_its_floor_can_shrink():
    it = _iterate(average=0)
    constant, _, _ = _restarts(it, learning_rate="constant")
    assert not constant.can_shrink().any()  # a divergence fails the fit
    adaptive, schedule, _ = _restarts(it)
    for _ in range(8):  # 0.1 / 5**7 > 1e-6, the floor; 0.1 / 5**8 below
        assert adaptive.can_shrink().all()
        adaptive.shrink(ONE)
    assert not adaptive.can_shrink().any()
    assert schedule.eta0 == pytest.approx(0.1 / 5**8)


def test_restart_goes_back_only_for_the_problems_asked():
    it = _iterate(average=0)
    restarts, _, _ = _restarts(it)
    it.theta.add_(1.0)
    restarts.restart(~ONE)
    assert it.theta[0, 0] == 1.0  # stays
    restarts.restart(ONE)
    assert it.theta[0, 0] == 0.0  # back to the best checkpoint


def test_finite_check_sees_the_average():
    it = _iterate(average=1)
    it.averager.value[0, 0] = float("nan")
    assert math.isnan(float(it.finite_check()))


def test_averaged_sgd_restart_never_returns_nan():
    # A too-large step on unscaled data diverges in the first epochs; the
    # restarts used to reset the parameters but not the running average,
    # and the fit returned NaN coefficients without an error.
    X, y = make_regression(500, 5, noise=1, random_state=0)
    X = 10 * StandardScaler().fit_transform(X)
    reg = TorchSGDRegressor(
        eta0=1.0, batch_size=1, average=True, max_iter=5, tol=None, random_state=0
    ).fit(X, y)
    assert np.isfinite(reg.coef_).all() and np.isfinite(reg.intercept_).all()
    # after the step has shrunk, five averaged epochs fit the noise-1 signal
    assert reg.score(X, y) > 0.999
    # t_ counts the updates behind the kept parameters: whole epochs of 500,
    # not the ones a restart discarded
    assert (reg.t_ - 1) % 500 == 0 and reg.t_ <= 5 * 500 + 1


@pytest.mark.parametrize(
    "history, loss, param_sum, diverged",
    [
        ([], 1.0, 0.0, False),
        ([], float("nan"), 0.0, True),
        ([], 1.0, float("inf"), True),
        # a first epoch far above the zero model (2.0) is not divergence
        ([], 1e6, 0.0, False),
        # far above the zero model, and 10 x the best epoch: divergence
        ([1e3], 1.01e4, 0.0, True),
        ([1e3], 9.9e3, 0.0, False),  # under 10 x the best
        ([1.0], 1.9e3, 0.0, False),  # 10 x the best, but under 1000 x zero
        ([1e6, 5e5], 8e5, 0.0, False),  # noise on the way down
    ],
)
def test_divergence_guard(history, loss, param_sum, diverged):
    guard = DivergenceGuard(zero_model_loss=2.0)

    def check(value, total):
        return bool(guard.diverged(np.array([value]), ~np.isfinite([total]))[0])

    assert not any(check(h, 0.0) for h in history)
    assert check(loss, param_sum) is diverged


def test_divergence_guard_judges_each_problem_of_a_batch():
    guard = DivergenceGuard(zero_model_loss=np.array([2.0, 2.0, 0.0]))
    first = guard.diverged(np.array([1e3, 1.0, 1e9]), np.zeros(3, bool))
    assert not first.any()  # a zero model at 0: no limit
    out = guard.diverged(np.array([1.01e4, 1.0, 1e12]), np.array([0, 1, 0], bool))
    np.testing.assert_array_equal(out, [True, True, False])


def test_sklearn_sgd_path_is_not_divergence():
    # SGDClassifier's own path (per-sample steps, the "optimal" schedule) on
    # raw breast_cancer starts at an objective ~2000 times the zero model's
    # and comes down; sklearn completes it (accuracy 0.90), so must we
    from sklearn.datasets import load_breast_cancer

    from sklearn_gd import TorchSGDClassifier

    X, y = load_breast_cancer(return_X_y=True)
    clf = TorchSGDClassifier(
        batch_size=1, learning_rate="optimal", random_state=0, max_iter=3, tol=None
    ).fit(X, y)
    assert clf.loss_curve_[0] > 1e3 * np.log(2)  # the guard's old limit
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert np.isfinite(clf.coef_).all()


def _rule(tol, n_iter_no_change, n_units=1):
    rule = NoImprovement(tol=tol, n_iter_no_change=n_iter_no_change)
    problem = Problem(None, None, 1, 1, joint=False)
    problem.n_units = n_units
    rule.bind(problem, None)
    return rule


def _a(*values):
    return np.array(values, dtype=np.float64)


def test_no_improvement_rule():
    rule = _rule(tol=0.1, n_iter_no_change=2)
    assert not rule.update(_a(10.0), None)[0]
    assert not rule.update(_a(9.95), None)[0]  # less than tol of progress: 1
    assert rule.update(_a(9.99), None)[0]  # 2 in a row: stalled
    rule.reset()
    assert not rule.update(_a(5.0), None)[0]  # progress resets the count
    assert rule.best_loss[0] == 5.0
    # with validation scores, progress is a score above best + tol
    rule = _rule(tol=0.0, n_iter_no_change=1)
    assert not rule.update(_a(1.0), _a(0.5))[0]
    assert rule.update(_a(1.0), _a(0.4))[0]
    assert rule.best_score[0] == 0.5
    # tol=None never stalls
    rule = _rule(tol=None, n_iter_no_change=1)
    assert not any(rule.update(_a(1.0), None)[0] for _ in range(5))


def test_no_improvement_rule_judges_each_problem_of_a_batch():
    rule = _rule(tol=0.1, n_iter_no_change=1, n_units=3)
    rule.update(_a(10.0, 10.0, 10.0), None)
    on = np.array([True, True, False])  # the third sits this epoch out
    stalled = rule.update(_a(5.0, 9.95, 9.0), None, on=on)
    np.testing.assert_array_equal(stalled, [False, True, False])
    np.testing.assert_array_equal(rule.best_loss, [5.0, 9.95, 10.0])
    rule.reset(np.array([False, True, False]))
    np.testing.assert_array_equal(rule.count, [0, 0, 0])


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_gram_statistics_match_float64_moments(monkeypatch, offset):
    """The squared loss's one-pass statistics (chunked products of float32 X,
    summed in float64; several chunks and a ragged last one here) equal the
    float64 moments. Offsets swamping the variance take the two centred
    passes instead. Tolerance: float32 products over 512-row chunks,
    rounding ~ 6e-8 x sqrt(512) relative to E[x^2] ~ 1 (or to the centred
    moments, on the centred path)."""
    from sklearn_gd.objective import _gram as _oracles
    from sklearn_gd.objective._gram import GramOracle

    monkeypatch.setattr(_oracles, "BLOCK_BYTES", 512 * 7 * 4)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((3001, 7)) + offset).astype(np.float32)
    Y = rng.standard_normal((3001, 2)).astype(np.float32) + 5.0
    oracle = GramOracle(torch.from_numpy(X), torch.from_numpy(Y), None)
    A = np.c_[X.astype(np.float64), np.ones(len(X))]
    Yd = Y.astype(np.float64)
    tol = dict(rtol=3e-6, atol=3e-6)
    np.testing.assert_allclose(oracle.A.numpy(), A.T @ A / len(X), **tol)
    np.testing.assert_allclose(oracle.C.numpy(), A.T @ Yd / len(X), **tol)
    np.testing.assert_allclose(oracle.yy.numpy(), (Yd**2).mean(0), rtol=1e-6)


def _oracle_pair(batch_size, k=1, seed=0):
    """A sparse oracle and a dense one on the same float64 rows (a third of
    the entries non-zero), shuffled by equally seeded generators."""
    import scipy.sparse as sp

    from sklearn_gd.model._losses import Huber
    from sklearn_gd.objective._direct import DirectOracle
    from sklearn_gd.objective._sparse import SparseOracle

    rng = np.random.default_rng(seed)
    Xs = sp.random(157, 23, density=0.3, format="csr", random_state=seed)
    Y = torch.from_numpy(rng.standard_normal((157, k)))
    kw = dict(batch_size=batch_size, shuffle=True, fit_intercept=True)
    sparse = SparseOracle(
        Xs,
        Y,
        None,
        Huber(1.0),
        device=torch.device("cpu"),
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(1),
        **kw,
    )
    dense = DirectOracle(
        torch.from_numpy(Xs.toarray()),
        Y,
        None,
        Huber(1.0),
        generator=torch.Generator().manual_seed(1),
        **kw,
    )
    theta = torch.from_numpy(rng.standard_normal((24, k)))
    return sparse, dense, theta


@pytest.mark.parametrize("k", [1, 3])
def test_sparse_shuffled_batches_match_dense(monkeypatch, k):
    """Shuffled sparse batches, gathered in blocks of several batches (here
    blocks of 3 batches of 10 rows, the last block and batch ragged) and
    multiplied through the scatter-add transpose, give the dense oracle's
    values and gradients on the same rows. float64 throughout: the two
    differ only by summation order (1e-14)."""
    from sklearn_gd.objective import _sparse as _oracles

    monkeypatch.setattr(_oracles, "CHUNK_ROWS", 30)
    sparse, dense, theta = _oracle_pair(10, k)
    pairs = list(zip(sparse.batches(), dense.batches(), strict=True))
    assert len(pairs) == 16
    for sb, db in pairs:
        assert torch.equal(sparse._index(sb), db)
        v1, w1, g1 = sparse.loss_grad(theta, sb)
        v2, w2, g2 = dense.loss_grad(theta, db)
        assert w1 == w2
        # sums of 10 rows' terms (and of 23 features' products inside
        # them) in another order: a few times 33 u = 3.7e-15 of the terms'
        # magnitudes, which are of order 1 here (standard normal X): 1e-14
        # absolute plus 1e-13 relative (measured 3.3e-16 and 5.6e-17, both
        # with another BLAS kernel and one thread)
        torch.testing.assert_close(v1, v2, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(g1, g2, rtol=1e-13, atol=1e-14)


def test_csr_transpose_products():
    """``X_b' V`` by scatter-add equals the dense product for a vector, one
    column, several columns, and into a non-contiguous output."""
    sparse, _, _ = _oracle_pair(10)
    rows = torch.arange(20, 40)
    Xb, XbT = sparse._rows(rows)
    A = Xb.to_dense().T
    rng = np.random.default_rng(3)

    def within_rounding(got, want, V, plus=0.0):
        # two sums of the same 20 products in any order: each within
        # 20 u |A| |V| of the exact value (u = 2^-53), whatever the CPU's
        # order (measured: 1.3e-15 apart, 1/25 of the old 1e-14 + 1e-14 |x|)
        bound = 2 * 21 * 2.0**-53 * (A.abs() @ V.abs() + plus)
        assert bool(((got - want).abs() <= bound).all()), (got - want).abs().max()

    for shape in [(20,), (20, 1), (20, 4)]:
        V = torch.from_numpy(rng.standard_normal(shape))
        within_rounding(XbT @ V, A @ V, V)
    V = torch.from_numpy(rng.standard_normal((20, 4)))
    out = torch.ones(4, 23, dtype=torch.float64).T  # non-contiguous
    XbT.add_product_(out, V)
    within_rounding(out, 1 + A @ V, V, plus=1.0)
    with pytest.raises(RuntimeError, match="float32"):
        XbT @ V.float()


@pytest.mark.parametrize("on_host", [True, False])
@pytest.mark.parametrize("which", ["sparse", "dense"])
@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("lr", [0.05, 2e4])
def test_descent_in_place_is_the_gradient_step(
    monkeypatch, which, k, lr, lazy, on_host
):
    """A host batch's step taken in place (the data term's product added
    into the coefficients, by scatter for a sparse batch, by one GEMM for a
    dense one (one column) or its transposed form (three); the L2 part as a
    scaling, kept pending under ``lazily`` for a sparse one) is the plain
    step on the same rows, objective included: the coefficients scaled by
    ``max(0, 1 - lr * l2)``, then ``-lr`` times the data term's gradient (as
    scikit-learn steps); lr * l2 >= 1 (here 2e4 * 1e-4 = 2) zeroes them
    first, where an explicit L2 gradient step would flip them and grow
    (factor -1), and takes the plain step. ``on_host=False``
    keeps the objective a tensor, as on an accelerator (no read per batch).
    float64: summation order and the pending scale's rounding."""
    import contextlib

    from sklearn_gd.objective import _problem as _engine
    from sklearn_gd.objective._problem import Problem

    monkeypatch.setattr(_engine, "reads_on_host", lambda t: on_host)
    from sklearn_gd.model._penalties import make_penalty

    sparse, dense, theta = _oracle_pair(10, k)
    _, reference, _ = _oracle_pair(10, k)  # the same rows, batches, order
    oracle = sparse if which == "sparse" else dense
    assert oracle.descends_in_place
    penalty = make_penalty("l2", alpha=1e-4, l1_ratio=0.0)
    ps, pd = (Problem(o, penalty, 23, k, joint=False) for o in (oracle, reference))
    th_s, th_d = theta.clone(), theta.clone()
    ours, theirs = [], []
    with ps.lazily(th_s) if lazy else contextlib.nullcontext():
        for sb, db in zip(oracle.batches(), reference.batches(), strict=True):
            ours.append(ps.descend_(th_s, sb, lr))
            obj_d, w_d, grad = pd.evaluate(th_d, db, with_l2=False)
            th_d[:23] *= max(0.0, 1.0 - lr * 1e-4)
            th_d -= lr * grad
            theirs.append((float(obj_d), w_d))
        if lazy and lr < 1:  # the scaling was pending, for sparse steps only
            assert (ps._scale < 1) == (which == "sparse")
    for (obj_s, w_s), (obj_d, w_d) in zip(ours, theirs, strict=True):
        assert w_s == w_d
        if lr < 1:  # the in-place step: a float read on the host, else a tensor
            assert isinstance(obj_s, torch.Tensor) != on_host
        assert float(obj_s) == pytest.approx(obj_d, rel=1e-13, abs=0)
    torch.testing.assert_close(th_s, th_d, rtol=1e-12, atol=1e-12)


def test_sparse_epochs_run_on_one_torch_thread(monkeypatch):
    """A CPU sparse minibatch epoch narrows torch to one thread and gives
    the caller's count back, also when the epoch fails."""
    sparse, _, _ = _oracle_pair(10)
    seen = []
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    with sparse.batch_threads():
        pass
    assert seen == [1, 2]
    with pytest.raises(KeyboardInterrupt), sparse.batch_threads():
        raise KeyboardInterrupt
    assert seen == [1, 2, 1, 2]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_row_gather_is_exact_on_both_routes(monkeypatch, threads, dtype):
    """The host row gather (numpy's take below PARALLEL_GATHER_BYTES, for
    rows narrower than PARALLEL_GATHER_ROW_BYTES or on one thread, torch's
    index_select otherwise) copies exactly the asked rows, of a matrix, a
    column-major matrix and a vector, in the asked order."""
    from sklearn_gd.objective import _rows as _oracles

    monkeypatch.setattr(_oracles, "PARALLEL_GATHER_BYTES", 64 * 5 * 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(300, 5, generator=gen).to(dtype)
    for M in (A, A.T.contiguous().T, A[:, 0]):
        for m in (3, 200):  # below and above the threshold
            rows = torch.randperm(300, generator=gen)[:m]
            assert torch.equal(_oracles.take_rows(M, rows), M[rows])
            # into a buffer's leading rows where index_select gathers
            out = torch.full((250, *M.shape[1:]), torch.nan, dtype=dtype)
            got = _oracles.take_rows(M, rows, out)
            assert torch.equal(got, M[rows])
            parallel = _oracles.gathers_in_parallel(M, m)
            assert (got.data_ptr() == out.data_ptr()) == parallel
            assert parallel == (
                dtype == torch.bfloat16 or (threads == 2 and m == 200 and M.dim() == 2)
            )


def test_shuffled_fit_is_the_same_through_either_gather(monkeypatch):
    """Shuffled minibatches read the same rows whether they are gathered by
    numpy or by index_select into the buffer the batches share (the rows of
    one batch are used up before the next batch's are gathered): the two
    fits agree to the bit."""
    from sklearn_gd.objective import _rows as _oracles

    X, y = make_regression(301, 7, noise=1.0, random_state=0)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 301)

    def fit(parallel):
        monkeypatch.setattr(_oracles, "gathers_in_parallel", lambda A, m: parallel)
        est = TorchSGDRegressor(
            loss="huber", batch_size=64, max_iter=3, tol=None, random_state=0
        )
        return est.fit(X, y, sample_weight=sw)

    a, b = fit(False), fit(True)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
