"""Gradient oracles: the data term of the objective and its gradient.

An oracle owns the training data on its device and answers, for a batch,
the weighted mean loss per output and its gradient in ``(coef, intercept)``::

    f_j(W, b) = sum_i s_i L(y_ij, x_i . w_j + b_j) / sum_i s_i

Two implementations give the same answers (up to rounding):

* :class:`DirectOracle` reads the rows of ``X`` for every batch. It serves
  every loss and every batch size, with closed-form gradients (no autograd).
* :class:`GramOracle` serves the squared loss on the full batch. One pass
  over ``X`` builds ``A = X~' S X~ / sum(s)`` (with ``X~ = [X, 1]``) and
  ``C = X~' S Y / sum(s)``; each later step costs O(d^2 k) and never touches
  ``X`` again, since the gradient is ``A theta - C``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from ._losses import Loss, SquaredError

__all__ = ["DirectOracle", "GramOracle", "choose_oracle", "lipschitz_estimate"]

# Rows per chunk when a pass over X builds a statistic: bounds the temporary
# memory to CHUNK_ROWS * n_features elements.
CHUNK_ROWS = 16384

# below this many features, the curvature estimate for eta0="auto" takes the
# Gram matrix's largest eigenvalue rather than power iteration over X
GRAM_EIGEN_MAX_FEATURES = 512


def _row_chunks(n: int, size: int = CHUNK_ROWS):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class DirectOracle:
    """Loss and gradient computed from the rows of ``X``, batch by batch.

    Parameters
    ----------
    X : tensor of shape (n_samples, n_features)
    Y : tensor of shape (n_samples, n_outputs)
    sample_weight : tensor of shape (n_samples,) or None
    loss : Loss
    fit_intercept : bool
    batch_size : int or None
        None for one batch holding every row.
    shuffle : bool
        Visit the rows in a new random order each epoch.
    generator : torch.Generator or None
        The only source of randomness (CPU generator; permutations are moved
        to the data's device).
    """

    def __init__(
        self,
        X,
        Y,
        sample_weight,
        loss: Loss,
        *,
        fit_intercept=True,
        batch_size=None,
        shuffle=False,
        generator=None,
    ):
        self.X, self.Y, self.sw = X, Y, sample_weight
        self.loss = loss
        self.fit_intercept = fit_intercept
        n = X.shape[0]
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.shuffle = shuffle and self.batch_size < n
        self.generator = generator
        self.n_samples = n
        self.n_batches = math.ceil(n / self.batch_size)

    def batches(self):
        """Index objects of one epoch: slices (no copy) or index tensors."""
        n, bs = self.n_samples, self.batch_size
        if not self.shuffle:
            for start in range(0, n, bs):
                yield slice(start, min(start + bs, n))
            return
        perm = torch.randperm(n, generator=self.generator).to(self.X.device)
        for start in range(0, n, bs):
            yield perm[start : start + bs]

    def full_batch(self):
        return slice(0, self.n_samples)

    def zero_model_loss(self) -> torch.Tensor:
        """Data term of the all-zero model per output: a scale for the
        objective that needs no pass over ``X``."""
        P = torch.zeros_like(self.Y)
        values = self.loss.value(self.Y, P)
        if self.sw is None:
            return values.mean(0)
        s = self.sw[:, None]
        return (values * s).sum(0) / s.sum()

    def _rows(self, idx):
        """The batch's rows of X and their transpose."""
        if isinstance(idx, torch.Tensor) and self.X.device.type == "cpu":
            # numpy's row gather is several times faster than torch's on CPU
            Xb = torch.from_numpy(np.take(self.X.numpy(), idx.numpy(), axis=0))
        else:
            Xb = self.X[idx]
        return Xb, Xb.T

    def loss_grad(self, theta, idx, need_grad=True):
        """Weighted mean loss per output, batch weight, and gradient.

        ``theta`` stacks the coefficients and (when fitted) the intercept as
        one (n_features + fit_intercept, n_outputs) matrix. Returns
        ``(values, weight, grad)``: ``values`` of shape (n_outputs,),
        ``weight`` the batch's total sample weight (a float or a 0-dim tensor,
        so that epoch averages need no host synchronisation), ``grad`` shaped
        like ``theta``.
        """
        Xb, XbT = self._rows(idx)
        Yb = self.Y[idx]
        d = Xb.shape[1]
        W = theta[:d]
        P = torch.addmm(theta[d], Xb, W) if self.fit_intercept else Xb @ W
        if self.sw is None:
            weight = float(Xb.shape[0])
            values = self.loss.value(Yb, P).sum(0) / weight
            if not need_grad:
                return values, weight, None
            D = self.loss.derivative(Yb, P) / weight
        else:
            sb = self.sw[idx][:, None]
            weight = sb.sum()
            # a batch of zero-weight rows contributes nothing (not 0 / 0)
            denom = weight.clamp_min(torch.finfo(sb.dtype).tiny)
            values = (self.loss.value(Yb, P) * sb).sum(0) / denom
            if not need_grad:
                return values, weight, None
            D = self.loss.derivative(Yb, P) * (sb / denom)
        if not self.fit_intercept:
            return values, weight, XbT @ D
        grad = torch.empty_like(theta)
        grad[:d] = XbT @ D
        torch.sum(D, 0, out=grad[d])
        return values, weight, grad

    def matvec_stats(self):
        """(X~' S X~ / sum s) @ v as a function, and the max scaled row norm^2."""
        X, sw, fi = self.X, self.sw, self.fit_intercept
        n = X.shape[0]
        wsum = float(n) if sw is None else float(sw.sum())

        def matvec(v):
            # v has shape (d + fi,)
            out = torch.zeros_like(v)
            for sl in _row_chunks(n):
                Xc = X[sl]
                r = Xc @ v[: X.shape[1]]
                if fi:
                    r = r + v[-1]
                if sw is not None:
                    r = r * sw[sl]
                out[: X.shape[1]] += Xc.T @ r
                if fi:
                    out[-1] += r.sum()
            return out / wsum

        max_row = 0.0
        for sl in _row_chunks(n):
            norms = (X[sl] * X[sl]).sum(1) + (1.0 if fi else 0.0)
            if sw is not None:
                norms = norms * sw[sl] * (n / wsum)
            max_row = max(max_row, float(norms.max()))
        return matvec, max_row


def csr_to_torch(X, device, dtype) -> torch.Tensor:
    """A scipy CSR matrix (or array) as a torch sparse CSR tensor."""
    with warnings.catch_warnings():
        # torch flags its sparse CSR support as beta at every construction
        warnings.simplefilter("ignore", UserWarning)
        t = torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(np.asarray(X.data)),
            size=X.shape,
            dtype=dtype,
            check_invariants=False,
        )
    return t.to(device)


