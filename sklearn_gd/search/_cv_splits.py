"""What the search trains and scores on: its splits and their weights.

The splits come from the ``cv`` parameter (:func:`make_folds`); each trains
with its fold weights, zero on its held-out rows (and, under early
stopping, on the validation rows the base estimator's own fit on it would
hold out: :func:`fold_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import check_cv

__all__ = ["HeldOut", "Splits", "fold_weights", "make_folds", "take"]


@dataclass
class HeldOut:
    """What the test scores are computed from: each split's held-out rows,
    the data as given to ``fit`` (for a scorer), the row oracle, and the
    folds' moments (None off the Gram path)."""

    tests: list
    X: object
    y: object
    sample_weight: object
    oracle: object
    moments: object


@dataclass
class Splits:
    """What each split trains on: the (n_samples, n_splits) fold weights,
    its number of training rows, the samples' training weights, the
    (train, test) index pairs, and its validation rows (early stopping)."""

    fold_weights: np.ndarray
    train_rows: list
    weights: np.ndarray
    folds: list
    validation: list | None = None


def take(a, rows):
    """Rows of a numpy array, a scipy.sparse matrix or a tensor (None stays
    None)."""
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(rows, device=a.device)]
    return a[rows]


def make_folds(cv, X, labels, groups, n, classes=None) -> list:
    """The (train, test) index pairs of the splitter ``cv`` stands for,
    each sorted; ``classes``: a classifier's, every one of which each
    training split must hold (None for a regressor)."""
    splitter = check_cv(cv, labels, classifier=classes is not None)
    Xs = X if isinstance(X, np.ndarray) else np.zeros((n, 1))
    folds = [
        (np.sort(np.asarray(tr)), np.sort(np.asarray(te)))
        for tr, te in splitter.split(Xs, labels, groups)
    ]
    if not folds:
        raise ValueError("The cross-validation splitter gave no split.")
    if classes is None:
        return folds
    for f, (train, _) in enumerate(folds):
        seen = np.unique(np.searchsorted(classes, labels[train]))
        if seen.size < len(classes):
            raise ValueError(
                f"Split {f}'s training samples miss classes "
                f"{np.setdiff1d(classes, classes[seen]).tolist()}; "
                "every class must be in every training split (use a "
                "stratified splitter or fewer splits)."
            )
    return folds


def fold_weights(folds, weights, Y, split=None) -> Splits:
    """The weights each split trains with (``weights``: every sample's),
    and, where ``split`` is given (early stopping: the base estimator's
    split of a training set, from its targets ``Y`` and weights), each
    split's validation rows: those that split of its training rows holds
    out."""
    n = weights.shape[0]
    out = Splits(np.zeros((n, len(folds))), [], weights, folds)
    if split is not None:
        out.validation = []
    for f, (train, _) in enumerate(folds):
        if train.size == 0:
            raise ValueError(f"Split {f} has no training sample.")
        if split is not None:
            fit, held = split(take(Y, train), weights[train])
            out.validation.append(np.sort(train[held]))
            train = train[fit]
        out.fold_weights[train, f] = weights[train]
        out.train_rows.append(train.size)
        if not out.fold_weights[:, f].sum() > 0:
            raise ValueError(
                f"The sample weights of split {f}'s training samples are all zero."
            )
    return out
