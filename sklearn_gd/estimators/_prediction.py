"""Predictions of a fitted linear model: numpy on the host, torch on a device.

A fitted model's ``coef_`` and ``intercept_`` give ``X @ coef_.T +
intercept_``; host rows predicted on a device go a bounded chunk at a time,
and the device copies of the parameters are kept in a cache that serves
while ``coef_`` and ``intercept_`` hold the values they were made from.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.extmath import safe_sparse_dot

from ..data._array_api import host, to_numpy_any
from ..data._data import resolve_device, to_numpy, to_tensor
from ..data._validation import torch_dtype_of
from ..engine._state import UNRECORDED
from ..objective._rows import gen_batches, rows_per_chunk
from ..objective._sparse import csr_to_torch

__all__ = [
    "device_params",
    "host_decision",
    "host_rows_on_device",
    "predict_device",
]


def predict_device(device, X, state) -> torch.device:
    """Where to predict: ``device`` resolved as ``fit`` resolves it, so that
    a device absent here raises fit's ValueError.

    The one exception is a model fitted on a device absent here (fitted on a
    GPU, loaded on a CPU host) whose ``device`` was not changed since
    (``state``, its SolverState, records the device it was fitted with;
    None before any fit): it predicts on the CPU, with a warning, since
    predictions do not depend on the device. A device set after the fit is
    a request for that device, and fails as it would in ``fit``.
    """
    try:
        return resolve_device(device, X)
    except ValueError:
        # a model pickled before fit_device was recorded keeps the fallback
        # it was written with
        if state is None or state.fit_device not in (UNRECORDED, device):
            raise
        warnings.warn(
            f"device={device!r} is not available on this machine; "
            "predicting on the CPU.",
            UserWarning,
        )
        return torch.device("cpu")


def host_decision(X, coef, intercept) -> np.ndarray:
    """``X @ coef.T + intercept`` computed by numpy (or scipy), in X's dtype."""
    W, b = parameter_matrix(coef, intercept)
    W, b = to_numpy_any(W), to_numpy_any(b)
    out = np.asarray(safe_sparse_dot(X, W.astype(X.dtype, copy=False)))
    out += b.astype(X.dtype, copy=False)
    return out


def host_rows_on_device(X, kind, device, params) -> np.ndarray:
    """Predictions for host data computed on ``device``, a bounded chunk of
    rows at a time: predicting never needs all of X on the device.
    ``params(device, dtype)`` gives the parameters there."""
    tdtype = torch_dtype_of(X.dtype)
    W, b = params(device, tdtype)
    if kind == "sparse":
        X = X.tocsr()
    parts = []
    for sl in gen_batches(X.shape[0], rows_per_chunk(X.shape[1], X.dtype.itemsize)):
        if kind == "sparse":
            Xt = csr_to_torch(X[sl], device, tdtype)
        else:
            Xt = to_tensor(X[sl], device, tdtype)
        parts.append(to_numpy(Xt @ W + b))
    return np.concatenate(parts)


def device_params(coef, intercept, cache, device, dtype):
    """``coef`` and ``intercept`` as tensors on ``device``.

    Built once per (device, dtype) and kept, with the arrays they were made
    from, in ``cache`` (a dict); an entry serves only while ``coef`` and
    ``intercept`` still hold those values.
    """
    if isinstance(coef, torch.Tensor):  # fitted under array API dispatch
        W, b = parameter_matrix(coef, intercept)
        return W.to(device, dtype), b.to(device, dtype)
    coef, intercept = host(coef), host(intercept)
    key = (str(device), dtype)
    hit = cache.get(key)
    if hit is None or not (
        same_values(hit[0], coef) and same_values(hit[1], intercept)
    ):
        W, b = parameter_matrix(coef, intercept)
        hit = (
            snapshot(coef),
            snapshot(intercept),
            to_tensor(W, device, dtype),
            to_tensor(b, device, dtype),
        )
        cache[key] = hit
    return hit[2], hit[3]


def parameter_matrix(coef, intercept):
    """``coef_`` as a dense (n_features, n_outputs) matrix, ``intercept_`` as
    (n_outputs,): tensors for tensors, else numpy."""
    if sp.issparse(coef):
        coef = coef.toarray()
    if not isinstance(coef, torch.Tensor):
        coef, intercept = to_numpy_any(coef), to_numpy_any(intercept)
    W = coef.T if coef.ndim == 2 else coef[:, None]
    return W, intercept.reshape(-1)


def snapshot(a):
    """A copy of ``a``'s values, dense."""
    # a sparsified coef_ is held dense: the values are what the cache keys
    # on, and scipy cannot copy the 1-D sparse matrix that sparsify makes of
    # a regressor's 1-D coef_
    return dense(a).copy()


def dense(a):
    """``a`` as a numpy array (a sparse matrix densified)."""
    return a.toarray() if sp.issparse(a) else np.asarray(a)


def same_values(held, current) -> bool:
    """Whether ``current`` holds the values of the snapshot ``held``."""
    current = dense(current)
    return held.shape == current.shape and np.array_equal(held, current)
