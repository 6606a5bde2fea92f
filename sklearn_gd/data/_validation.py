"""Input validation for numpy, scipy.sparse and torch inputs.

numpy-like and sparse inputs go through scikit-learn's ``validate_data``.
torch tensors are checked here, on their own device, so that a CUDA tensor is
never copied to the host to be validated; the checks and messages mirror
``check_array``'s.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _assert_all_finite_element_wise,
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    column_or_1d,
    validate_data,
)

from ._array_api import host, to_numpy_any
from ._data import CHUNK_BYTES

__all__ = ["Inputs", "validate_fit_inputs", "validate_predict_input"]

_FLOATS = (torch.float32, torch.float64)

# all-zero weights are checked here, the same way for numpy and tensors;
# scikit-learn >= 1.8 would check them too (older versions do not)
_ANY_WEIGHTS = (
    {"allow_all_zero_weights": True}
    if "allow_all_zero_weights" in inspect.signature(_check_sample_weight).parameters
    else {}
)


@dataclass
class Inputs:
    """Validated training data, still in its own container."""

    X: object  # np.ndarray, scipy CSR, or torch.Tensor
    Y: object  # 2-D, same family as X (a tensor on X's device for tensors)
    sample_weight: object  # 1-D or None
    kind: str  # "numpy", "sparse" or "torch"
    dtype: np.dtype  # float32 or float64
    y_ndim: int


def np_dtype_of(t: torch.dtype) -> np.dtype:
    return np.dtype(np.float32) if t == torch.float32 else np.dtype(np.float64)


def torch_dtype_of(d) -> torch.dtype:
    return torch.float32 if np.dtype(d) == np.float32 else torch.float64


def _as_1d_if_column(y):
    """A column vector ``y`` of shape (n, 1) as (n,), with scikit-learn's
    DataConversionWarning (as SGDRegressor, Ridge and Lasso flatten it)."""
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please "
            "change the shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=4,
        )
        return y[:, 0]
    return y


def _raise_non_finite(has_nan: bool, dtype, name: str, estimator) -> None:
    """Raise scikit-learn's own error for NaN or infinity in input ``name``:
    ``check_array``'s message, which for NaN in ``X`` names the estimator
    and points to imputers and to the estimators that take NaN. It is made
    by scikit-learn's element-wise check on one such value, the input
    having been checked here (on the device, or on torch's threads)."""
    value = np.array([np.nan if has_nan else np.inf], dtype=dtype)
    _assert_all_finite_element_wise(
        value,
        xp=np,
        allow_nan=False,
        estimator_name=None if estimator is None else type(estimator).__name__,
        input_name=name,
    )
    raise ValueError(f"Input {name} contains NaN or infinity.")  # not reached


def _check_finite_tensor(t: torch.Tensor, name: str, estimator=None) -> None:
    if not bool(torch.isfinite(t).all()):
        has_nan = bool(torch.isnan(t).any())
        _raise_non_finite(has_nan, np_dtype_of(t.dtype), name, estimator)


def check_finite_host(X: np.ndarray, name: str, estimator=None) -> None:
    """Raise scikit-learn's error if a dense host array holds NaN or inf
    (its message names ``estimator``, as ``validate_data``'s does).

    A sum per chunk, on torch's threads (numpy reduces on one): a finite sum
    proves its chunk finite; a chunk whose sum is not finite is checked
    element by element, so that a sum that merely overflows is not an error.
    """
    if X.dtype.kind != "f" or X.size == 0:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays
        T = torch.from_numpy(X.reshape(X.shape[0], -1))
    rows = max(1, CHUNK_BYTES // max(1, T.shape[1] * X.dtype.itemsize))
    for start in range(0, T.shape[0], rows):
        chunk = T[start : start + rows]
        if not math.isfinite(float(chunk.sum())):
            _check_finite_tensor(chunk, name, estimator)


def _tensor_float(t: torch.Tensor, name: str, dtype=None) -> torch.Tensor:
    if t.is_complex():
        raise ValueError(f"Complex data not supported: {name} is {t.dtype}.")
    if dtype is not None:
        return t.to(dtype)
    if t.dtype in _FLOATS:
        return t
    # half precision trains in float32 (not float64: four times the memory);
    # integers and booleans become float64, as numpy input does
    half = t.is_floating_point()
    return t.to(torch.float32 if half else torch.float64)


def _validate_tensor_X(estimator, X: torch.Tensor, *, reset: bool, dtype=None):
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D tensor instead. Reshape your data "
            "either using X.reshape(-1, 1) if your data has a single feature or "
            "X.reshape(1, -1) if it contains a single sample."
        )
    X = _tensor_float(X, "X", dtype)
    n, d = X.shape
    if n < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum "
            "of 1 is required."
        )
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a "
            "minimum of 1 is required."
        )
    _check_feature_names(estimator, X, reset=reset)
    _check_n_features(estimator, X, reset=reset)
    _check_finite_tensor(X, "X", estimator)
    return X.contiguous()


