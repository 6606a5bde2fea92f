"""The training loop's named parts: restarts, the divergence guard and the
stopping rule."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import make_regression
from sklearn.preprocessing import StandardScaler

from sklearn_gd import TorchSGDRegressor
from sklearn_gd._engine import (
    DivergenceError,
    DivergenceGuard,
    Iterate,
    NoImprovement,
    Restarts,
    TrainState,
)
from sklearn_gd._optimizers import make_solver
from sklearn_gd._schedules import make_schedule


def _iterate(average):
    init = TrainState(
        coef=torch.zeros(3, 2, dtype=torch.float64),
        intercept=torch.zeros(2, dtype=torch.float64),
        t=1,
    )
    return Iterate(init, fit_intercept=True, average=average)


def _restarts(it, learning_rate="adaptive"):
    schedule = make_schedule(learning_rate, eta0=0.1, power_t=0.25, alpha=1e-4)
    solver = make_solver("adam")
    solver.start(it.theta, 0.1)
    return Restarts(it, DivergenceGuard(1.0), schedule, solver), schedule, solver


def test_restart_restores_parameters_update_count_and_average():
    it = _iterate(average=1)
    restarts, schedule, solver = _restarts(it)
    # one good epoch: two updates, the average follows
    for _ in range(2):
        it.theta.add_(1.0)
        it.averager.update(it.theta, it.t)
        it.t += 1
    restarts.epoch_done(improved=True)
    good = it.snapshot()
    # a diverging epoch
    for _ in range(3):
        it.theta.mul_(1e300)
        it.averager.update(it.theta, it.t)
        it.t += 1
    assert not math.isfinite(float(it.finite_check()))
    solver._opt.state[it.theta] = {"step": torch.tensor(3.0)}  # some state
    restarts.after_divergence(epoch=2, loss=math.inf, lr=0.1)
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


def test_divergence_raises_when_the_step_cannot_shrink():
    it = _iterate(average=0)
    restarts, _, _ = _restarts(it, learning_rate="constant")
    with pytest.raises(DivergenceError, match="diverged at epoch 3"):
        restarts.after_divergence(epoch=3, loss=math.nan, lr=0.1)


def test_stall_goes_back_only_when_the_objective_grew():
    it = _iterate(average=0)
    restarts, schedule, _ = _restarts(it)
    it.theta.add_(1.0)
    assert restarts.after_stall(grew=False)
    assert it.theta[0, 0] == 1.0  # stays
    assert restarts.after_stall(grew=True)
    assert it.theta[0, 0] == 0.0  # back to the best checkpoint
    constant, _, _ = _restarts(_iterate(average=0), learning_rate="constant")
    assert not constant.after_stall(grew=True)  # the training stops


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
    # t_ counts the updates of the five kept epochs, not the discarded ones
    assert reg.t_ == 5 * 500 + 1


@pytest.mark.parametrize(
    "loss, param_sum, diverged",
    [
        (1.0, 0.0, False),
        (2e3, 0.0, False),  # at the limit: 1000 x the zero model's 2.0
        (2.1e3, 0.0, True),
        (float("nan"), 0.0, True),
        (1.0, float("inf"), True),
    ],
)
def test_divergence_guard(loss, param_sum, diverged):
    assert DivergenceGuard(zero_model_loss=2.0).diverged(loss, param_sum) is diverged


def test_no_improvement_rule():
    rule = NoImprovement(tol=0.1, n_iter_no_change=2)
    assert not rule.update(10.0, None)
    assert not rule.update(9.95, None)  # less than tol of progress: 1
    assert rule.update(9.99, None)  # 2 in a row: stalled
    rule.reset()
    assert not rule.update(5.0, None)  # progress resets the count
    assert rule.best_loss == 5.0
    # with validation scores, progress is a score above best + tol
    rule = NoImprovement(tol=0.0, n_iter_no_change=1)
    assert not rule.update(1.0, 0.5)
    assert rule.update(1.0, 0.4)
    assert rule.best_score == 0.5
    # tol=None never stalls
    rule = NoImprovement(tol=None, n_iter_no_change=1)
    assert not any(rule.update(1.0, None) for _ in range(5))
