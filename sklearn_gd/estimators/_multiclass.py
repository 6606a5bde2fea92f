"""Classes and the fitted columns: labels to class indices, class weights,
the targets of the binary or softmax problems and their early-stopping
split, and whether a fit separated its classes."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.utils import compute_class_weight

from ..data._array_api import to_numpy_any
from ..data._validation import class_labels

__all__ = [
    "SplitOnLabels",
    "class_index",
    "labels_of",
    "separated",
    "class_targets",
    "validation_splitter",
    "warn_if_separated",
    "warn_if_separated",
    "with_class_weight",
    "without_minimiser",
]


class SplitOnLabels:
    """A splitter that stratifies on given labels, whatever ``y`` it is handed
    (the base class hands it the float target matrix, possibly a tensor)."""

    def __init__(self, cv, labels):
        self.cv, self.labels = cv, labels

    def split(self, X, y=None):
        """The splits of ``cv`` stratified on the labels."""
        return self.cv.split(X, self.labels)


def labels_of(y, name) -> np.ndarray:
    """The labels ``y`` as a 1-D numpy array (``name``: the estimator's, in
    scikit-learn's error for a missing y)."""
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None.")
    return class_labels(to_numpy_any(y))


def class_index(labels, classes) -> np.ndarray:
    """The index in ``classes`` of each label (there must be two classes at
    least, and every label one of them)."""
    if len(classes) < 2:
        raise ValueError(
            "The number of classes has to be greater than one; got "
            f"{len(classes)} class."
        )
    idx = np.searchsorted(classes, labels)
    idx = np.minimum(idx, len(classes) - 1)
    unseen = classes[idx] != labels
    if np.any(unseen):
        raise ValueError(
            f"y contains labels not in classes_ {classes.tolist()}: "
            f"{np.unique(labels[unseen]).tolist()}."
        )
    return idx


def with_class_weight(sample_weight, idx, labels, class_weight, classes):
    """Sample weights times the weight of each sample's class."""
    if class_weight is None:
        return sample_weight
    per_class = compute_class_weight(class_weight, classes=classes, y=labels)
    per_sample = per_class[idx]
    if sample_weight is None:
        return per_sample
    if isinstance(sample_weight, torch.Tensor):
        return sample_weight * torch.as_tensor(
            per_sample, dtype=sample_weight.dtype, device=sample_weight.device
        )
    sw = np.asarray(sample_weight)
    if sw.ndim == 0 or sw.shape == per_sample.shape:
        return sw * per_sample
    return sample_weight  # a wrong shape: validation names the problem


def class_targets(Y, k, joint):
    """The float targets of ``Y``, (n, 1) class indices as floats (numpy or
    a tensor on its device), for ``k`` classes: one {-1, +1} column for two
    (+1 for the second class); else one column per class, one-hot for the
    softmax problem (``joint``), {-1, +1} for the one-vs-rest problems."""
    if k == 2:
        return 2 * Y - 1  # +1 for classes_[1]
    if isinstance(Y, torch.Tensor):
        hit = (Y == torch.arange(k, dtype=Y.dtype, device=Y.device)).to(Y.dtype)
    else:
        hit = (Y == np.arange(k, dtype=Y.dtype)).astype(Y.dtype)
    return hit if joint else 2 * hit - 1


def validation_splitter(Y, validation_fraction, random_state) -> SplitOnLabels:
    """The early-stopping split, stratified on the classes of the targets
    ``Y``."""
    Y = to_numpy_any(Y)
    labels = Y[:, 0] > 0 if Y.shape[1] == 1 else Y.argmax(1)
    cv = StratifiedShuffleSplit(
        test_size=validation_fraction, random_state=random_state
    )
    return SplitOnLabels(cv, labels)


def separated(D, idx, sample_weight, joint) -> bool:
    """Whether the scores ``D`` (n, columns) separate the rows of positive
    weight by their class index ``idx``: the binary problem, the softmax
    problem (``joint``) or any one-vs-rest problem."""
    keep = np.ones(len(idx), bool)
    if sample_weight is not None:
        keep = np.broadcast_to(to_numpy_any(sample_weight) > 0, keep.shape)
    D, idx = D[keep], idx[keep]
    if D.shape[1] == 1:
        return bool(np.all((2 * idx - 1) * D[:, 0] > 0))
    if joint:
        own = D[np.arange(len(idx)), idx]
        D[np.arange(len(idx)), idx] = -np.inf
        return bool(np.all(own > D.max(1)))
    # one-vs-rest: any class's problem separated
    signs = 2 * (idx[:, None] == np.arange(D.shape[1])) - 1
    return bool(np.any(np.all(signs * D > 0, axis=0)))


def without_minimiser(loss, penalty, alpha) -> bool:
    """Whether separable data leave the objective without a minimiser:
    the log-loss is positive everywhere and tends to 0 along a separating
    direction, so only a penalty keeps its infimum attained."""
    unpenalised = penalty is None or alpha == 0
    return loss == "log_loss" and unpenalised


def warn_if_separated(D, idx, sample_weight, joint, n_iter) -> None:
    """A ConvergenceWarning where the fitted model's scores ``D`` separate
    the training rows (of positive weight) of a problem that has no
    minimiser then: a stop there, after ``n_iter`` epochs, is no optimum,
    however small the gradient."""
    if separated(D, idx, sample_weight, joint):
        warnings.warn(
            "The training data are linearly separable and the log-loss is "
            "unpenalised (penalty=None or alpha=0): its infimum, 0, is "
            "approached only as the coefficients grow without bound, so "
            f"the fit stopped after {n_iter} epoch(s) at no optimum. "
            "Set a penalty for a finite solution.",
            ConvergenceWarning,
        )
