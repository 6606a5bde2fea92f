"""The solver protocol: declarations, the compatibility check, and the
proximal step each solver reports."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from sklearn_gd import TorchSGDRegressor
from sklearn_gd.model._penalties import make_penalty
from sklearn_gd.objective._problem import descend_plainly_
from sklearn_gd.solvers._optimizers import OPTIMIZERS, make_solver
from sklearn_gd.solvers._solver import Solver


def test_registry_holds_solvers():
    for name, cls in OPTIMIZERS.items():
        assert issubclass(cls, Solver), name
        assert isinstance(make_solver(name), cls)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("penalty_name", ["l1", "elasticnet"])
def test_check_refuses_l1_only_without_prox(name, penalty_name):
    penalty = make_penalty(penalty_name, alpha=0.1, l1_ratio=0.5)
    cls = OPTIMIZERS[name]
    if cls.supports_prox:
        cls.check(name, penalty_name, penalty)  # no error
    else:
        with pytest.raises(ValueError, match=f"'{penalty_name}'"):
            cls.check(name, penalty_name, penalty)
    # an L1 part of strength zero needs no proximal step
    cls.check(name, penalty_name, make_penalty(penalty_name, alpha=0.0, l1_ratio=1))


class _Quadratic:
    """``1/2 ||theta - target||^2`` as the engine's problem (no penalty)."""

    penalty = make_penalty(None, alpha=0.0, l1_ratio=0.0)
    sum_scale = 1
    intercept_decay = 1.0

    def __init__(self, target):
        self.target = target

    def coef(self, theta):
        return theta

    def evaluate(self, theta, idx, with_l2=True):
        grad = theta - self.target
        return 0.5 * (grad * grad).sum(), 1.0, grad

    def descend_(self, theta, idx, lr):
        return descend_plainly_(self, theta, idx, lr)


@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad"])
def test_prox_step_is_the_step_taken(name):
    # The L1 step must be as long as the step that multiplied the gradient,
    # coordinate by coordinate, or the penalised optimum is no fixed point.
    # On a first step every solver here moves by exactly prox_step * grad.
    target = torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    theta = torch.zeros_like(target)
    solver = make_solver(name)
    solver.start(theta, lr=0.1)
    problem = _Quadratic(target)
    grad = theta - target
    with torch.no_grad():
        solver.step(problem, None, 0.1)
    step = solver.prox_step(0.1)
    # float64 rounding of one update (a few ulps of values of order 1)
    np.testing.assert_allclose(theta, -step * grad, rtol=1e-14, atol=1e-15)


def test_momentum_prox_step_is_the_fixed_point_step():
    # heavy ball at a fixed point moves lr / (1 - m) times the gradient
    solver = make_solver("sgd", momentum=0.75)
    assert solver.prox_step(0.1) == pytest.approx(0.4, rel=1e-15)


def test_state_survives_a_restart_only_when_asked():
    theta = torch.zeros(2, 1, dtype=torch.float64)
    solver = make_solver("adam")
    solver.start(theta, lr=0.1)
    with torch.no_grad():
        solver.step(_Quadratic(torch.ones_like(theta)), None, 0.1)
    state = solver.state_dict()
    assert state["state"]  # Adam keeps moments
    again = make_solver("adam")
    again.start(theta, lr=0.1, state=state)
    assert again.state_dict()["state"][0]["step"] == 1
    again.reset(lr=0.1)
    assert again.state_dict()["state"] == {}


