"""Helpers over the rows of ``X``: batches of rows, chunk sizes, the host
row gather (:class:`RowGather`), the products with ``X`` and ``X'``, and
its second moments."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data._data import CHUNK_BYTES, CHUNK_ROWS

# A host row gather of at least this many bytes, of rows of at least
# PARALLEL_GATHER_ROW_BYTES, goes through torch's index_select, which spreads
# the copy over torch's threads; a smaller one, one of narrower rows, or any
# on one thread, through numpy's take, whose fixed cost is lower (2 threads,
# float32: 256 rows of 100 4 us against 6, 1024 rows 13 us against 11,
# 65536 rows 5.0 ms against 2.4; 65536 rows of 1 0.17 ms against 0.21, of 4
# 0.33 against 0.26; on one thread the two are level)
PARALLEL_GATHER_BYTES = 256 * 2**10
PARALLEL_GATHER_ROW_BYTES = 16


def gen_batches(n: int, size: int):
    """``slice``s of ``size`` rows covering ``range(n)``: scikit-learn's
    ``gen_batches`` without its parameter validation, which costs about
    0.1 ms a call (solvers ask for a pass every iteration)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def rows_per_chunk(n_features: int, itemsize: int, most: int = CHUNK_ROWS) -> int:
    """Rows of a chunk of X: at most ``most``, and at most CHUNK_BYTES."""
    return int(max(1, min(most, CHUNK_BYTES // max(1, n_features * itemsize))))


def narrow(A: torch.Tensor, k: int) -> bool:
    """Whether a product of the dense CPU matrix ``A`` with ``k`` columns goes
    through the transposed form: torch's CPU GEMM runs the tall-skinny
    products of training with a few outputs or classes (2 to 15) 2-5x slower
    in the direct form (160000 x 100 float32, 2 threads: ``X' D`` for 5
    classes 54 ms against 15 for ``(D' X)'``, ``X W`` 28 ms against 16; the
    same from one column, or from 20 on)."""
    return A.device.type == "cpu" and A.layout == torch.strided and 1 < k < 16


def gathers_in_parallel(A: torch.Tensor, m: int) -> bool:
    """Whether :func:`take_rows` gathers ``m`` rows of ``A`` through torch's
    index_select (see PARALLEL_GATHER_BYTES)."""
    row_bytes = math.prod(A.shape[1:]) * A.element_size()
    return A.dtype == torch.bfloat16 or (  # (numpy has no bfloat16)
        row_bytes >= PARALLEL_GATHER_ROW_BYTES
        and m * row_bytes >= PARALLEL_GATHER_BYTES
        and torch.get_num_threads() > 1
    )


def take_rows(
    A: torch.Tensor, rows: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Rows ``rows`` (a CPU index tensor) of the CPU tensor ``A``, a copy;
    into the leading rows of ``out`` where given (for a gather through
    index_select: a fresh tensor as large costs its pages' first touch,
    1e6 x 100 float32 in batches of 65536: 17-29 ms an epoch)."""
    if gathers_in_parallel(A, rows.shape[0]):
        if out is None:
            return torch.index_select(A, 0, rows)
        return torch.index_select(A, 0, rows, out=out[: rows.shape[0]])
    return torch.from_numpy(np.take(A.numpy(), rows.numpy(), axis=0))


class RowGather:
    """Rows of a host ``X`` gathered by an index tensor (:func:`take_rows`).

    Gathers through index_select share one buffer, grown to the largest
    gather: a fresh tensor each time costs its pages' first touch. Rows
    gathered are valid until the next gather.
    """

    def __init__(self, X: torch.Tensor):
        self.X = X
        self._buffer = None

    def take(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` (a CPU index tensor) of ``X``."""
        return take_rows(self.X, rows, self._buffer_for(rows.shape[0]))

    def _buffer_for(self, m: int) -> torch.Tensor | None:
        """The buffer host rows gathered through index_select go to (None
        for gathers that go through numpy)."""
        if not gathers_in_parallel(self.X, m):
            return None
        buf = self._buffer
        if buf is None or buf.shape[0] < m:
            shape = (m, self.X.shape[1])
            buf = self._buffer = torch.empty(shape, dtype=self.X.dtype)
        return buf


def design_matrix(X: torch.Tensor, fit_intercept: bool) -> torch.Tensor:
    """The dense design ``[X, 1]`` (``X`` without an intercept), column-major:
    the Hessian's product ``A' (A c)`` runs 1.3-1.5x faster on it."""
    m, d = X.shape
    A = torch.empty((d + int(fit_intercept), m), dtype=X.dtype, device=X.device).T
    A[:, :d] = X
    if fit_intercept:
        A[:, d] = 1.0
    return A


def affine(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None = None):
    """``X @ W + b`` (``b`` None: no intercept)."""
    if narrow(X, W.shape[1]):
        P = (W.T @ X.T).T
        return P if b is None else P + b
    return X @ W if b is None else torch.addmm(b, X, W)


def xt_dot(XT: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``X' D`` from the transposed view ``XT`` of ``X``: shape (d, k)."""
    if narrow(XT, D.shape[1]):
        return (D.T @ XT.T).T
    return XT @ D


def augment(G, mean, fit_intercept):
    """``[[G, m], [m', 1]]``: the second moments of ``[X, 1]`` from those of
    ``X`` (``G``) and its mean ``m``; ``G`` alone without an intercept."""
    if not fit_intercept:
        return G
    d = G.shape[0]
    A = torch.empty(d + 1, d + 1, dtype=G.dtype, device=G.device)
    A[:d, :d] = G
    A[:d, d] = mean
    A[d, :d] = mean
    A[d, d] = 1.0
    return A


def weight_sum(n, sw) -> float:
    return float(n) if sw is None else float(sw.sum())


def row_terms(Xc, s, fit_intercept, scale):
    """``s_i ||x~_i||^2 n / sum(s)`` for the rows of a chunk."""
    norms = (Xc * Xc).sum(1) + float(fit_intercept)
    return norms if s is None else norms * s * scale


def second_moments(X, sw, fit_intercept, chunk_rows=None):
    """``X~' S X~ / sum(s)`` (float64) and the largest scaled row norm, from
    one pass over the row chunks of ``X`` (a tensor, or rows served by
    ``X[slice]``)."""
    f64 = torch.float64
    n, d = X.shape
    if chunk_rows is None:
        chunk_rows = rows_per_chunk(d, X.dtype.itemsize)
    wsum = weight_sum(n, sw)
    G = torch.zeros(d, d, dtype=f64, device=X.device)
    s1 = torch.zeros(d, dtype=f64, device=X.device)
    max_row = torch.zeros((), dtype=f64, device=X.device)
    for sl in gen_batches(n, chunk_rows):
        Xc = X[sl]
        s = None if sw is None else sw[sl]
        norms = row_terms(Xc, s, fit_intercept, n / wsum)
        if s is None:
            s = torch.ones(Xc.shape[0], dtype=Xc.dtype, device=Xc.device)
            XcS = Xc
        else:
            XcS = Xc * s[:, None]
        # column sums as a GEMV: a strided reduction over rows is slower
        s1 += (s @ Xc).to(f64)
        G += (XcS.T @ Xc).to(f64)
        max_row = torch.maximum(max_row, norms.max().to(f64))
    return augment(G / wsum, s1 / wsum, fit_intercept), float(max_row)
