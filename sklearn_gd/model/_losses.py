"""Pointwise losses ``L(y, p)`` on torch tensors.

Each loss is a tiny object with two methods, ``value`` and ``derivative``, both
elementwise over predictions ``p`` and targets ``y`` of the same shape. The
engine combines them with sample weights and the design matrix; nothing here
knows about batching, devices or estimators. Definitions follow scikit-learn's
``SGDRegressor`` and ``SGDClassifier`` (``sklearn/linear_model/_sgd_fast.pyx``)
so that ``alpha`` and ``eta0`` mean the same thing in both packages.

Classification losses take ``y`` in {-1, +1} and the raw prediction ``p``
(one column per binary problem). A *joint* loss couples the columns of a row
(softmax cross-entropy): its ``value`` splits the row loss over the row's
elements, so that summing a row gives the row loss, and the engine then treats
the columns as one problem instead of independent ones.
"""

from __future__ import annotations

import torch

__all__ = [
    "CLASSIFICATION_LOSSES",
    "LOSSES",
    "MULTINOMIAL_LOSSES",
    "Loss",
    "make_loss",
]


class Loss:
    """Base class of a pointwise loss.

    Attributes
    ----------
    curvature : float
        An upper bound on ``d^2 L / dp^2`` (for smooth losses), used to pick a
        safe step size. Non-smooth losses use 1, the scale of their gradient.
    smooth : bool
        Whether the loss has a Lipschitz-continuous derivative.
    quadratic : bool
        Whether the loss is a quadratic function of the prediction (its
        objective with an L2 penalty is then quadratic in the parameters).
    has_hessian : bool
        Whether :meth:`second_derivative` is defined: the loss is twice
        differentiable, or piecewise so with a derivative that is Lipschitz
        (its generalised second derivative, as Newton's method for
        piecewise-quadratic losses uses). A joint loss gives what its row's
        Hessian is built from instead (see :class:`SoftmaxCrossEntropy`).
    joint : bool
        Whether the columns of a row form one problem (a row-wise loss such as
        softmax cross-entropy) rather than independent ones.
    """

    curvature: float = 1.0
    smooth: bool = True
    quadratic: bool = False
    has_hessian: bool = False
    joint: bool = False

    def value(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Elementwise loss values."""
        raise NotImplementedError

    def derivative(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Elementwise derivative ``dL/dp`` (a subgradient where not smooth)."""
        raise NotImplementedError

    def second_derivative(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Elementwise ``d^2 L / dp^2`` (where :attr:`has_hessian`)."""
        raise NotImplementedError(f"{type(self).__name__} has no second derivative")

    def value_and_derivative(self, y: torch.Tensor, p: torch.Tensor):
        """``(value, dL/dp)`` elementwise, as :meth:`value` and
        :meth:`derivative` give them, in one call that a loss can compute
        with shared terms (a gradient step's loss work)."""
        return self.value(y, p), self.derivative(y, p)

    def derivatives(self, y: torch.Tensor, p: torch.Tensor, order: int = 2):
        """``(value, dL/dp, d^2 L / dp^2)`` elementwise, the derivatives up to
        ``order`` (None beyond it): what Newton's method needs at a point, in
        one call that a loss can compute with shared terms."""
        if order == 0:
            return self.value(y, p), None, None
        value, first = self.value_and_derivative(y, p)
        second = self.second_derivative(y, p) if order >= 2 else None
        return value, first, second

    def dual_box(self, y: torch.Tensor):
        """``(lo, hi)`` elementwise: the range of ``dL/dp`` at targets ``y``,
        where :meth:`conjugate` is finite (``+-inf`` for an unbounded side;
        it holds 0, each loss having its minimum there), or None for a loss
        whose conjugate is not known here (no duality gap is certified)."""
        return None

    def conjugate(self, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Elementwise Fenchel conjugate ``L*(y, beta) = sup_p (beta p -
        L(y, p))`` for ``beta`` in :meth:`dual_box`: the duality gap of a
        smooth loss (:mod:`~sklearn_gd.objective._certificate`)."""
        raise NotImplementedError(f"{type(self).__name__} has no conjugate")

    def dloss_at(self, y: float, p: float) -> float:
        """Scalar derivative ``dL/dp`` at ``(y, p)``, for the 'optimal' schedule."""
        yt = torch.tensor([y], dtype=torch.float64)
        pt = torch.tensor([p], dtype=torch.float64)
        return float(self.derivative(yt, pt)[0])


def _margin_box(y, a: float, b: float):
    """The range of ``y h'(z)`` for ``h'`` in ``[a, b]`` (``y = +-1``)."""
    return torch.minimum(y * a, y * b), torch.maximum(y * a, y * b)


def _unbounded(y):
    inf = torch.full_like(y, torch.inf)
    return -inf, inf


class PiecewiseLinear:
    """A convex ``h(u) = max_i (slopes[i] u + intercepts[i])`` (slopes
    increasing) of ``u = y p`` (``margin``) or ``u = y - p``: the shape of
    every non-smooth loss here, which
    :class:`~sklearn_gd.model._smoothing.MoreauSmoothed` smooths."""

    def __init__(self, slopes, intercepts, *, margin: bool):
        self.slopes, self.intercepts, self.margin = slopes, intercepts, margin
        a, c = slopes, intercepts
        self.kinks = [(c[j - 1] - c[j]) / (a[j] - a[j - 1]) for j in range(1, len(a))]
        self.lipschitz = max(abs(v) for v in a)


class SquaredError(Loss):
    """``1/2 (y - p)^2``."""

    quadratic = True
    has_hessian = True

    def value(self, y, p):
        r = p - y
        return 0.5 * r * r

    def derivative(self, y, p):
        return p - y

    def value_and_derivative(self, y, p):
        r = p - y
        return 0.5 * r * r, r

    def second_derivative(self, y, p):
        return torch.ones_like(p)

    def dual_box(self, y):
        return _unbounded(y)

    def conjugate(self, y, beta):
        return beta * (y + 0.5 * beta)


class Huber(Loss):
    """``1/2 r^2`` for ``|r| <= epsilon``, ``epsilon |r| - epsilon^2 / 2`` beyond."""

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = epsilon

    def value(self, y, p):
        a = (p - y).abs()
        quad = torch.clamp(a, max=self.epsilon)
        return quad * (a - 0.5 * quad)

    has_hessian = True

    def derivative(self, y, p):
        return torch.clamp(p - y, -self.epsilon, self.epsilon)

    def value_and_derivative(self, y, p):
        r = p - y
        first = torch.clamp(r, -self.epsilon, self.epsilon)
        # first (r - first / 2) is quad (|r| - quad / 2) of value() to the
        # bit: inside, first = r; beyond, first = sign(r) epsilon
        return first * (r - 0.5 * first), first

    def second_derivative(self, y, p):
        return ((p - y).abs() <= self.epsilon).to(p.dtype)

    def dual_box(self, y):
        e = torch.full_like(y, self.epsilon)
        return -e, e

    def conjugate(self, y, beta):
        return beta * (y + 0.5 * beta)


class EpsilonInsensitive(Loss):
    """``max(0, |y - p| - epsilon)``."""

    smooth = False

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = epsilon

    def pieces(self):
        e = self.epsilon
        return PiecewiseLinear((-1.0, 0.0, 1.0), (-e, 0.0, -e), margin=False)

    def value(self, y, p):
        return torch.clamp((p - y).abs() - self.epsilon, min=0)

    def derivative(self, y, p):
        r = p - y
        return torch.sign(r) * (r.abs() > self.epsilon).to(r.dtype)


class SquaredEpsilonInsensitive(Loss):
    """``max(0, |y - p| - epsilon)^2`` (no factor 1/2, as in scikit-learn)."""

    curvature = 2.0

    def __init__(self, epsilon: float = 0.1):
        self.epsilon = epsilon

    def value(self, y, p):
        z = torch.clamp((p - y).abs() - self.epsilon, min=0)
        return z * z

    has_hessian = True

    def derivative(self, y, p):
        r = p - y
        return 2.0 * torch.sign(r) * torch.clamp(r.abs() - self.epsilon, min=0)

    def second_derivative(self, y, p):
        return 2.0 * ((p - y).abs() > self.epsilon).to(p.dtype)

    def dual_box(self, y):
        return _unbounded(y)

    def conjugate(self, y, beta):
        # phi(r) = max(0, |r| - e)^2 has phi*(t) = t^2 / 4 + e |t|
        return beta * (y + 0.25 * beta) + self.epsilon * beta.abs()


class Quantile(Loss):
    """Pinball loss: ``q (y - p)`` if ``y >= p`` else ``(1 - q)(p - y)``."""

    smooth = False

    def __init__(self, quantile: float = 0.5):
        self.quantile = quantile

    def pieces(self):
        q = self.quantile
        return PiecewiseLinear((q - 1.0, q), (0.0, 0.0), margin=False)

    def value(self, y, p):
        r = y - p
        return torch.maximum(self.quantile * r, (self.quantile - 1.0) * r)

    def derivative(self, y, p):
        # d/dp of the pinball loss; at r == 0 any value in [q - 1, q] is a
        # subgradient, and 0 keeps an exact fit in place.
        r = y - p
        q = self.quantile
        # scalars as tensors of r's dtype: torch.where would otherwise build
        # the result in float32 and round q in float64 fits
        below = torch.full_like(r, -q)
        above = torch.full_like(r, 1.0 - q)
        return torch.where(r > 0, below, torch.where(r < 0, above, torch.zeros_like(r)))


class AbsoluteError(Quantile):
    """``|y - p|``."""

    def __init__(self):
        super().__init__(quantile=0.5)

    def pieces(self):
        return PiecewiseLinear((-1.0, 1.0), (0.0, 0.0), margin=False)

    def value(self, y, p):
        return (y - p).abs()

    def derivative(self, y, p):
        return torch.sign(p - y)


class Hinge(Loss):
    """``max(0, threshold - y p)``; "perceptron" is ``threshold=0``."""

    smooth = False

    def __init__(self, threshold: float = 1.0):
        self.threshold = threshold

    def pieces(self):
        return PiecewiseLinear((-1.0, 0.0), (self.threshold, 0.0), margin=True)

    def value(self, y, p):
        return torch.clamp(self.threshold - y * p, min=0)

    def derivative(self, y, p):
        # ``<=`` as scikit-learn: the perceptron moves from p = 0
        return torch.where(y * p <= self.threshold, -y, torch.zeros_like(y))


class SquaredHinge(Loss):
    """``max(0, threshold - y p)^2``."""

    curvature = 2.0

    def __init__(self, threshold: float = 1.0):
        self.threshold = threshold

    def value(self, y, p):
        z = torch.clamp(self.threshold - y * p, min=0)
        return z * z

    has_hessian = True

    def derivative(self, y, p):
        return -2.0 * y * torch.clamp(self.threshold - y * p, min=0)

    def second_derivative(self, y, p):
        return 2.0 * y * y * (y * p < self.threshold).to(p.dtype)

    def dual_box(self, y):
        return _margin_box(y, -torch.inf, 0.0)

    def conjugate(self, y, beta):
        # h(z) = max(0, c - z)^2 has h*(t) = c t + t^2 / 4 for t <= 0
        t = y * beta
        return t * (self.threshold + 0.25 * t)


class LogLoss(Loss):
    """``log(1 + exp(-y p))``, the logistic loss."""

    curvature = 0.25

    def value(self, y, p):
        return torch.nn.functional.softplus(-y * p)

    has_hessian = True

    def derivative(self, y, p):
        return -y * torch.sigmoid(-y * p)

    def value_and_derivative(self, y, p):
        ny = -y
        z = ny * p
        return torch.nn.functional.softplus(z), ny * torch.sigmoid(z)

    def second_derivative(self, y, p):
        s = torch.sigmoid(-y * p)
        return y * y * s * (1.0 - s)

    def derivatives(self, y, p, order=2):
        z = y * p  # the margin; sigmoid(z) - 1 = -sigmoid(-z)
        value = torch.nn.functional.softplus(z.neg())
        if order == 0:
            return value, None, None
        s = torch.sigmoid(z)
        first = (s - 1.0).mul_(y)
        # y is +-1 (a margin's label): y^2 s (1 - s) = s (1 - s)
        second = (1.0 - s).mul_(s) if order >= 2 else None
        return value, first, second

    def dual_box(self, y):
        return _margin_box(y, -1.0, 0.0)

    def conjugate(self, y, beta):
        # h(z) = log(1 + e^-z) has h*(t) = -t log(-t) + (1 + t) log(1 + t)
        # on [-1, 0]; clamped there against rounding at the ends
        t = (y * beta).clamp(-1.0, 0.0)
        return torch.special.xlogy(-t, -t) + torch.special.xlogy(1.0 + t, 1.0 + t)


class ModifiedHuber(Loss):
    """``max(0, 1 - y p)^2`` for ``y p >= -1``, ``-4 y p`` below."""

    curvature = 2.0

    def value(self, y, p):
        z = y * p
        return torch.where(z >= -1, torch.clamp(1 - z, min=0) ** 2, -4.0 * z)

    has_hessian = True

    def derivative(self, y, p):
        z = y * p
        return torch.where(z >= -1, -2.0 * y * torch.clamp(1 - z, min=0), -4.0 * y)

    def second_derivative(self, y, p):
        z = y * p
        return 2.0 * y * y * ((z >= -1) & (z < 1)).to(p.dtype)

    def dual_box(self, y):
        return _margin_box(y, -4.0, 0.0)

    def conjugate(self, y, beta):
        # the squared hinge's h*(t) = t + t^2 / 4 on h' in [-4, 0]: the
        # linear piece below z = -1 continues its slope -4
        t = y * beta
        return t * (1.0 + 0.25 * t)


class SoftmaxCrossEntropy(Loss):
    """Multinomial logistic loss of a row: ``logsumexp(p) - sum_j y_j p_j``.

    ``y`` is a one-hot row. ``value`` gives the element ``-y_j log
    softmax(p)_j``, whose sum over the row is the row loss. The Hessian of a
    row, ``diag(s) - s s'``, has eigenvalues at most 1/2.
    """

    curvature = 0.5
    joint = True

    has_hessian = True

    def value(self, y, p):
        return -y * torch.log_softmax(p, dim=-1)

    def derivative(self, y, p):
        return torch.softmax(p, dim=-1) - y

    def second_derivative(self, y, p):
        """The row's probabilities ``s``: its Hessian is ``diag(s) - s s'``
        (a joint loss's Hessian couples the row's columns; the oracle builds
        it from ``s``)."""
        return torch.softmax(p, dim=-1)

    def derivatives(self, y, p, order=2):
        log_s = torch.log_softmax(p, dim=-1)
        value = -y * log_s
        if order == 0:
            return value, None, None
        s = log_s.exp()
        return value, s - y, s if order >= 2 else None

    def dual_box(self, y):
        # beta = softmax - y: rows of the simplex shifted by -y, whose box
        # this is once each row's sum is 0 (the certificate keeps it so)
        return -y, 1.0 - y

    def conjugate(self, y, beta):
        # a row's conjugate is sum_j q_j log q_j, q = beta + y in the simplex
        q = (beta + y).clamp_min(0.0)
        return torch.special.xlogy(q, q)


# name -> factory taking the estimator's loss parameters
LOSSES = {
    "squared_error": lambda epsilon, quantile: SquaredError(),
    "huber": lambda epsilon, quantile: Huber(epsilon),
    "epsilon_insensitive": lambda epsilon, quantile: EpsilonInsensitive(epsilon),
    "squared_epsilon_insensitive": lambda epsilon, quantile: SquaredEpsilonInsensitive(
        epsilon
    ),
    "absolute_error": lambda epsilon, quantile: AbsoluteError(),
    "quantile": lambda epsilon, quantile: Quantile(quantile),
}


# SGDClassifier's losses (targets in {-1, +1}, one binary problem a column),
# with the regression losses it allows
CLASSIFICATION_LOSSES = {
    "hinge": lambda epsilon, quantile: Hinge(1.0),
    "log_loss": lambda epsilon, quantile: LogLoss(),
    "modified_huber": lambda epsilon, quantile: ModifiedHuber(),
    "squared_hinge": lambda epsilon, quantile: SquaredHinge(1.0),
    "perceptron": lambda epsilon, quantile: Hinge(0.0),
    **{
        name: LOSSES[name]
        for name in (
            "squared_error",
            "huber",
            "epsilon_insensitive",
            "squared_epsilon_insensitive",
        )
    },
}

# losses over a whole row of one-hot targets (multi_class="multinomial")
MULTINOMIAL_LOSSES = {
    "log_loss": lambda epsilon, quantile: SoftmaxCrossEntropy(),
}


def make_loss(
    name: str, *, epsilon: float = 0.1, quantile: float = 0.5, registry=None
) -> Loss:
    """Build the loss registered under ``name`` (in ``LOSSES`` by default)."""
    return (LOSSES if registry is None else registry)[name](epsilon, quantile)