# ------------------------------------------------------- Newton's Hessians
@pytest.mark.parametrize("whole", [True, False], ids=["all-blocks", "by-pairs"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k", [3, 4])
def test_joint_hessian_matches_autograd(monkeypatch, whole, fit_intercept, weighted, k):
    # the softmax's Hessian (both ways of computing it), gradient and value
    # against autograd's on the same mean cross-entropy, to rounding
    from sklearn_gd.model._losses import SoftmaxCrossEntropy
    from sklearn_gd.objective._direct import DirectOracle

    monkeypatch.setattr(DirectOracle, "joint_blocks_below", 1e12 if whole else 0)
    gen = torch.Generator().manual_seed(k)
    n, d = 40, 4
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    Y = torch.eye(k, dtype=torch.float64)[torch.randint(0, k, (n,), generator=gen)]
    w = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5 if weighted else None
    oracle = DirectOracle(X, Y, w, SoftmaxCrossEntropy(), fit_intercept=fit_intercept)
    q = d + int(fit_intercept)
    theta = torch.randn(q, k, generator=gen, dtype=torch.float64)
    values, grad, H = oracle.derivatives(theta, 2)

    def mean_loss(flat):  # theta.T flattened: class-major
        t = flat.reshape(k, q).T
        P = X @ t[:d] + (t[d] if fit_intercept else 0.0)
        rows = -(Y * torch.log_softmax(P, -1)).sum(1)
        return rows.mean() if w is None else (rows * w).sum() / w.sum()

    flat = theta.T.reshape(-1)
    torch.testing.assert_close(float(values.sum()), float(mean_loss(flat)))
    torch.testing.assert_close(
        grad.T.reshape(-1), torch.autograd.functional.jacobian(mean_loss, flat)
    )
    # the Hessian's entries are means over 40 rows of x_i x_j p (1 - p)
    # terms (<= 0.25 |x_i x_j|, ~0.2 on average): two sums of them in
    # different orders, each within 40 u * 0.2 = 9e-16 of the exact mean,
    # plus the softmax's few ulps; 1e-14 is 5x that worst case (measured
    # 1e-16 with 1 and 2 threads and another BLAS kernel)
    torch.testing.assert_close(
        H[0], torch.autograd.functional.hessian(mean_loss, flat), atol=1e-14, rtol=0
    )


@pytest.mark.parametrize(
    "n, d, solver", [(5000, 30, "Newton"), (20000, 100, "QuasiNewton")]
)
def test_float32_fit_stops_at_the_precision_of_the_objective(n, d, solver):
    # in float32 the gradient's rounding holds the relative measure near 1e-4,
    # above tol="auto": a decrease the objective cannot resolve any more ends
    # the fit, as converged when the solver's gap estimate is below 1e-6 of
    # the objective (Newton's decrement, or L-BFGS's, up to 10x optimistic)
    import warnings

    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    import sklearn_gd.solvers as full_batch
    from sklearn_gd import TorchSGDClassifier

    X, y = make_classification(n, d, n_informative=20, random_state=0)
    X = X.astype(np.float32)
    chosen = []
    step = getattr(full_batch, solver).step

    def spy(self, *args):
        chosen.append(type(self).__name__)
        return step(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(getattr(full_batch, solver), "step", spy)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            est = TorchSGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    assert set(chosen) == {solver}
    assert est.n_iter_ <= 30
    X64 = X.astype(np.float64)
    lr = LogisticRegression(C=1 / (1e-4 * n), tol=1e-12, max_iter=10000).fit(X64, y)

    def objective(coef, intercept):
        m = (X64 @ coef.ravel() + intercept[0]) * np.where(y, 1, -1)
        return np.logaddexp(0, -m).mean() + 0.5e-4 * (coef**2).sum()

    ours = objective(est.coef_.astype(np.float64), est.intercept_.astype(np.float64))
    ref = objective(lr.coef_, lr.intercept_)
    assert (ours - ref) / ref <= 1e-5  # float32's reach, far below 1e-4


def test_lbfgs_goes_past_the_objectives_rounding(monkeypatch):
    # 15 x 30 data and alpha=1e-4: curvature 1e-4 along the directions the
    # rows do not span, ~10 along theirs, so the objective's values stop
    # resolving progress ~sqrt(eps) from the optimum; the approximate Armijo
    # condition on slopes and the slopes' secant then carry L-BFGS on to
    # tol=1e-12 (before them: ConvergenceWarnings at measures of 1e-8 to
    # 3e-6, predictions up to 4e-7 off; measured now: all ten draws converge)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    import sklearn_gd.planning._planner as planner

    kw = dict(loss="huber", alpha=1e-4, tol=1e-12, max_iter=3000)
    for seed in range(10):
        rng = np.random.RandomState(seed)
        X, y = rng.rand(15, 30), rng.randint(0, 3, size=15).astype(float)
        newton = TorchSGDRegressor(**kw).fit(X, y)  # exact steps: the optimum
        with monkeypatch.context() as m, warnings.catch_warnings():
            m.setattr(planner, "NEWTON_MAX_WORK", 0)  # L-BFGS instead
            warnings.simplefilter("error", ConvergenceWarning)
            lbfgs = TorchSGDRegressor(**kw).fit(X, y)
        assert lbfgs.n_iter_ > newton.n_iter_  # it was L-BFGS
        # Two different solvers (L-BFGS's path and stopping epoch follow the
        # rounding: permuting the rows changes its n_iter_ by up to 15%), so
        # they agree only through the optimum. Each stops at a gradient of
        # tol * |g0| (|g0| <= 0.28 on these draws), which moves predictions
        # by at most |[X 1] H^-1| (<= 38 at the optimum, H the Huber
        # Hessian plus alpha) times that: <= 8.2e-12 per fit, so 2e-11
        # between them. Measured <= 2.6e-13 over row permutations and thread
        # counts; the 1e-8 to 3e-6 gaps of the old stalls stay far above.
        assert_allclose(lbfgs.predict(X), newton.predict(X), rtol=0, atol=2e-11)
