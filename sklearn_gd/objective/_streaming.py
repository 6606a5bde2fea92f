"""Out-of-core training: ``X`` stays a host array and reaches the device in chunks.

When ``X`` is a numpy memmap (or ``out_of_core=True``), the estimator never
converts it whole: :class:`HostRows` stands where the ``X`` tensor would and
hands out rows as tensors, one bounded chunk at a time, and
:class:`HostChunkOracle` splits any batch larger than a chunk. The Gram
oracle of the full-batch squared loss needs nothing new: it already reads
``X`` in row chunks, which :class:`HostRows` serves.

How rows travel:

* On the CPU a contiguous run of rows is a zero-copy view of the host array
  (for a memmap, of the mapped file: the kernel pages it in and may evict it
  again); a shuffled batch is gathered row by row into a fresh tensor.
  ``torch.from_numpy`` warns on read-only arrays because a tensor could
  write through them; the oracles only ever read ``X``, so the warning is
  silenced for this one view.
* On an accelerator each chunk is copied into one of two pinned (page-locked)
  host buffers and sent with a non-blocking copy on a side stream into one of
  two device buffers; the next chunk is filled and sent while the device
  computes on the current one.

Peak memory beyond the pages of ``X`` itself is bounded by
two chunks of staging buffers (accelerators; a chunk is
``STAGED_CHUNK_BYTES``, at most ``CHUNK_BYTES``) or
one gathered batch (CPU), plus the O(n_samples) arrays that always live in
memory: ``y``, ``sample_weight`` and the shuffling permutation (8 bytes per
row), and the O(n_features^2) Gram statistics.
"""

from __future__ import annotations

import mmap
import os
import warnings

import numpy as np
import torch

from ..data._data import CHUNK_ROWS, to_tensor
from ._direct import DirectOracle
from ._gram import GramOracle
from ._oracles import prefers_gram
from ._rows import gen_batches, rows_per_chunk

__all__ = [
    "HostChunkOracle",
    "available_host_bytes",
    "HostRows",
    "is_memory_mapped",
    "peak_bound_bytes",
    "should_stream",
    "streaming_oracle",
]

# Tests set this to run the accelerator's double-buffered staging on the CPU.
_FORCE_STAGING = False


def is_memory_mapped(a) -> bool:
    """Whether ``a`` is a numpy memmap or a view of one (``np.asarray`` of a
    memmap, a slice, ...)."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def available_host_bytes() -> int | None:
    """Host memory available to a new allocation, in bytes (None: unknown)."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:  # free pages only (no reclaimable cache): a conservative figure
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def should_stream(X: np.ndarray, device: torch.device, option="auto") -> bool:
    """Whether a validated numpy ``X`` is trained out of core.

    ``option`` is the estimator's ``out_of_core``: a bool decides; "auto"
    streams a memory-mapped ``X``, and any ``X`` whose conversion would need a
    copy larger than half the free memory where the copy would go (host
    memory for a read-only array, device memory for an accelerator).
    """
    if option is not None and option != "auto":
        return bool(option)
    if is_memory_mapped(X):
        return True
    nbytes = X.nbytes
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError):
            return False
        return nbytes > free // 2
    if not X.flags.writeable:
        avail = available_host_bytes()
        return avail is not None and nbytes > avail // 2
    return False


# Staging chunks on an accelerator are larger than CHUNK_ROWS rows of a narrow
# X: measured on an H200 host (16 cores), a threaded copy into pinned memory
# runs at 44 GB/s for 6 MiB chunks and 51 GB/s for 25 MiB, and each chunk
# costs a few hundred microseconds of Python and launches.
STAGED_CHUNK_BYTES = 32 * 2**20


