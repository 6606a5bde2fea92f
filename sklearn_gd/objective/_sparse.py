"""The data term over a scipy.sparse ``X`` kept as CSR on the device
(:class:`SparseOracle`), and the CSR batches it cuts."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from ..data._data import CHUNK_ROWS
from ._direct import DirectOracle
from ._protocol import Curvature
from ._rows import weight_sum, xt_dot

__all__ = ["CsrTranspose", "SparseOracle", "csr_to_torch", "one_torch_thread"]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch's CPU operations on one thread within the block, restored after."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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


_NUMPY_FLOATS = (torch.float32, torch.float64)


class CsrTranspose:
    """``X_b'`` of a CSR batch of rows, whose products scatter-add the
    batch's non-zeros into the features' rows.

    torch's product of the CSR's transpose view (CSC) with a dense matrix
    costs about 3 ms on the CPU for 256 TF-IDF rows (16k non-zeros) in 2**18
    features, whatever the non-zeros; the scatter costs what they do. Only
    the products ``X_b' @ V`` (``V`` of shape (m,) or (m, k)) are defined.
    """

    layout = torch.sparse_csc

    def __init__(self, row_of, cols, vals, shape: tuple[int, int]):
        self.row_of, self.cols, self.vals = row_of, cols, vals
        self._host = (row_of.numpy(), cols.numpy(), vals.numpy())
        self.shape = (shape[1], shape[0])
        self.dtype, self.device = vals.dtype, vals.device

    def __matmul__(self, V: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((self.shape[0],) + V.shape[1:], dtype=V.dtype)
        return self.add_product_(out, V)

    def add_product_(self, out: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``out += X_b' V`` in place (no product-sized temporary)."""
        if V.dtype != self.dtype:
            raise RuntimeError(f"X_b' is {self.dtype}, the operand {V.dtype}")
        k = 1 if V.ndim == 1 else V.shape[1]
        if k == 1 and out.is_contiguous() and self.dtype in _NUMPY_FLOATS:
            # numpy's scatter-add, in place through zero-copy views: about
            # 1.7 ns a non-zero against torch's index_add_ 4.4 (17k hashed
            # TF-IDF non-zeros into 2**18 features: 28 us against 75)
            v = V.numpy().reshape(-1)[self._host[0]]
            np.add.at(out.numpy().reshape(-1), self._host[1], v * self._host[2])
            return out
        W = V[self.row_of]
        if V.ndim == 1:
            return out.index_add_(0, self.cols, W.mul_(self.vals))
        W *= self.vals[:, None]
        if not out.is_contiguous():
            return out.index_add_(0, self.cols, W)
        # one flat scatter: torch's scatter of (nnz, k) rows is slower than
        # of nnz * k scalars, even for k = 1 (a batch of 256 TF-IDF rows:
        # 0.22 ms against 0.11 for the whole product)
        idx = self.cols if k == 1 else (self.cols[:, None] * k + torch.arange(k))
        out.view(-1).index_add_(0, idx.reshape(-1), W.reshape(-1))
        return out


class _Block(NamedTuple):
    """The rows of several shuffled batches gathered from the CSR arrays at
    once, on the device: their CSR arrays (scipy's index dtype on the host)
    and each non-zero's row within its batch (host blocks only: the scatter
    of :class:`CsrTranspose` needs it, a device's CSC view does not)."""

    crow: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    row_of: torch.Tensor | None
    # the rows' targets and sample weights, gathered with them: a batch's
    # are then views, where an index per batch costs ~13 us on the CPU
    Y: torch.Tensor | None = None
    sw: torch.Tensor | None = None


class _SparseBatch(NamedTuple):
    """A shuffled sparse batch: its rows (on the device) and where its rows
    and non-zeros lie in its block (known on the host)."""

    rows: torch.Tensor
    block: _Block
    start: int
    stop: int
    lo: int
    hi: int


