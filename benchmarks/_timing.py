"""The cost of an epoch as the marginal cost of more epochs."""

from __future__ import annotations

import time
import warnings

import numpy as np


def fit_seconds(make, X, y, repeats=3):
    """Best of ``repeats`` fits of ``make()``, in seconds."""
    best = np.inf
    for _ in range(repeats):
        est = make()
        t0 = time.perf_counter()
        est.fit(X, y)
        best = min(best, time.perf_counter() - t0)
    return best


def per_epoch(make, X, y, k1, k2):
    """(seconds per epoch, seconds of a ``k1``-epoch fit), from fits of
    ``make(k1)`` and ``make(k2)`` epochs: the fit's set-up cancels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: on purpose
        t1 = fit_seconds(lambda: make(k1), X, y)
        t2 = fit_seconds(lambda: make(k2), X, y)
    return max(t2 - t1, 0.0) / (k2 - k1), t1