class SparseOracle(DirectOracle):
    """:class:`DirectOracle` for a scipy.sparse ``X``, never densified.

    ``X`` lives on the device as a torch sparse CSR tensor, with ``X'`` as its
    own CSR so that both full-batch products are row-major. A minibatch is
    cut from the CSR arrays on the device: a contiguous batch as views, a
    shuffled one by gathering its rows' non-zeros; its transpose is the free
    CSC view.
    """

    def __init__(self, Xs, Y, sample_weight, loss, *, device, dtype, **kwargs):
        self.Xs = Xs
        X = csr_to_torch(Xs, device, dtype)
        self.XT = csr_to_torch(Xs.T.tocsr(), device, dtype)
        super().__init__(X, Y, sample_weight, loss, **kwargs)
        self._indptr = X.crow_indices()
        self._indices = X.col_indices()
        self._data = X.values()

    def _rows(self, idx):
        indptr, indices, data = self._indptr, self._indices, self._data
        if isinstance(idx, slice):
            if idx.start == 0 and idx.stop >= self.n_samples:
                return self.X, self.XT
            lo, hi = indptr[idx.start], indptr[idx.stop]
            crow = indptr[idx.start : idx.stop + 1] - lo
            cols, vals = indices[lo:hi], data[lo:hi]
        else:
            starts = indptr[idx]
            lens = indptr[idx + 1] - starts
            crow = torch.zeros(len(idx) + 1, dtype=lens.dtype, device=lens.device)
            torch.cumsum(lens, 0, out=crow[1:])
            # positions of the batch's non-zeros in the CSR arrays
            pos = torch.repeat_interleave(starts - crow[:-1], lens)
            pos += torch.arange(pos.shape[0], device=pos.device)
            cols, vals = indices[pos], data[pos]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            Xb = torch.sparse_csr_tensor(
                crow,
                cols,
                vals,
                size=(crow.shape[0] - 1, self.X.shape[1]),
                check_invariants=False,
            )
        return Xb, Xb.t()

    def matvec_stats(self):
        X, XT, sw, fi = self.X, self.XT, self.sw, self.fit_intercept
        n, d = X.shape
        wsum = float(n) if sw is None else float(sw.sum())

        def matvec(v):
            r = X @ v[:d]
            if fi:
                r = r + v[-1]
            if sw is not None:
                r = r * sw
            out = torch.empty_like(v)
            out[:d] = XT @ r
            if fi:
                out[-1] = r.sum()
            return out / wsum

        norms = np.asarray(self.Xs.multiply(self.Xs).sum(1)).ravel() + float(fi)
        if sw is not None:
            norms = norms * sw.cpu().numpy() * (n / wsum)
        return matvec, float(norms.max())