class SparseOracle(DirectOracle):
    """:class:`DirectOracle` for a scipy.sparse ``X``, never densified.

    ``X`` lives on the device as a torch sparse CSR tensor, with ``X'`` as its
    own CSR so that both full-batch products are row-major. Minibatches are
    cut from the CSR arrays on the device: a contiguous batch as views;
    shuffled ones by gathering the non-zeros of a block of batches (about
    :data:`CHUNK_ROWS` rows) at once, then cutting views of the block. On
    the CPU a batch's transpose is a :class:`CsrTranspose`, elsewhere the
    free CSC view.
    """

    def __init__(self, Xs, Y, sample_weight, loss, *, device, dtype, **kwargs):
        self.Xs = Xs
        X = csr_to_torch(Xs, device, dtype)
        self.XT = csr_to_torch(Xs.T.tocsr(), device, dtype)
        super().__init__(X, Y, sample_weight, loss, **kwargs)
        self._indptr = X.crow_indices()
        self._indices = X.col_indices()
        self._data = X.values()
        # row boundaries on the host too: cutting a batch needs its number of
        # non-zeros, which read from the device would sync once per batch
        self._indptr_host = np.asarray(Xs.indptr, dtype=np.int64)

    def batches(self):
        if not self.epochs.shuffle:
            yield from self.epochs.batches(self.X.device)
            return
        # the permutation is drawn on the host (the same draw as the dense
        # oracle's) and gathered block by block; each batch is a view
        pieces = self.epochs.batches(torch.device("cpu"))
        row_nnz = np.diff(self._indptr_host)
        per_block = max(1, CHUNK_ROWS // self.epochs.batch_size)
        for first in range(0, len(pieces), per_block):
            group = pieces[first : first + per_block]
            host = torch.cat(group) if len(group) > 1 else group[0]
            rows = host.to(self.X.device)
            targets = (self.Y[rows], None if self.sw is None else self.sw[rows])
            if rows.device.type == "cpu":
                block, crow = self._gather_host(host.numpy(), *targets)
            else:
                crow = np.zeros(host.shape[0] + 1, dtype=np.int64)
                np.cumsum(row_nnz[host.numpy()], out=crow[1:])
                crow_t = torch.from_numpy(crow).to(rows.device)
                block = self._gather(rows, crow_t, *targets)
            start = 0
            for piece in group:
                stop = start + piece.shape[0]
                lo, hi = int(crow[start]), int(crow[stop])
                yield _SparseBatch(rows[start:stop], block, start, stop, lo, hi)
                start = stop

    def _gather(
        self, rows: torch.Tensor, crow: torch.Tensor, Y=None, sw=None
    ) -> _Block:
        """The CSR arrays of ``rows`` (``crow``: their row pointers, built on
        the host), without each non-zero's row: a device's products do not
        need it, and :meth:`_rows` derives it on the host (``Y``, ``sw``:
        the rows' targets and weights, kept with them)."""
        indptr = self._indptr
        nnz = int(crow[-1]) if crow.device.type == "cpu" else None
        starts = indptr[rows]
        lens = indptr[rows + 1] - starts
        # positions of the rows' non-zeros in the CSR arrays
        pos = torch.repeat_interleave(starts - crow[:-1], lens, output_size=nnz)
        pos += torch.arange(pos.shape[0], device=pos.device)
        return _Block(crow, self._indices[pos], self._data[pos], None, Y, sw)

    def _gather_host(
        self, rows: np.ndarray, Y=None, sw=None
    ) -> tuple[_Block, np.ndarray]:
        """:meth:`_gather` by scipy on the host (CPU training): its row
        gather is compiled, about 10x faster than the same by torch ops
        (16384 TF-IDF rows: 1.8 ms against 18-30)."""
        sub = self.Xs[rows]
        crow = sub.indptr.astype(np.int64)
        # the blocks' batches are batch_size rows each (the epoch's last one
        # ends its block), so row r of the block is row r % batch_size of its
        # batch (int64: numpy converts other indices at every gather); the
        # CSR arrays keep scipy's index dtype (int32 unless the matrix needs
        # more), which spares a conversion here and torch's own in products
        in_batch = np.arange(rows.shape[0]) % self.epochs.batch_size
        block = _Block(
            torch.from_numpy(sub.indptr),
            torch.from_numpy(sub.indices),
            torch.from_numpy(sub.data).to(self._data.dtype),
            torch.from_numpy(np.repeat(in_batch, np.diff(crow))),
            Y,
            sw,
        )
        return block, crow

    def _add_gradient(self, grad, theta, XbT, D):
        if not isinstance(XbT, CsrTranspose):
            return super()._add_gradient(grad, theta, XbT, D)
        # scattered straight into the (wide) gradient: no product-sized copy
        d = XbT.shape[0]
        if grad is None:
            grad = torch.zeros_like(theta)
        XbT.add_product_(grad[:d], D)
        if self.fit_intercept:
            grad[d] += D.sum(0)
        return grad

    @property
    def descends_in_place(self) -> bool:
        # the in-place scatter is a host kernel (CsrTranspose); on an
        # accelerator a sparse batch takes the plain step
        return self.X.device.type == "cpu"

    @property
    def scales_lazily(self) -> bool:
        return self.descends_in_place

    def batch_threads(self):
        # a CPU batch's work is a few dozen operations on its ~1e4 non-zeros
        # and batch_size values: a second torch thread only spins between
        # them, slowing the host-side scatter (TF-IDF 80k x 2**18, batches
        # of 256, 2 cores: epoch 196 ms with two threads, 150 ms with one)
        if self.X.device.type != "cpu":
            return contextlib.nullcontext()
        return one_torch_thread()

    def _descend_coef_(self, W, XbT, D, step):
        if isinstance(XbT, CsrTranspose):
            # scattered straight into the coefficients: the features the
            # batch does not hold are not touched, and no gradient exists
            XbT.add_product_(W, D.mul_(-step))
        else:  # the whole X (its transpose's CSR)
            W.sub_(xt_dot(XbT, D), alpha=step)

    def _index(self, piece):
        return piece.rows if isinstance(piece, _SparseBatch) else piece

    def _targets(self, piece):
        if isinstance(piece, _SparseBatch) and piece.block.Y is not None:
            block, rows = piece.block, slice(piece.start, piece.stop)
            return block.Y[rows], None if block.sw is None else block.sw[rows]
        return super()._targets(piece)

    def _length(self, piece):
        return super()._length(self._index(piece))

    def _dense_rows(self, sl: slice) -> torch.Tensor:
        # a chunk of rows densified on the host (few features: small)
        return torch.as_tensor(
            self.Xs[sl].toarray(), dtype=self._data.dtype, device=self.X.device
        )

    def _rows(self, idx):
        if isinstance(idx, slice):
            if idx.start == 0 and idx.stop >= self.n_samples:
                return self.X, self.XT
            lo = int(self._indptr_host[idx.start])
            hi = int(self._indptr_host[idx.stop])
            crow = self._indptr[idx.start : idx.stop + 1] - lo
            cols, vals = self._indices[lo:hi], self._data[lo:hi]
            row_of = None
        elif isinstance(idx, _SparseBatch):
            block, lo, hi = idx.block, idx.lo, idx.hi
            crow = block.crow[idx.start : idx.stop + 1] - lo
            cols, vals = block.cols[lo:hi], block.vals[lo:hi]
            row_of = None if block.row_of is None else block.row_of[lo:hi]
        else:  # a tensor of row indices
            crow = torch.zeros(idx.shape[0] + 1, dtype=torch.int64, device=idx.device)
            torch.cumsum(self._indptr[idx + 1] - self._indptr[idx], 0, out=crow[1:])
            block = self._gather(idx, crow)
            crow, cols, vals, row_of = block[:4]
        shape = (crow.shape[0] - 1, self.X.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            Xb = torch.sparse_csr_tensor(
                crow, cols, vals, size=shape, check_invariants=False
            )
        if Xb.device.type != "cpu":
            return Xb, Xb.t()
        if row_of is None:
            row_of = torch.repeat_interleave(
                torch.arange(shape[0]), crow.diff(), output_size=cols.shape[0]
            )
        return Xb, CsrTranspose(row_of, cols, vals, shape)

    def _matvec(self, v):
        X, XT, sw, fi = self.X, self.XT, self.sw, self.fit_intercept
        d = X.shape[1]
        r = X @ v[:d]
        if fi:
            r = r + v[-1]
        if sw is not None:
            r = r * sw
        out = torch.empty_like(v)
        out[:d] = XT @ r
        if fi:
            out[-1] = r.sum()
        return out / weight_sum(self.n_samples, sw)

    def curvature(self) -> Curvature:
        n, d = self.X.shape
        sw, fi = self.sw, self.fit_intercept
        norms = np.asarray(self.Xs.multiply(self.Xs).sum(1)).ravel() + float(fi)
        if sw is not None:
            norms = norms * sw.cpu().numpy() * (n / weight_sum(n, sw))
        return Curvature(
            matvec=self._matvec,
            dim=d + int(fi),
            dtype=self.Y.dtype,
            device=self.Y.device,
            max_row=float(norms.max()),
        )

    def column_moments(self):
        Xs = self.Xs
        s = (
            np.ones(Xs.shape[0])
            if self.sw is None
            else self.sw.cpu().numpy().astype(np.float64)
        )
        mean = np.asarray(Xs.T @ s, dtype=np.float64).ravel()
        second = np.asarray(Xs.multiply(Xs).T @ s, dtype=np.float64).ravel()
        dev, wsum = self.Y.device, s.sum()
        return (
            torch.as_tensor(mean / wsum, device=dev),
            torch.as_tensor(second / wsum, device=dev),
        )
