"""A single-output loss and its gradient from one read of the rows of a
dense host ``X``, through the compiled extension ``_rowpass``.

Torch computes a batch's gradient with two matrix-vector products, ``X w``
and ``X' f``, each a read of ``X``: an epoch over rows in memory costs about
twice the memory floor. The extension takes each row's prediction, loss,
derivative and share of the gradient while the row is in cache (eight rows
at a time), so an epoch reads ``X`` once; a large batch's rows are split
over torch's thread count, on threads of the extension's own. Where the
extension was not built (no C compiler at install) :func:`one_pass_for`
gives None and the oracles use torch's products.
"""

from __future__ import annotations

import torch

try:
    from . import _rowpass
except ImportError:  # installed without a C compiler
    _rowpass = None

__all__ = ["OnePass", "one_pass_for"]

# a batch of at least this many elements of X is split over torch's thread
# count: starting and joining a thread costs about 0.1 ms, a pass over 2**21
# float32 elements about 0.5 ms on one thread (1024 rows of 100: 0.015 ms
# on one thread, 0.094 on two; 65536 rows: 1.66 ms on one, 0.92 on two)
THREADED_ELEMENTS = 2**21


def _host_column(v: torch.Tensor) -> torch.Tensor:
    """A contiguous 1-d copy (or view) of a host column."""
    return v.reshape(-1).contiguous()


class OnePass:
    """The compiled pass for one oracle's ``X``, targets, weights and loss.

    Parameters
    ----------
    X : CPU tensor of shape (n_samples, n_features), float32 or float64,
        rows contiguous
    y : CPU tensor of shape (n_samples,), X's dtype, contiguous
    sw : CPU tensor of shape (n_samples,), X's dtype, contiguous, or None
    kernel : (int, float)
        The loss's number in the extension and its parameter
        (:meth:`~sklearn_gd.model._losses.Loss.row_kernel`).
    """

    def __init__(self, X, y, sw, kernel):
        self.X, self.y, self.sw = X, y, sw
        self.kernel = kernel

    def __call__(self, theta, rows, fit_intercept: bool, coef_scale: float = 1.0):
        """The batch's weighted loss sum (a tensor of shape (1,)) and the
        gradient of that sum, ``[X_b' f; sum(f)]`` (shape of ``theta``,
        float64), ``f`` the weighted loss derivatives at the predictions
        ``coef_scale * X_b theta[:d] + theta[d]``.

        ``rows`` is a slice of rows or a tensor of row numbers (the
        extension raises IndexError for a row outside ``X``). The extension
        reads the tensors' memory while it runs: they are held here (X, y,
        sw) or by the caller (theta's copy ``w``, ``rows``)."""
        X = self.X
        n, d = X.shape
        w = theta[:d, 0]
        if w.dtype != X.dtype or not w.is_contiguous():
            w = w.to(X.dtype).contiguous()
        b = theta[d, 0].item() if fit_intercept else 0.0
        if isinstance(rows, slice):
            start, stop, step = rows.indices(n)
            if step != 1:
                raise ValueError(f"rows {rows}: only consecutive rows")
            m, index = max(stop - start, 0), 0
        else:
            rows = rows.to(device="cpu", dtype=torch.int64).contiguous()
            start, m, index = 0, rows.shape[0], rows.data_ptr()
        threads = torch.get_num_threads() if m * d >= THREADED_ELEMENTS else 1
        grad = torch.zeros(d + 1, dtype=torch.float64)
        total = _rowpass.rowpass(
            *self.kernel,
            X.dtype == torch.float64,
            X.data_ptr(),
            n,
            X.stride(0),
            d,
            index,
            start,
            m,
            self.y.data_ptr(),
            0 if self.sw is None else self.sw.data_ptr(),
            w.data_ptr(),
            b,
            float(coef_scale),
            grad.data_ptr(),
            threads,
        )
        values = torch.full((1,), total, dtype=X.dtype)
        grad = grad if fit_intercept else grad[:d]
        return values, grad.to(theta.dtype)[:, None]


def one_pass_for(X, Y, sample_weight, loss) -> OnePass | None:
    """The compiled pass for these data and loss, or None where it does not
    apply: the extension not built, a loss without a kernel (joint, or
    smoothed), more than one output, or ``X`` not a dense host float32 or
    float64 tensor with contiguous rows."""
    kernel = loss.row_kernel()
    if _rowpass is None or kernel is None:
        return None
    if not isinstance(X, torch.Tensor) or X.device.type != "cpu":
        return None
    if X.layout != torch.strided or X.dtype not in (torch.float32, torch.float64):
        return None
    if X.ndim != 2 or X.stride(1) != 1 or Y.ndim != 2 or Y.shape[1] != 1:
        return None
    if Y.device.type != "cpu" or Y.dtype != X.dtype:
        return None
    sw = None
    if sample_weight is not None:
        if sample_weight.device.type != "cpu" or sample_weight.dtype != X.dtype:
            return None
        sw = _host_column(sample_weight)
    return OnePass(X, _host_column(Y), sw, kernel)
