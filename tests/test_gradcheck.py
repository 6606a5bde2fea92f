"""The closed-form loss derivatives against autograd and finite differences."""

import numpy as np
import pytest
import torch

from sklearn_gd.gradcheck import (
    GradientCheckResult,
    check_loss_gradients,
    finite_difference_gradient,
)
from sklearn_gd.model._losses import CLASSIFICATION_LOSSES, LOSSES, Loss, SquaredError

# Tolerances (float64 throughout):
# - autograd differentiates the same formula as the closed form, so the two
#   agree up to a few roundings of O(1) numbers: 1e-12.
# - central differences with h = 1e-6 have truncation error h^2 |L'''| / 6
#   (zero for the piecewise-quadratic losses away from kinks) and rounding
#   error about 1e-16 |L| / h = 1e-9 for |L| <= 10: 1e-7 leaves a margin of
#   100 while a wrong derivative is off by O(0.1) or more.
AUTOGRAD_ATOL = 1e-12
FD_ATOL = 1e-7


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_matches_autograd(name):
    res = check_loss_gradients(name)
    assert res.autograd_error <= AUTOGRAD_ATOL


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("epsilon, quantile", [(0.1, 0.3), (1.0, 0.9)])
def test_every_loss_matches_finite_differences(name, epsilon, quantile):
    res = check_loss_gradients(name, epsilon=epsilon, quantile=quantile)
    assert isinstance(res, GradientCheckResult)
    assert res.loss == name
    assert res.finite_difference_error <= FD_ATOL
    assert res.passed(atol=1e-6)
    # almost no random point falls within h of a kink
    assert res.n_points >= 490


# the classifier's own losses (it also takes the regression ones, above)
MARGIN_LOSSES = [name for name in CLASSIFICATION_LOSSES if name not in LOSSES]


def test_margin_losses_are_the_classifiers():
    assert sorted(MARGIN_LOSSES) == sorted(
        ["hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"]
    )


@pytest.mark.parametrize("name", MARGIN_LOSSES)
def test_every_classifier_loss_is_checked(name):
    # check_loss_gradients took only the regressor's loss names
    res = check_loss_gradients(name)
    assert res.loss == name
    assert res.autograd_error <= AUTOGRAD_ATOL
    assert res.finite_difference_error <= FD_ATOL
    # margins spread over [-2, 4]: few points within h of a kink
    assert res.n_points >= 490


def test_a_wrong_margin_derivative_is_detected():
    # the derivative of a margin loss with y's sign dropped
    class WrongHinge(type(CLASSIFICATION_LOSSES["hinge"](0.1, 0.5))):
        def derivative(self, y, p):
            return torch.where(y * p <= self.threshold, -1.0, 0.0).to(p.dtype)

    res = check_loss_gradients(WrongHinge(1.0))
    assert not res.passed()


def test_wrong_derivative_is_detected():
    class WrongSquare(SquaredError):
        def derivative(self, y, p):
            return 2 * (p - y)  # the MSE derivative, not that of (p - y)^2 / 2

    res = check_loss_gradients(WrongSquare())
    assert res.loss == "WrongSquare"
    assert res.autograd_error > 1e-2 and res.finite_difference_error > 1e-2
    assert not res.passed()


def test_wrong_sign_at_kink_side_is_detected():
    class WrongHuber(type(LOSSES["huber"](0.1, 0.5))):
        def derivative(self, y, p):
            return torch.clamp(p - y, -self.epsilon, self.epsilon).abs()

    assert not check_loss_gradients(WrongHuber(0.1)).passed()


def test_unknown_loss():
    with pytest.raises(ValueError, match="Unknown loss"):
        check_loss_gradients("hinges")


def test_finite_difference_gradient_numpy_and_torch():
    def f(v):
        return (v**3).sum()

    x = np.array([1.0, -2.0, 0.5])
    expected = 3 * x**2
    np.testing.assert_allclose(finite_difference_gradient(f, x), expected, rtol=1e-8)
    got = finite_difference_gradient(f, torch.tensor(x))
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    # forward differences: O(h) error, 3 x h for f = x^3 (h = 1e-4: 1e-3 slack)
    fwd = finite_difference_gradient(f, x, 1e-4, method="forward")
    np.testing.assert_allclose(fwd, expected, atol=1e-3)
    with pytest.raises(ValueError, match="method"):
        finite_difference_gradient(f, x, method="backward")


def test_seed004_gradient():
    # seed 004: d/dx log(x1 x2) sin(x2) at (0.5, 0.75) = (1.3633, 0.1912)
    def g(x):
        return torch.log(x[0] * x[1]) * torch.sin(x[1])

    x = torch.tensor([0.5, 0.75], dtype=torch.float64)
    grad = finite_difference_gradient(g, x)
    np.testing.assert_allclose(np.round(grad, 4), [1.3633, 0.1912])
    # the seed's forward differences, step 1e-3 in float32: (1.3619, 0.1919)
    fwd = finite_difference_gradient(g, x.float(), 1e-3, method="forward")
    np.testing.assert_allclose(np.round(fwd, 4), [1.3619, 0.1919])


def _every_loss() -> list:
    """Every registered loss with the kind of target it takes, as a list:
    pytest 9.2 deprecates parametrizing over a generator (an error from
    pytest 10)."""
    from sklearn_gd.model._losses import CLASSIFICATION_LOSSES, MULTINOMIAL_LOSSES

    return [
        pytest.param(factory(0.1, 0.3), kind, id=f"{kind}-{name}")
        for registry, kind in (
            (LOSSES, "regression"),
            (CLASSIFICATION_LOSSES, "margin"),
            (MULTINOMIAL_LOSSES, "one-hot"),
        )
        for name, factory in registry.items()
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss, kind", _every_loss())
def test_value_and_derivative_are_value_and_derivative_to_the_bit(loss, kind, dtype):
    """A step's shared-term loss work gives exactly what ``value`` and
    ``derivative`` give apart (the same roundings), on both sides of every
    kink and threshold (p spread over [-3, 3], epsilon 0.1), and so do the
    first two of ``derivatives`` where it is the base class's (the ones
    that override it share other terms, for Newton's method)."""
    gen = torch.Generator().manual_seed(0)
    p = (6 * torch.rand(400, 3, generator=gen, dtype=torch.float64) - 3).to(dtype)
    if kind == "regression":
        y = torch.randn(400, 3, generator=gen, dtype=torch.float64).to(dtype)
    elif kind == "margin":
        y = torch.where(torch.rand(400, 3, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    else:
        y = torch.eye(3, dtype=dtype)[torch.randint(3, (400,), generator=gen)]
    value, first = loss.value_and_derivative(y, p)
    assert torch.equal(value, loss.value(y, p))
    assert torch.equal(first, loss.derivative(y, p))
    if type(loss).derivatives is Loss.derivatives:
        v1, d1, _ = loss.derivatives(y, p, order=1)
        assert torch.equal(v1, value) and torch.equal(d1, first)