def _as_tensor_like(a, X: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a
    else:
        arr = to_numpy_any(a)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
        t = torch.from_numpy(np.array(arr, dtype=np.float64))
    if t.is_complex():
        raise ValueError(f"Complex data not supported: {name} is {t.dtype}.")
    return t.to(device=X.device, dtype=X.dtype)


def _validate_tensor_inputs(
    estimator, X, y, sample_weight, *, reset, dtype, allow_all_zero_weights
):
    X = _validate_tensor_X(estimator, X, reset=reset, dtype=dtype)
    if y is None:
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, but the target y "
            "is None."
        )
    Y = _as_tensor_like(y, X, "y")
    if Y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got {Y.ndim} dimensions.")
    if Y.shape[0] != X.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {Y.shape[0]}]"
        )
    _check_finite_tensor(Y, "y", estimator)
    sw = None
    if sample_weight is not None:
        sw = _as_tensor_like(sample_weight, X, "sample_weight")
        if sw.ndim == 0:
            sw = sw.expand(X.shape[0]).clone()
        if sw.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight.shape == {tuple(sw.shape)}, expected {(X.shape[0],)}!"
            )
        _check_finite_tensor(sw, "sample_weight", estimator)
        if bool((sw < 0).any()):
            raise ValueError("Negative values in data passed to `sample_weight`.")
        if not allow_all_zero_weights:
            _check_some_weight(bool((sw > 0).any()))
    Y = _as_1d_if_column(Y)
    y_ndim = Y.ndim
    return Inputs(
        X,
        Y.reshape(X.shape[0], -1).contiguous(),
        sw,
        "torch",
        np_dtype_of(X.dtype),
        y_ndim,
    )


def _check_some_weight(any_positive: bool) -> None:
    if not any_positive:
        raise ValueError("Sample weights must contain at least one non-zero number.")


def validate_fit_inputs(
    estimator,
    X,
    y,
    sample_weight=None,
    *,
    reset=True,
    dtype=None,
    finite_x=True,
    allow_all_zero_weights=False,
) -> Inputs:
    """Validate ``X``, ``y`` and ``sample_weight`` for fit or partial_fit.

    ``dtype`` forces a float dtype (partial_fit keeps its first call's).
    Arrays of namespaces other than numpy and torch arrive as numpy.
    ``finite_x=False`` leaves a dense numpy ``X``'s check for NaN and
    infinity to the caller (:func:`check_finite_host`), which may get it
    from a pass over ``X`` it makes anyway. ``allow_all_zero_weights``
    leaves all-zero weights to the caller (early stopping, as in
    SGDClassifier, names the set whose weights are all zero).
    """
    X, y, sample_weight = host(X), host(y), host(sample_weight)
    if isinstance(X, torch.Tensor):
        tdtype = None if dtype is None else torch_dtype_of(dtype)
        return _validate_tensor_inputs(
            estimator,
            X,
            y,
            sample_weight,
            reset=reset,
            dtype=tdtype,
            allow_all_zero_weights=allow_all_zero_weights,
        )
    # X decides where training happens: tensors of y and weights come along
    y, sample_weight = (
        to_numpy_any(a) if isinstance(a, torch.Tensor) else a
        for a in (y, sample_weight)
    )
    X, y = _validate_array_X_y(
        estimator, X, y, reset=reset, dtype=dtype, finite_x=finite_x
    )
    y = _as_1d_if_column(y)
    y_ndim = y.ndim
    Y = np.ascontiguousarray(y.reshape(y.shape[0], -1))
    sw = None
    if sample_weight is not None:
        sw = _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True, **_ANY_WEIGHTS
        )
        if not allow_all_zero_weights:
            _check_some_weight(bool(np.any(sw > 0)))
    kind = "sparse" if sp.issparse(X) else "numpy"
    return Inputs(X, Y, sw, kind, np.dtype(X.dtype), y_ndim)


def _validate_array_X_y(estimator, X, y, *, reset, dtype, finite_x):
    """``X`` (numpy or sorted CSR) and ``y`` (an array of ``X``'s dtype)
    validated by scikit-learn's ``validate_data``, with a dense ``X``'s
    check for NaN and infinity made here (unless ``finite_x`` is False)."""
    sparse_in = sp.issparse(X)
    X, y = validate_data(
        estimator,
        X,
        y,
        reset=reset,
        # dense X is checked below on every thread; scikit-learn checks on one
        ensure_all_finite=sparse_in,
        dtype=[np.float64, np.float32] if dtype is None else dtype,
        order="C",
        multi_output=True,
        y_numeric=True,
        accept_sparse=["csr", "csc", "coo"],
        accept_large_sparse=True,
    )
    if not sp.issparse(X) and finite_x:
        check_finite_host(X, "X", estimator)
    if sp.issparse(X):
        X = X.tocsr()  # a CSR X is returned as is: the caller's own arrays
        if not X.has_sorted_indices:
            X = X.sorted_indices()  # a sorted copy; fit never modifies X
    with np.errstate(over="ignore"):
        y = np.asarray(y, dtype=X.dtype)
    if not np.isfinite(y).all():
        raise ValueError(
            f"y has values too large for {X.dtype} (the dtype of X, which y is "
            "converted to); scale y or pass X as float64."
        )
    return X, y


def class_labels(y) -> np.ndarray:
    """``y`` as a 1-D array of class labels, with scikit-learn's errors for
    targets that are not classes (continuous, multi-output, non-finite).

    A 1-D numpy array of integers, booleans or integral floats is checked
    directly: scikit-learn's ``type_of_target`` takes about 0.5 ms on any
    array, a tenth of a small fit. Everything else goes through it.
    """
    if isinstance(y, np.ndarray) and y.ndim == 1 and y.size:
        kind = y.dtype.kind
        if kind in "iub":
            return y
        if kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
            return y
    labels = column_or_1d(y, warn=True)
    check_classification_targets(labels)
    return labels


def validate_predict_input(estimator, X):
    """Validate ``X`` for predict; returns ``(X, kind)``."""
    X = host(X)
    if isinstance(X, torch.Tensor):
        return _validate_tensor_X(estimator, X, reset=False), "torch"
    X = validate_data(
        estimator,
        X,
        reset=False,
        dtype=[np.float64, np.float32],
        accept_sparse=["csr", "csc", "coo"],
        accept_large_sparse=True,
    )
    return X, ("sparse" if sp.issparse(X) else "numpy")
