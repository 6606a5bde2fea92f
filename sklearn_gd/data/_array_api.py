"""Inputs and outputs in any array API namespace.

Training runs in torch. Where the arrays come from decides where the results
go, as in scikit-learn:

* numpy, scipy.sparse, lists, pandas: numpy out;
* torch tensors: trained in place on their device; under array API dispatch
  (``sklearn.config_context(array_api_dispatch=True)``) fitted arrays and
  outputs are tensors on that device, else numpy;
* any other namespace (array_api_strict, cupy, ...): converted to numpy on
  the host on the way in; under dispatch, fitted arrays and outputs go back
  to that namespace and device.

``X`` alone decides: ``y`` and ``sample_weight`` of another namespace or
device are brought to ``X``'s side.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import get_config
from sklearn.externals.array_api_compat import is_array_api_obj, is_dask_array

try:  # scikit-learn >= 1.9
    from sklearn.utils._array_api import check_same_namespace
except ImportError:  # older scikit-learn does not check

    def check_same_namespace(X, estimator, *, attribute, method):
        """Stand-in: scikit-learn before 1.9 has no such check."""


__all__ = [
    "OutputSpace",
    "check_fitted_namespace",
    "host",
    "is_foreign",
    "output_space",
    "to_numpy_any",
]


def dispatch_on() -> bool:
    """Whether scikit-learn's array API dispatch is enabled."""
    return bool(get_config().get("array_api_dispatch", False))


def is_foreign(a) -> bool:
    """An array of an array API namespace other than numpy and torch.

    CuPy's arrays have no ``__array_namespace__``; array_api_compat (which
    scikit-learn vendors) knows them. Dask arrays have a path of their own.
    """
    if isinstance(a, (np.ndarray, torch.Tensor)) or sp.issparse(a):
        return False
    return hasattr(a, "__array_namespace__") or (
        is_array_api_obj(a) and not is_dask_array(a)
    )


def _foreign_to_numpy(a) -> np.ndarray:
    try:  # scikit-learn >= 1.8
        from sklearn.utils._array_api import move_to
    except ImportError:
        from sklearn.utils._array_api import _convert_to_numpy

        return np.asarray(_convert_to_numpy(a, a.__array_namespace__()))
    return np.asarray(move_to(a, xp=np, device="cpu"))


def host(a):
    """``a`` itself, or a numpy copy of an array of a foreign namespace."""
    return _foreign_to_numpy(a) if is_foreign(a) else a


def to_numpy_any(a) -> np.ndarray:
    """numpy view or copy of any array: numpy, a tensor on any device, or an
    array of another namespace on any device."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy().copy()
    return np.asarray(host(a))


class OutputSpace:
    """Where fitted arrays and outputs go: a namespace and a device."""

    def __init__(self, xp, device):
        self.xp, self.device = xp, device

    def put(self, a):
        """``a`` (numpy or a tensor) in this namespace, on this device."""
        if self.xp is torch:
            if isinstance(a, torch.Tensor):
                return a.to(self.device)
            return torch.as_tensor(np.ascontiguousarray(a), device=self.device)
        return self.xp.asarray(to_numpy_any(a), device=self.device)


def output_space(X) -> OutputSpace | None:
    """The namespace and device of ``X`` when outputs must follow it (array
    API dispatch on, ``X`` not numpy), else None: numpy out."""
    if not dispatch_on():
        return None
    if isinstance(X, torch.Tensor):
        return OutputSpace(torch, X.device)
    if is_foreign(X):
        return OutputSpace(X.__array_namespace__(), X.device)
    return None


def check_fitted_namespace(X, estimator, method: str) -> None:
    """Under dispatch, raise a ValueError when ``X`` is not of the namespace
    and device the estimator was fitted on (scikit-learn's rule)."""
    check_same_namespace(X, estimator, attribute="coef_", method=method)
