"""Test scores of every trained unit, and GridSearchCV's ``cv_results_``.

The estimators' own scores (R^2 for regression, accuracy for
classification, both weighted by ``sample_weight`` as their ``score``
methods are) are computed for all units of a fold at once: one product of
the fold's held-out rows with the fold's columns, on the training device.
Any other scorer is called per unit, on an estimator that holds that unit's
coefficients (see :mod:`sklearn_gd.estimators._cv`).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.ma import MaskedArray
from scipy.stats import rankdata
from sklearn.utils import _safe_indexing

from ..data._data import to_numpy, to_tensor
from ..objective._cv_oracles import Layout

__all__ = [
    "default_scores",
    "held_out_scores",
    "scorer_scores",
    "search_results",
    "unit_accuracy",
    "unit_r2",
    "unit_r2_from_moments",
]

_F64 = torch.float64


def _fold_predictions(oracle, layout, coef, intercept, folds):
    """``(units, index, P)`` per piece of each fold's held-out rows, ``P``
    of shape (rows, units of the fold, k)."""
    k = layout.k
    for f, cols, units in layout.by_fold:
        W, b = coef[:, cols], intercept[cols]
        for index, P in oracle.predictions(folds[f], W, b):
            yield units, f, index, P.reshape(P.shape[0], units.shape[0], k)


def unit_r2(oracle, layout, coef, intercept, folds, Y, sample_weight):
    """R^2 of every unit on its fold's held-out rows, averaged uniformly
    over outputs: :func:`sklearn.metrics.r2_score` (a constant target scores
    1 when predicted exactly, else 0)."""
    Y = Y.to(_F64)
    w = _weights(Y, sample_weight)
    out = np.empty(layout.n_units)
    sse = {}
    for units, f, index, P in _fold_predictions(oracle, layout, coef, intercept, folds):
        r = (Y[index][:, None, :] - P.to(_F64)) ** 2 * w[index][:, None, None]
        sse[f] = sse.get(f, 0.0) + r.sum(0)
    for f, _, units in layout.by_fold:
        rows = torch.as_tensor(folds[f], device=Y.device)
        Yt, wt = Y[rows], w[rows]
        mean = (Yt * wt[:, None]).sum(0) / wt.sum()
        sst = (((Yt - mean) ** 2) * wt[:, None]).sum(0)
        num = sse[f]
        r2 = torch.where(
            sst > 0,
            1 - num / sst.clamp_min(torch.finfo(_F64).tiny),
            (num == 0).to(_F64),
        )
        out[units] = r2.mean(1).cpu().numpy()
    return out


def unit_r2_from_moments(layout, coef, intercept, test):
    """:func:`unit_r2` from the held-out rows' moments (``test``, a
    :class:`~sklearn_gd.objective._cv_oracles.Moments` per fold, weighted by the
    sample weights), without reading ``X``: the mean squared residual of
    ``y - x w - b`` is ``yyc - 2 Cc' w + w' Gc w + (my - mx w - b)^2``.
    None where a held-out target is constant (R^2's special case)."""
    if not bool((test.yyc > 0).all()):
        return None
    out = np.empty(layout.n_units)
    for f, cols, units in layout.by_fold:
        m = units.shape[0]
        W, b = coef[:, cols].to(_F64), intercept[cols].to(_F64)
        yy, my = test.yyc[f].repeat(m), test.my[f].repeat(m)
        e = my - test.mx[f] @ W - b
        sse = yy - 2 * (test.Cc[f].repeat(1, m) * W).sum(0)
        sse = sse + (W * (test.Gc[f] @ W)).sum(0) + e * e
        r2 = 1 - sse / yy
        out[units] = r2.reshape(m, layout.k).mean(1).cpu().numpy()
    return out


def unit_accuracy(oracle, layout, coef, intercept, folds, labels, sample_weight):
    """Accuracy of every unit on its fold's held-out rows (``labels``: the
    class index of each sample); the predicted class is the largest
    column, or for one column the sign (positive: class 1)."""
    w = _weights(labels, sample_weight)
    hits = {}
    for units, f, index, P in _fold_predictions(oracle, layout, coef, intercept, folds):
        pred = (P[:, :, 0] > 0).long() if P.shape[2] == 1 else P.argmax(2)
        hit = (pred == labels[index][:, None]).to(_F64) * w[index][:, None]
        hits[f] = hits.get(f, 0.0) + hit.sum(0)
    out = np.empty(layout.n_units)
    for f, _, units in layout.by_fold:
        rows = torch.as_tensor(folds[f], device=w.device)
        out[units] = (hits[f] / w[rows].sum()).cpu().numpy()
    return out


def default_scores(oracle, layout, coef, intercept, tests, data, class_index, sw):
    """The estimator's own score of every unit of ``layout`` on its fold's
    rows ``tests``: R^2 of the targets, or (``class_index`` given, a
    classifier's) the accuracy of the class indices."""
    if class_index is None:
        Y = to_tensor(data.Y, data.device, torch.float64)
        return unit_r2(oracle, layout, coef, intercept, tests, Y, sw)
    labels = torch.as_tensor(class_index, device=data.device)
    return unit_accuracy(oracle, layout, coef, intercept, tests, labels, sw)


def held_out_scores(held_out, data, units, coef, intercept, class_index):
    """The default test score of every unit: a regressor's from the
    held-out moments where the Gram path has them, else from the held-out
    rows (accuracy needs the rows)."""
    layout = Layout(units.fold, units.k, data.device)
    moments = held_out.moments
    if class_index is None and moments is not None and moments.test is not None:
        flat = unit_r2_from_moments(layout, coef, intercept, moments.test)
        if flat is not None:
            return flat
    sw = data.sample_weight
    sw = None if sw is None else to_tensor(sw, data.device, torch.float64)
    return default_scores(
        held_out.oracle, layout, coef, intercept, held_out.tests, data, class_index, sw
    )


def scorer_scores(scorer, units, coef, intercept, held_out, unit_estimator):
    """A scorer's test score of every unit, called on ``unit_estimator(u,
    coef, intercept)``, an estimator that holds unit ``u``'s parameters
    (its ``k`` columns of ``coef`` and ``intercept``)."""
    coef, intercept = to_numpy(coef), to_numpy(intercept)
    X, y, sw = held_out.X, held_out.y, held_out.sample_weight
    k = units.k
    out = np.empty(units.n)
    for f, test in enumerate(held_out.tests):
        X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
        kwargs = {} if sw is None else {"sample_weight": _safe_indexing(sw, test)}
        for u in np.flatnonzero(units.fold == f):
            cols = slice(u * k, (u + 1) * k)
            est = unit_estimator(u, coef[:, cols], intercept[cols])
            out[u] = scorer(est, X_test, y_test, **kwargs)
    return out


def _weights(like, sample_weight):
    if sample_weight is None:
        return torch.ones(like.shape[0], dtype=_F64, device=like.device)
    return sample_weight.to(device=like.device, dtype=_F64)


def search_results(candidates: list[dict], scores: np.ndarray) -> dict:
    """``cv_results_`` as :class:`~sklearn.model_selection.GridSearchCV`
    writes it, for ``scores`` of shape (n_candidates, n_splits): the
    ``param_<name>`` masked arrays, ``params``, ``split<i>_test_score``,
    ``mean_test_score``, ``std_test_score`` and ``rank_test_score`` (a
    non-finite mean ranks with the worst)."""
    results = {}
    for name in candidates[0]:
        values = np.array([c[name] for c in candidates])
        dtype = values.dtype if values.dtype.kind != "U" else object
        results[f"param_{name}"] = MaskedArray(values.astype(dtype), mask=False)
    results["params"] = candidates
    for i in range(scores.shape[1]):
        results[f"split{i}_test_score"] = scores[:, i]
    means = scores.mean(1)
    results["mean_test_score"] = means
    results["std_test_score"] = scores.std(1)
    if np.isnan(means).all():
        rank = np.ones_like(means, dtype=np.int32)
    else:
        filled = np.nan_to_num(means, nan=np.nanmin(means) - 1)
        rank = rankdata(-filled, method="min").astype(np.int32)
    results["rank_test_score"] = rank
    return results
