"""The solver protocol: declarations, the compatibility check, and the
proximal step each solver reports."""

import numpy as np
import pytest
import torch

from sklearn_gd._optimizers import OPTIMIZERS, Solver, make_solver
from sklearn_gd._penalties import make_penalty


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

    def __init__(self, target):
        self.target = target

    def coef(self, theta):
        return theta

    def evaluate(self, theta, idx, with_l2=True):
        grad = theta - self.target
        return 0.5 * (grad * grad).sum(), 1.0, grad


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