class GramOracle:
    """Squared loss on the full batch through the Gram matrix of ``[X, 1]``.

    Unweighted data whose features are not dominated by their means (the
    usual case after ``StandardScaler``) take one GEMM over ``X`` in place:
    no copy of ``X`` is made. Otherwise the statistics are accumulated in
    float64 from chunks of ``X`` centred on their weighted mean, so that large
    feature offsets do not cost precision in float32. Targets are always
    centred (they are small), which keeps the objective's value accurate when
    ``y`` has a large offset.
    """

    # smallest var_j / E[x_j^2] for which the uncentred GEMM keeps enough
    # digits: float32 loses a factor E[x^2] / var of its 1e-7 resolution
    _MIN_RELATIVE_VARIANCE = {torch.float32: 1e-2, torch.float64: 1e-8}

    def __init__(self, X, Y, sample_weight, *, fit_intercept=True):
        self.fit_intercept = fit_intercept
        n, d = X.shape
        self.n_samples = n
        self.n_batches = 1
        self.out_dtype = X.dtype
        stats = None
        if sample_weight is None:
            stats = self._uncentred_stats(X, Y)
        if stats is None:
            stats = self._centred_stats(X, Y, sample_weight)
        Gc, Cc, yy, mx, my = stats
        f64 = torch.float64
        # back to raw coordinates: E[xx'] = Gc + mx mx', E[xy] = Cc + mx my'
        G = Gc + torch.outer(mx, mx)
        C = Cc + torch.outer(mx, my)
        self.yy = yy + my * my
        if fit_intercept:
            A = torch.empty(d + 1, d + 1, dtype=f64, device=X.device)
            A[:d, :d] = G
            A[:d, d] = mx
            A[d, :d] = mx
            A[d, d] = 1.0
            self.C = torch.cat([C, my[None, :]], 0)
        else:
            A = G
            self.C = C
        self.A = A
        self.n_features = d

    @classmethod
    def _uncentred_stats(cls, X, Y):
        """One GEMM over X in place; None when the features' means would
        swamp their variance in X's precision."""
        f64 = torch.float64
        n = X.shape[0]
        G = (X.T @ X).to(f64) / n
        # column sums as a GEMV: a strided reduction over rows is 2x slower
        mx = (torch.ones(n, dtype=X.dtype, device=X.device) @ X).to(f64) / n
        var = torch.diagonal(G) - mx * mx
        floor = cls._MIN_RELATIVE_VARIANCE.get(X.dtype, 1e-2)
        if not bool((var >= floor * torch.diagonal(G)).all()):
            return None
        my = Y.sum(0).to(f64) / n
        Yc = Y - my.to(Y.dtype)
        Cc = (X.T @ Yc).to(f64) / n  # E[x (y - my)]: E[x y] - mx my'
        yy = (Yc.to(f64) ** 2).sum(0) / n
        Gc = G - torch.outer(mx, mx)
        return Gc, Cc, yy, mx, my

    @staticmethod
    def _centred_stats(X, Y, sw):
        """Weighted, centred moments from row chunks (two passes)."""
        f64 = torch.float64
        n, d = X.shape
        wsum = torch.tensor(float(n), dtype=f64) if sw is None else sw.sum().to(f64)
        mx = torch.zeros(d, dtype=f64, device=X.device)
        my = torch.zeros(Y.shape[1], dtype=f64, device=X.device)
        for sl in _row_chunks(n):
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
        for sl in _row_chunks(n):
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

    def matvec_stats(self):
        A = self.A

        def matvec(v):
            return (A @ v.to(A.dtype)).to(v.dtype)

        return matvec, None


