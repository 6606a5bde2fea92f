"""The full-batch squared loss from the Gram matrix of ``[X, 1]``
(:class:`GramOracle`): one pass over ``X``, then no more."""

from __future__ import annotations

import numpy as np
import torch

from ..data._data import CHUNK_ROWS
from ._direct import DirectOracle
from ._protocol import Curvature, Oracle, check_moments_finite
from ._rows import augment, gen_batches, rows_per_chunk

__all__ = ["GramOracle"]

# Bytes of X per block of a pass that uses each block twice (the Gram
# statistics' two products): the second product reads the block from cache.
BLOCK_BYTES = 4 * 2**20


class GramOracle(Oracle):
    """Squared loss on the full batch through the Gram matrix of ``[X, 1]``.

    Unweighted data whose features are not dominated by their means (the
    usual case after ``StandardScaler``) take one pass over ``X`` in place,
    chunk by chunk: no copy of ``X`` is made. Otherwise the statistics are
    accumulated in float64 from chunks of ``X`` centred on their weighted
    mean, so that large feature offsets do not cost precision in float32.
    Targets are always centred (they are small), which keeps the objective's
    value accurate when ``y`` has a large offset.
    """

    # smallest var_j / E[x_j^2] for which the uncentred GEMM keeps enough
    # digits: float32 loses a factor E[x^2] / var of its 1e-7 resolution
    _MIN_RELATIVE_VARIANCE = {torch.float32: 1e-2, torch.float64: 1e-8}

    quadratic = True
    supports_least_squares_moments = True

    def __init__(self, X, Y, sample_weight, *, fit_intercept=True):
        self.fit_intercept = fit_intercept
        n, d = X.shape
        self.n_samples = n
        self.n_batches = 1
        self.out_dtype = X.dtype
        stats = None
        if sample_weight is None and isinstance(X, torch.Tensor):
            stats = self._uncentred_stats(X, Y)
        if stats is None:
            stats = self._centred_stats(X, Y, sample_weight)
        Gc, Cc, yy, mx, my = stats
        # back to raw coordinates: E[xx'] = Gc + mx mx', E[xy] = Cc + mx my'
        G = Gc + torch.outer(mx, mx)
        C = Cc + torch.outer(mx, my)
        self.yy = yy + my * my
        self.A = augment(G, mx, fit_intercept)
        check_moments_finite(self.A)
        self.C = torch.cat([C, my[None, :]], 0) if fit_intercept else C
        self.n_features = d
        # the moments of the problem in w alone (the intercept eliminated)
        self._centred = (Gc, Cc, yy, mx, my) if fit_intercept else (G, C, self.yy)

    def least_squares_moments(self):
        """``(G, C, yy)``, float64 numpy on the host: the objective in the
        coefficients alone is ``1/2 w'Gw - tr(C'w) + 1/2 sum(yy)`` per output
        (plus the penalty), from the centred moments with an intercept (which
        is then ``my - mx'w``: :meth:`intercept_of`), the raw ones without."""
        return tuple(
            t.detach().to("cpu", torch.float64).numpy() for t in self._centred[:3]
        )

    def intercept_of(self, W: np.ndarray) -> np.ndarray:
        """The optimal intercepts given coefficients ``W`` (d, k) (zeros
        without an intercept)."""
        if not self.fit_intercept:
            return np.zeros(W.shape[1])
        host = [t.detach().to("cpu", torch.float64) for t in self._centred[3:]]
        mx, my = (t.numpy() for t in host)
        return my - mx @ W

    def to(self, device):
        """The oracle with its statistics moved to ``device``."""
        self.A, self.C, self.yy = (t.to(device) for t in (self.A, self.C, self.yy))
        return self

    def column_moments(self):
        d = self.n_features
        second = torch.diagonal(self.A)[:d].clone()
        mean = self.A[:d, d].clone() if self.fit_intercept else None
        return mean, second

    @classmethod
    def _uncentred_stats(cls, X, Y):
        """One pass over ``X`` in place: each row chunk's ``X_c' X_c`` and
        ``X_c' [1, Y_c - my]`` while the chunk is in cache, summed in
        float64. None when the features' means would swamp their variance
        in X's precision."""
        f64 = torch.float64
        n, d = X.shape
        device, floor = X.device, cls._MIN_RELATIVE_VARIANCE.get(X.dtype, 1e-2)
        my = Y.sum(0, dtype=f64) / n
        B = torch.cat([torch.ones_like(Y[:, :1]), Y - my.to(Y.dtype)], 1)
        yy = (B[:, 1:].to(f64) ** 2).sum(0) / n
        chunk = int(min(CHUNK_ROWS, max(256, BLOCK_BYTES // (d * X.dtype.itemsize))))
        if device.type == "cpu":
            # numpy's BLAS through zero-copy views: its ``A' A`` is a SYRK,
            # half the work of torch's GEMM (1e6 x 100 float32: 0.15-0.2 s
            # against 0.23-0.24 s)
            X, B = X.numpy(), B.numpy()
            G, S = np.zeros((d, d)), np.zeros((d, B.shape[1]))
        else:
            G = torch.zeros((d, d), dtype=f64, device=device)
            S = torch.zeros((d, B.shape[1]), dtype=f64, device=device)
        # numpy warns where float32 products overflow: the caller checks
        # the statistics instead (NaN or inf in X, or features too large)
        with np.errstate(over="ignore", invalid="ignore"):
            for sl in gen_batches(n, chunk):
                Xc = X[sl]
                G += Xc.T @ Xc
                S += Xc.T @ B[sl]
        G = torch.as_tensor(G, device=device) / n
        S = torch.as_tensor(S, device=device) / n
        mx = S[:, 0]
        var = torch.diagonal(G) - mx * mx
        if not bool((var >= floor * torch.diagonal(G)).all()):
            return None
        # E[x (y - my)] is the centred cross-moment E[(x - mx)(y - my)]
        return G - torch.outer(mx, mx), S[:, 1:], yy, mx, my

    @staticmethod
    def _centred_stats(X, Y, sw):
        """Weighted, centred moments from row chunks (two passes)."""
        f64 = torch.float64
        n, d = X.shape
        wsum = torch.tensor(float(n), dtype=f64) if sw is None else sw.sum().to(f64)
        mx = torch.zeros(d, dtype=f64, device=X.device)
        my = torch.zeros(Y.shape[1], dtype=f64, device=X.device)
        # streamed rows (HostRows) come in their own chunks
        chunk = getattr(X, "chunk_rows", None) or rows_per_chunk(d, X.dtype.itemsize)
        for sl in gen_batches(n, chunk):
            if sw is None:
                mx += X[sl].sum(0, dtype=f64)
                my += Y[sl].sum(0, dtype=f64)
            else:
                s = sw[sl][:, None]
                mx += (X[sl] * s).sum(0, dtype=f64)
                my += (Y[sl] * s).sum(0, dtype=f64)
        wsum = wsum.to(X.device)
        mx /= wsum
        my /= wsum
        Gc = torch.zeros(d, d, dtype=f64, device=X.device)
        Cc = torch.zeros(d, Y.shape[1], dtype=f64, device=X.device)
        yy = torch.zeros(Y.shape[1], dtype=f64, device=X.device)
        mx_x, my_x = mx.to(X.dtype), my.to(X.dtype)
        for sl in gen_batches(n, chunk):
            Xc = X[sl] - mx_x
            Yc = Y[sl] - my_x
            if sw is not None:
                s = sw[sl][:, None]
                XcS, YcS = Xc * s, Yc * s
            else:
                XcS, YcS = Xc, Yc
            Gc += (XcS.T @ Xc).to(f64)
            Cc += (XcS.T @ Yc).to(f64)
            yy += (YcS * Yc).sum(0, dtype=f64)
        return Gc / wsum, Cc / wsum, yy / wsum, mx, my

    def batches(self):
        yield None

    def full_batch(self):
        return None

    def zero_model_loss(self) -> torch.Tensor:
        return 0.5 * self.yy

    def loss_grad(self, theta, idx=None, need_grad=True):
        th = theta.to(torch.float64)
        At = self.A @ th
        # 1/2 E[(y - x~'theta)^2] = 1/2 (yy - 2 C'theta + theta'A theta)
        values = 0.5 * self.yy - (self.C * th).sum(0) + 0.5 * (th * At).sum(0)
        if not need_grad:
            return values, 1.0, None
        return values, 1.0, (At - self.C).to(self.out_dtype)

    def hessian_vector(self, v: torch.Tensor) -> torch.Tensor:
        """``A v``: the data term's Hessian (the same for every output) times
        each column of ``v``, in ``v``'s dtype."""
        return (self.A @ v.to(torch.float64)).to(v.dtype)

    # most floats of the outputs' copies of ``A`` that Newton's method holds
    hessian_max_floats = 2**24

    @property
    def supports_hessian(self) -> bool:
        """Few enough coefficients for Newton's method, whose one step on
        this quadratic is the normal equations' direct solve, and outputs
        few enough for a copy of ``A`` each (conjugate gradients beyond)."""
        q, k = self.C.shape
        return q < DirectOracle.hessian_max_features and k * q * q <= (
            self.hessian_max_floats
        )

    @property
    def hessian_work(self) -> float:
        return 0.0  # the Hessian is ``A``, at hand

    def derivatives(self, theta, order: int = 2):
        """:meth:`DirectOracle.derivatives` from the statistics, no pass
        over ``X``: the Hessian is ``A`` for every output (float64 copies)."""
        values, _, grad = self.loss_grad(theta, need_grad=order >= 1)
        H = None
        if order >= 2:
            H = self.A.unsqueeze(0).repeat(theta.shape[1], 1, 1)
        return values, grad, H

    def curvature(self) -> Curvature:
        return Curvature(matrix=self.A)