def staged_rows(n_features: int, itemsize: int, staged: bool) -> int:
    """Rows per chunk: ``CHUNK_ROWS`` (fewer for a wide X) on the host, and
    ``STAGED_CHUNK_BYTES`` worth through the staging buffers (at most
    ``CHUNK_BYTES`` either way)."""
    if not staged:
        return rows_per_chunk(n_features, itemsize, CHUNK_ROWS)
    most = max(CHUNK_ROWS, STAGED_CHUNK_BYTES // max(1, n_features * itemsize))
    return rows_per_chunk(n_features, itemsize, most)


# A piece of a batch: (index tensor or None, start, stop). With None, rows
# start:stop of the (training) rows; else the rows index[start:stop].
def _pieces(idx, chunk_rows):
    if isinstance(idx, slice):
        start = idx.start or 0
        return [
            (None, start + sl.start, start + sl.stop)
            for sl in gen_batches(idx.stop - start, chunk_rows)
        ]
    return [(idx, sl.start, sl.stop) for sl in gen_batches(idx.shape[0], chunk_rows)]


def _piece_key(piece):
    # the index tensor itself, compared by identity in _Stager.slot_of: an
    # id() would be recycled once the tensor is freed (a new epoch's
    # permutation could then hit a stale slot with another epoch's rows)
    return piece


def _piece_index(piece):
    """The piece as an index into the training rows (slice or CPU tensor)."""
    base, a, b = piece
    return slice(a, b) if base is None else base[a:b]


class _Stager:
    """Two staging slots: pinned host buffer -> device buffer, double-buffered.

    ``start`` fills a slot's host buffer with a piece's rows and launches its
    non-blocking copy on the side stream; ``get`` makes the compute stream wait
    for that copy and returns the device rows. When ``get`` moves from one
    slot to the other, every use of the first slot's rows has been enqueued:
    an event recorded then marks the slot free. Before a slot is refilled,
    the side stream waits for that event only, not for the compute on the
    other slot, which the copy overlaps; and the host waits for the slot's
    previous copy (so the pinned memory is no longer being read). The device
    buffers are marked as used by the side stream, so that memory freed while
    a copy is in flight (an interrupted fit) is not handed out before the copy
    ends.

    On a device without streams (the CPU, in tests) the same logic runs with
    synchronous copies.
    """

    def __init__(self, n_features, chunk_rows, dtype, device):
        self.device = device
        cuda = device.type == "cuda"
        self.cuda = cuda
        self.host = [
            torch.empty((chunk_rows, n_features), dtype=dtype, pin_memory=cuda)
            for _ in range(2)
        ]
        self.dev = [
            torch.empty((chunk_rows, n_features), dtype=dtype, device=device)
            for _ in range(2)
        ]
        self.stream = torch.cuda.Stream(device) if cuda else None
        if cuda:
            for buffer in self.dev:
                buffer.record_stream(self.stream)
        self.copied = [None, None]
        self.released = [None, None]  # compute-stream events: slot free again
        self.keys = [None, None]
        self.rows = [0, 0]
        self.last = 1  # the slot handed out last

    def slot_of(self, key):
        for s in (0, 1):
            held = self.keys[s]
            if held is not None and held[0] is key[0] and held[1:] == key[1:]:
                return s
        return None

    def start(self, key, fill, m):
        """Stage ``m`` rows written by ``fill(out_tensor)`` under ``key``."""
        s = 1 - self.last if self.keys[self.last] is not None else self.last
        if self.slot_of(key) is not None:
            return
        if self.copied[s] is not None:
            self.copied[s].synchronize()  # the pinned buffer is free again
        fill(self.host[s][:m])
        self.keys[s], self.rows[s] = key, m
        if self.cuda:
            with torch.cuda.stream(self.stream):
                if self.released[s] is not None:
                    self.stream.wait_event(self.released[s])
                self.dev[s][:m].copy_(self.host[s][:m], non_blocking=True)
                self.copied[s] = self.stream.record_event()
        else:
            self.dev[s][:m].copy_(self.host[s][:m])

    def get(self, key):
        s = self.slot_of(key)
        if s is None:
            return None
        if self.cuda:
            compute = torch.cuda.current_stream(self.device)
            if s != self.last:
                # every use of the other slot's rows is enqueued by now
                self.released[self.last] = compute.record_event()
            compute.wait_event(self.copied[s])
        self.last = s
        return self.dev[s][: self.rows[s]]


class HostRows:
    """A host array's rows served as tensors on ``device``, chunk by chunk.

    Stands in for the ``X`` tensor of the oracles: ``shape``, ``dtype``,
    ``device`` and ``rows[idx]`` for a slice or an index tensor. ``rows``
    restricts it to a subset of the host rows (the training rows under early
    stopping) without copying them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous, in the training dtype; a memmap stays one.
    device : torch.device
    dtype : torch.dtype
    rows : ndarray of int or None
    chunk_rows : int or None
        Rows per chunk; None for ``staged_rows``: ``CHUNK_ROWS`` on the host,
        ``STAGED_CHUNK_BYTES`` worth when staged (fewer rows for a wide
        ``X``: at most ``CHUNK_BYTES`` per chunk).
    staged : bool or None
        Copy through the two staging slots (default: on accelerators only).
    """

    def __init__(self, X, device, dtype, rows=None, chunk_rows=None, staged=None):
        self.array = X
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._rows_t = None if rows is None else torch.from_numpy(self.rows)
        n = X.shape[0] if rows is None else self.rows.shape[0]
        self.shape = torch.Size((n, X.shape[1]))
        self.ndim = 2
        self.dtype = dtype
        self.device = torch.device(device)
        if staged is None:
            staged = self.device.type != "cpu"
        if chunk_rows is None:
            chunk_rows = staged_rows(X.shape[1], X.dtype.itemsize, staged)
        self.chunk_rows = int(chunk_rows)
        with warnings.catch_warnings():
            # read-only memmaps: see the module docstring
            warnings.simplefilter("ignore", UserWarning)
            self._host = torch.from_numpy(X)
        self.view = self._host  # the whole array, zero-copy (CPU)
        if self._host.dtype != dtype:
            raise TypeError(f"HostRows: X is {self._host.dtype}, expected {dtype}.")
        self._stager = (
            _Stager(X.shape[1], self.chunk_rows, dtype, self.device) if staged else None
        )

    def __len__(self):
        return self.shape[0]

    @property
    def nbytes(self):
        return self.shape[0] * self.shape[1] * self._host.element_size()

    # ------------------------------------------------------------ host side
    def _host_index(self, piece):
        """Host row numbers of a piece: a slice of the array, or a tensor."""
        base, a, b = piece
        if base is None:
            if self.rows is None:
                return slice(a, b)
            return self._rows_t[a:b]
        ix = base[a:b].cpu()
        return ix if self._rows_t is None else self._rows_t[ix]

    def _host_rows(self, piece):
        ix = self._host_index(piece)
        if isinstance(ix, slice):
            return self._host[ix]
        # numpy's row gather is several times faster than torch's index_select
        return torch.from_numpy(np.take(self.array, ix.numpy(), axis=0))

    def _fill(self, piece):
        ix = self._host_index(piece)

        def fill(out):
            if isinstance(ix, slice):
                # torch's copy runs on every thread: numpy's copyto on one
                # thread cannot keep a host-to-device link busy
                out.copy_(self._host[ix])
            else:
                np.take(self.array, ix.numpy(), axis=0, out=out.numpy())

        return fill

    # ---------------------------------------------------------- device side
    def fetch(self, piece):
        """The piece's rows as a tensor on the device."""
        if self._stager is None:
            return self._host_rows(piece)
        key = _piece_key(piece)
        out = self._stager.get(key)
        if out is None:
            self._stager.start(key, self._fill(piece), piece[2] - piece[1])
            out = self._stager.get(key)
        return out

    def prefetch(self, piece):
        """Start moving a piece that will be fetched soon (a no-op on CPU)."""
        if self._stager is not None and piece is not None:
            self._stager.start(
                _piece_key(piece), self._fill(piece), piece[2] - piece[1]
            )

    def __getitem__(self, idx):
        """Rows for a slice of at most ``chunk_rows`` rows or an index tensor
        (the Gram and matvec passes read consecutive slices: the next one is
        prefetched)."""
        if isinstance(idx, slice):
            start, stop, step = idx.indices(self.shape[0])
            if step != 1:
                raise IndexError("HostRows takes contiguous slices only.")
            pieces = [(None, start, stop)]
        else:
            pieces = [(idx, 0, idx.shape[0])]
        if self._stager is None:
            return self._host_rows(pieces[0])
        if pieces[0][2] - pieces[0][1] > self.chunk_rows:
            raise IndexError(
                f"HostRows serves at most {self.chunk_rows} rows at a time."
            )
        out = self.fetch(pieces[0])
        if isinstance(idx, slice) and stop < self.shape[0]:
            self.prefetch((None, stop, min(stop + (stop - start), self.shape[0])))
        return out


class HostChunkOracle(DirectOracle):
    """:class:`DirectOracle` over a :class:`HostRows` ``X``.

    A batch is computed in pieces of at most ``chunk_rows`` rows, each
    exactly as :class:`DirectOracle` computes a batch (a batch of one piece
    gives the same result). While one piece is computed, the next (of this
    batch, or the first of the next batch) is on its way: every piece names
    its rows itself, so nothing depends on the order of the calls.
    """

    # A pass over a mapped file costs more than one in memory, so the exact
    # curvature from one pass pays for more features than in memory.
    gram_curvature_max_features = 2048

    def __init__(self, X: HostRows, Y, sample_weight, loss, **kwargs):
        super().__init__(X, Y, sample_weight, loss, **kwargs)
        self.chunk_rows = X.chunk_rows

    def batches(self):
        # a shuffled order is kept on the host: it indexes the host array
        for idx in self.epochs.batches(torch.device("cpu")):
            self.X.prefetch(self._pieces(idx)[0])
            yield idx

    def _pieces(self, idx):
        return _pieces(idx, self.chunk_rows)

    def _rows(self, piece):
        Xb = self.X.fetch(piece)
        return Xb, Xb.T

    def _rows_done(self, pieces, j):
        if j + 1 < len(pieces):
            self.X.prefetch(pieces[j + 1])

    def _index(self, piece):
        idx = _piece_index(piece) if isinstance(piece, tuple) else piece
        if isinstance(idx, slice) or self.Y.device.type == "cpu":
            return idx
        # a slice of a pageable permutation: a non-blocking copy would not
        # overlap anyway, and is not safe from pageable memory
        return idx.to(self.Y.device)

    def _length(self, piece):
        return piece[2] - piece[1]


def streaming_oracle(
    X,
    Y,
    sample_weight,
    loss,
    *,
    fit_intercept,
    batch_size,
    shuffle,
    generator,
    device,
    dtype,
    rows=None,
):
    """The oracle for an out-of-core numpy ``X`` (the counterpart of
    :func:`choose_oracle`).

    ``Y`` and ``sample_weight`` are numpy arrays of the training rows;
    ``rows`` the host rows of ``X`` they belong to (None: all of them). The
    full-batch squared loss gets a :class:`GramOracle` built where ``X``
    lives, on the host, from a zero-copy view (one GEMM over the mapped
    file), or, for an accelerator, on the device from staged chunks (two
    passes, centred). Everything else gets a :class:`HostChunkOracle`.
    """
    Yt = to_tensor(Y, torch.device("cpu"), dtype)
    swt = to_tensor(sample_weight, torch.device("cpu"), dtype)
    n, d = Yt.shape[0], X.shape[1]
    staged = _FORCE_STAGING or torch.device(device).type != "cpu"
    if rows is None and prefers_gram(n, d, loss, batch_size):
        if not staged:
            host = HostRows(X, "cpu", dtype, staged=False)
            return GramOracle(host.view, Yt, swt, fit_intercept=fit_intercept)
        # an accelerator's GEMM outruns the host's: stream the chunks to it
        Xr = HostRows(X, device, dtype, staged=True)
        swd = None if swt is None else swt.to(device)
        return GramOracle(Xr, Yt.to(device), swd, fit_intercept=fit_intercept)
    Xr = HostRows(X, device, dtype, rows=rows, staged=staged)
    return HostChunkOracle(
        Xr,
        Yt.to(device),
        None if swt is None else swt.to(device),
        loss,
        fit_intercept=fit_intercept,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
    )


def peak_bound_bytes(
    n_samples, n_features, n_outputs=1, itemsize=8, staged=False
) -> int:
    """The documented bound on memory an out-of-core fit uses beyond the
    pages of ``X`` itself (bytes), on the host (``staged=False``) or on an
    accelerator (``staged=True``).

    Four chunks (``CHUNK_ROWS`` rows on the host, ``STAGED_CHUNK_BYTES``
    through staging buffers, fewer rows for a wide ``X``: at most
    ``CHUNK_BYTES`` each; two staging buffers on accelerators,
    a gathered batch and its temporaries on the CPU), 48 bytes per sample
    and output (``y``, ``sample_weight`` and the predictions and derivatives
    of a batch, in float64) plus 8 per sample (the shuffling permutation), the
    Gram statistics, and 64 MiB of slack for the allocators.
    """
    chunk = staged_rows(n_features, itemsize, staged) * n_features * itemsize
    per_row = 48 * (n_outputs + 1) + 8
    gram = 8 * (n_features + 1) * (n_features + n_outputs + 1) * 4
    return 4 * chunk + n_samples * per_row + gram + 64 * 2**20
