"""The one objective of the test suite, written once, in numpy float64.

Every solution a test compares (ours, sklearn's, scipy's, numpy's) is scored
by :func:`objective`, so that "same objective" means the same formula,
independent of the code under test (which computes its own in torch)::

    (1 / sum(s)) * sum_i s_i * L(y_i, x_i . w + b)  +  alpha * R(w)

with the losses and penalties of ``TorchSGDRegressor``'s docstring. For a 2-D
``y`` the value is the sum over outputs (k independent problems).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LOSS_NAMES",
    "PENALTY_NAMES",
    "classifier_objective",
    "estimator_objective",
    "margin_loss",
    "objective",
    "pointwise_loss",
    "penalty",
]

LOSS_NAMES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
    "absolute_error",
    "quantile",
)
PENALTY_NAMES = ("l2", "l1", "elasticnet", None)


def pointwise_loss(loss, y, p, *, epsilon=0.1, quantile=0.5):
    """Elementwise ``L(y, p)`` as float64."""
    r = np.asarray(y, dtype=np.float64) - np.asarray(p, dtype=np.float64)
    a = np.abs(r)
    if loss == "squared_error":
        return 0.5 * r * r
    if loss == "huber":
        return np.where(a <= epsilon, 0.5 * r * r, epsilon * a - 0.5 * epsilon**2)
    if loss == "epsilon_insensitive":
        return np.maximum(a - epsilon, 0.0)
    if loss == "squared_epsilon_insensitive":
        return np.maximum(a - epsilon, 0.0) ** 2
    if loss == "absolute_error":
        return a
    if loss == "quantile":
        return np.maximum(quantile * r, (quantile - 1.0) * r)
    raise ValueError(f"unknown loss {loss!r}")


def margin_loss(loss, y, p):
    """Elementwise classification loss of targets ``y`` in {-1, +1}."""
    z = np.asarray(y, dtype=np.float64) * np.asarray(p, dtype=np.float64)
    if loss == "log_loss":
        return np.logaddexp(0.0, -z)
    if loss == "hinge":
        return np.maximum(0.0, 1.0 - z)
    if loss == "squared_hinge":
        return np.maximum(0.0, 1.0 - z) ** 2
    if loss == "modified_huber":
        return np.where(z >= -1.0, np.maximum(0.0, 1.0 - z) ** 2, -4.0 * z)
    raise ValueError(f"unknown loss {loss!r}")


def classifier_objective(est, X, y):
    """The objective of a fitted ``TorchSGDClassifier`` on ``(X, y)``
    (float64): the binary problems' objectives summed over classes (one-vs-
    rest), or the mean softmax cross-entropy plus penalty (multinomial)."""
    if not hasattr(X, "tocsr"):  # scipy.sparse stays sparse
        X = np.asarray(X, dtype=np.float64)
    W = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    b = np.asarray(est.intercept_, dtype=np.float64).ravel()
    P = np.asarray(X @ W.T) + b
    reg = est.alpha * penalty(est.penalty, W, l1_ratio=est.l1_ratio).sum()
    classes = est.classes_
    if getattr(est, "multi_class", "ovr") == "multinomial" and len(classes) > 2:
        Y = (np.asarray(y)[:, None] == classes[None, :]).astype(np.float64)
        lse = np.logaddexp.reduce(P, axis=1)
        return float((lse - (Y * P).sum(1)).mean() + reg)
    if len(classes) == 2:
        S = np.where(np.asarray(y) == classes[1], 1.0, -1.0)[:, None]
    else:
        S = np.where(np.asarray(y)[:, None] == classes[None, :], 1.0, -1.0)
    return float(margin_loss(est.loss, S, P).mean(0).sum() + reg)


def penalty(name, w, *, l1_ratio=0.15):
    """``R(w)`` per output: ``w`` of shape (n_features,) or (n_outputs, n_features)."""
    w = np.asarray(w, dtype=np.float64)
    l2 = 0.5 * (w * w).sum(-1)
    l1 = np.abs(w).sum(-1)
    if name is None:
        return np.zeros_like(l2)
    if name == "l2":
        return l2
    if name == "l1":
        return l1
    if name == "elasticnet":
        return l1_ratio * l1 + (1.0 - l1_ratio) * l2
    raise ValueError(f"unknown penalty {name!r}")


def objective(
    coef,
    intercept,
    X,
    y,
    *,
    loss="squared_error",
    penalty_name="l2",
    alpha=1e-4,
    l1_ratio=0.15,
    epsilon=0.1,
    quantile=0.5,
    sample_weight=None,
):
    """The penalised objective of ``(coef, intercept)`` on ``(X, y)``, float64.

    ``coef`` has the shape of ``coef_`` (``(n_features,)`` or
    ``(n_outputs, n_features)``), ``intercept`` is a scalar or ``(n_outputs,)``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    W = np.atleast_2d(np.asarray(coef, dtype=np.float64))  # (k, d)
    b = np.broadcast_to(np.asarray(intercept, dtype=np.float64).ravel(), W.shape[:1])
    Y = y.reshape(y.shape[0], -1)  # (n, k)
    P = X @ W.T + b
    s = (
        np.ones(X.shape[0])
        if sample_weight is None
        else np.asarray(sample_weight, dtype=np.float64)
    )
    L = pointwise_loss(loss, Y, P, epsilon=epsilon, quantile=quantile)
    data = (s[:, None] * L).sum(0) / s.sum()
    return float((data + alpha * penalty(penalty_name, W, l1_ratio=l1_ratio)).sum())


def estimator_objective(est, X, y, sample_weight=None):
    """:func:`objective` at a fitted ``TorchSGDRegressor``, with its settings."""
    return objective(
        est.coef_,
        est.intercept_,
        X,
        y,
        loss=est.loss,
        penalty_name=est.penalty,
        alpha=est.alpha,
        l1_ratio=est.l1_ratio,
        epsilon=est.epsilon,
        quantile=est.quantile,
        sample_weight=sample_weight,
    )