def lipschitz_estimate(oracle, dtype, n_iter: int = 30) -> tuple[float, float | None]:
    """Largest eigenvalue of ``X~' S X~ / sum(s)`` and the max scaled row norm.

    The eigenvalue comes from ``eigvalsh`` for a Gram oracle and from power
    iteration (a fixed number of steps from a fixed start, so that it is
    deterministic and unchanged when rows are repeated instead of weighted)
    for a direct oracle.
    """
    if isinstance(oracle, GramOracle):
        return float(torch.linalg.eigvalsh(oracle.A)[-1]), None
    matvec, max_row = oracle.matvec_stats()
    if getattr(matvec, "matrix", None) is not None:
        return float(torch.linalg.eigvalsh(matvec.matrix)[-1]), max_row
    X = oracle.X
    if (
        type(oracle) is DirectOracle
        and X.shape[1] < GRAM_EIGEN_MAX_FEATURES
        and X.shape[0] > X.shape[1]
    ):
        # one GEMM (about d / 8 passes' cost) instead of 2 * n_iter passes
        gram = GramOracle(
            X, oracle.Y[:, :1], oracle.sw, fit_intercept=oracle.fit_intercept
        )
        return float(torch.linalg.eigvalsh(gram.A)[-1]), max_row
    dim = oracle.X.shape[1] + int(oracle.fit_intercept)
    # a fixed, generic start vector (never orthogonal to the top eigenvector
    # in practice), independent of random_state
    v = torch.linspace(1.0, 2.0, dim, dtype=dtype, device=oracle.X.device)
    v = v / torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(n_iter):
        w = matvec(v)
        lam = float(torch.linalg.vector_norm(w))
        if lam == 0.0 or not math.isfinite(lam):
            break
        v = w / lam
    return lam, max_row


def prefers_gram(n, d, loss, batch_size) -> bool:
    """Whether the Gram path serves this problem (see :func:`choose_oracle`)."""
    full = batch_size is None or batch_size >= n
    return type(loss) is SquaredError and full and d + 1 <= min(n, 2048)


def choose_oracle(
    X,
    Y,
    sample_weight,
    loss: Loss,
    *,
    fit_intercept,
    batch_size,
    shuffle,
    generator,
    device=None,
    dtype=None,
):
    """Pick the cheaper oracle for the problem (a small cost model).

    The Gram path pays for the squared loss on the full batch when ``X`` has
    more rows than columns: building it costs about ``d / 8`` passes of the
    direct path (GEMM runs near peak, GEMV at memory bandwidth) and every
    later step is nearly free. Above a few thousand features the d x d matrix
    itself becomes the cost, so the direct path is kept.
    """
    n, d = X.shape
    kwargs = dict(
        fit_intercept=fit_intercept,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
    )
    if sp.issparse(X):
        return SparseOracle(
            X, Y, sample_weight, loss, device=device, dtype=dtype, **kwargs
        )
    if prefers_gram(n, d, loss, batch_size):
        return GramOracle(X, Y, sample_weight, fit_intercept=fit_intercept)
    return DirectOracle(X, Y, sample_weight, loss, **kwargs)
