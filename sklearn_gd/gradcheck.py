"""Check hand-written derivatives against autograd and finite differences.

The package's losses (:mod:`sklearn_gd.model._losses`) give their derivative
``dL/dp`` in closed form, because the engine needs it without building an
autograd graph. A closed form can be wrong where a graph cannot, so this module
compares it with two independent references, as a careful tutorial does by
hand: torch autograd of the loss value, and central finite differences.

:func:`finite_difference_gradient` is the general tool (any scalar function of
a vector); :func:`check_loss_gradients` applies both references to one loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .model._losses import CLASSIFICATION_LOSSES, LOSSES, Loss, make_loss

__all__ = ["GradientCheckResult", "check_loss_gradients", "finite_difference_gradient"]

# every loss name of both estimators (the classifier's registry holds the
# regression losses too, on {-1, +1} targets)
_NAMED_LOSSES = {**LOSSES, **CLASSIFICATION_LOSSES}


def finite_difference_gradient(
    f: Callable, x, h: float = 1e-6, *, method: str = "central"
) -> np.ndarray:
    """Numerical gradient of a scalar function by finite differences.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar (a Python float, a 0-d numpy array or a
        one-element torch tensor). It is called with arrays of the same type,
        dtype and shape as ``x``, so a function written with torch operations
        gets torch tensors.

    x : array-like or torch.Tensor
        Where to differentiate.

    h : float, default=1e-6
        Step. The central difference has error ``O(h^2)`` from truncation and
        about ``eps |f| / h`` from rounding (``eps`` the machine precision of
        ``x``'s dtype), so ``1e-6`` suits float64 and ``1e-3`` float32.

    method : {"central", "forward"}, default="central"
        ``(f(x + h e_i) - f(x - h e_i)) / 2h`` or the one-sided
        ``(f(x + h e_i) - f(x)) / h`` (error ``O(h)``).

    Returns
    -------
    grad : ndarray of shape x.shape
        The estimated gradient, in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gd.gradcheck import finite_difference_gradient
    >>> g = finite_difference_gradient(lambda v: (v**2).sum(), np.array([1.0, -2.0]))
    >>> np.round(g, 6)
    array([ 2., -4.])
    """
    if method not in ("central", "forward"):
        raise ValueError(f"method must be 'central' or 'forward', got {method!r}.")
    if not h > 0:
        raise ValueError(f"h must be positive, got {h}.")
    if isinstance(x, torch.Tensor):
        base = x.detach().clone()
    else:
        base = np.array(x, dtype=np.float64)
    grad = np.zeros(tuple(base.shape), dtype=np.float64)
    f0 = _scalar_value(f, base) if method == "forward" else None
    for i in np.ndindex(*grad.shape):
        up = _scalar_value(f, _moved(base, i, h))
        if method == "forward":
            grad[i] = (up - f0) / h
        else:
            down = _scalar_value(f, _moved(base, i, -h))
            grad[i] = (up - down) / (2 * h)
    return grad


def _scalar_value(f: Callable, v) -> float:
    """``f(v)`` as a Python float, computed without an autograd graph."""
    with torch.no_grad():
        out = f(v)
    if isinstance(out, torch.Tensor):
        return float(out.detach().reshape(()).item())
    return float(np.asarray(out).reshape(()))


def _moved(base, i: tuple, step: float):
    """A copy of ``base`` (array or tensor) with element ``i`` moved by
    ``step`` (``x + (-h)`` is ``x - h`` to the bit)."""
    out = base.clone() if isinstance(base, torch.Tensor) else base.copy()
    out[i] = out[i] + step
    return out


@dataclass(frozen=True)
class GradientCheckResult:
    """What :func:`check_loss_gradients` found.

    Attributes
    ----------
    loss : str
        The loss checked (its registry name or class name).
    n_points : int
        Points ``(y, p)`` compared.
    n_skipped : int
        Points dropped because a kink of the loss lies within ``h`` of them,
        where neither reference defines a unique derivative.
    autograd_error : float
        ``max |derivative - autograd|`` over the points compared.
    finite_difference_error : float
        ``max |derivative - central difference|`` over the points compared.

    Examples
    --------
    >>> from sklearn_gd.gradcheck import check_loss_gradients
    >>> result = check_loss_gradients("huber")
    >>> result.loss, result.n_points, result.passed()
    ('huber', 500, True)
    """

    loss: str
    n_points: int
    n_skipped: int
    autograd_error: float
    finite_difference_error: float

    def passed(self, atol: float = 1e-6) -> bool:
        """Whether both errors are at most ``atol``."""
        return max(self.autograd_error, self.finite_difference_error) <= atol


def check_loss_gradients(
    loss: str | Loss,
    *,
    epsilon: float = 0.1,
    quantile: float = 0.3,
    n_points: int = 500,
    h: float = 1e-6,
    kink_tol: float = 1e-4,
    dtype: torch.dtype = torch.float64,
    random_state: int = 0,
) -> GradientCheckResult:
    """Compare a loss's closed-form ``derivative`` with autograd and finite
    differences.

    Residuals ``p - y`` are drawn with magnitudes spread log-uniformly over
    ``[1e-2, 3]`` (both signs), so every regime of the losses (inside and
    outside ``epsilon``, either side of the quantile) is visited. The
    classifier's margin losses take targets ``y`` in {-1, +1}, so that the
    margins ``y p`` spread over ``[-2, 4]``, across every kink (the hinge's
    at 1, the perceptron's at 0, modified_huber's change of piece at -1). Points
    within ``h`` of a kink (where the one-sided differences disagree by more
    than ``kink_tol``) are skipped: there the derivative is a choice of
    subgradient, not a value to check.

    Parameters
    ----------
    loss : str or Loss
        A loss name of either estimator: :class:`~sklearn_gd.TorchSGDRegressor`'s
        ("squared_error", "huber", "epsilon_insensitive",
        "squared_epsilon_insensitive", "absolute_error", "quantile") or
        :class:`~sklearn_gd.TorchSGDClassifier`'s ("hinge", "log_loss",
        "modified_huber", "squared_hinge", "perceptron"); or a loss object
        with ``value(y, p)`` and ``derivative(y, p)``.

    epsilon, quantile : float, default=0.1, 0.3
        Loss parameters, used when ``loss`` is a name.

    n_points : int, default=500
        Number of points ``(y, p)``.

    h : float, default=1e-6
        Finite-difference step (see :func:`finite_difference_gradient`).

    kink_tol : float, default=1e-4
        Disagreement of the forward and backward differences above which a
        point is treated as lying on a kink. A smooth loss with curvature
        ``c`` gives a disagreement of about ``c h``, far below it.

    dtype : torch.dtype, default=torch.float64
        Precision of the check. float64 keeps the rounding error of the
        differences near ``1e-16 |L| / h``, about 1e-9 here.

    random_state : int, default=0
        Seed of the local generator drawing the points.

    Returns
    -------
    result : GradientCheckResult
        The largest absolute errors; ``result.passed(atol)`` tests them.

    Examples
    --------
    >>> from sklearn_gd.gradcheck import check_loss_gradients
    >>> check_loss_gradients("huber").passed(atol=1e-6)
    True
    """
    loss, name, margin = _resolve_loss(loss, epsilon=epsilon, quantile=quantile)
    y, p = _draw_points(n_points, margin, dtype, random_state)

    with torch.no_grad():
        # the loss is elementwise, so one batched call perturbs every point
        f0 = loss.value(y, p)
        up = loss.value(y, p + h)
        down = loss.value(y, p - h)
        forward = (up - f0) / h
        backward = (f0 - down) / h
        central = (up - down) / (2 * h)
        closed = loss.derivative(y, p)
    smooth_here = (forward - backward).abs() <= kink_tol

    p_ad = p.clone().requires_grad_(True)
    with torch.enable_grad():
        (auto,) = torch.autograd.grad(loss.value(y, p_ad).sum(), p_ad)

    keep = smooth_here
    n_kept = int(keep.sum())
    if n_kept == 0:
        raise ValueError("Every point lies on a kink; increase n_points or lower h.")
    ad_err = float((closed - auto)[keep].abs().max())
    fd_err = float((closed - central)[keep].abs().max())
    return GradientCheckResult(
        loss=name,
        n_points=n_kept,
        n_skipped=n_points - n_kept,
        autograd_error=ad_err,
        finite_difference_error=fd_err,
    )


def _resolve_loss(loss: str | Loss, *, epsilon: float, quantile: float):
    """``(loss object, its name, whether it is a classifier's loss of the
    margin y p with y in {-1, +1})`` for a loss name or object."""
    if not isinstance(loss, str):
        return loss, type(loss).__name__, False
    if loss not in _NAMED_LOSSES:
        raise ValueError(
            f"Unknown loss {loss!r}; expected one of {sorted(_NAMED_LOSSES)}."
        )
    made = make_loss(loss, epsilon=epsilon, quantile=quantile, registry=_NAMED_LOSSES)
    return made, loss, loss not in LOSSES


def _draw_points(n_points: int, margin: bool, dtype: torch.dtype, random_state: int):
    """Targets ``y`` (+-1 for a margin loss) and predictions ``p`` whose
    residuals ``p - y`` have magnitudes log-uniform over ``[1e-2, 3]``, of
    either sign."""
    gen = torch.Generator().manual_seed(random_state)
    y = torch.randn(n_points, generator=gen, dtype=dtype) * 2
    if margin:
        y = torch.where(y < 0, -1.0, 1.0).to(dtype)
    magnitude = 10 ** (
        torch.rand(n_points, generator=gen, dtype=dtype) * (np.log10(3) + 2) - 2
    )
    sign = torch.where(torch.rand(n_points, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    return y, y + sign * magnitude
