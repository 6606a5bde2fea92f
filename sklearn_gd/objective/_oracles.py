"""Gradient oracles: the data term of the objective and its gradient.

An oracle owns the training data on its device and answers, for a batch,
the weighted mean loss per output and its gradient in ``(coef, intercept)``::

    f_j(W, b) = sum_i s_i L(y_ij, x_i . w_j + b_j) / sum_i s_i

Every oracle keeps one protocol (:class:`Oracle`): ``batches`` and
``full_batch`` name the batches of an epoch, ``loss_grad`` answers for one,
``zero_model_loss`` gives the objective's scale, and ``curvature`` describes
the second-moment matrix ``X~' S X~ / sum(s)`` (with ``X~ = [X, 1]``) that
the automatic step size needs, as a matrix or as a product.

* :class:`DirectOracle` reads the rows of ``X`` for every batch. It serves
  every loss and every batch size, with closed-form gradients (no autograd).
  A batch is computed in pieces (one piece in memory; bounded chunks for an
  ``X`` streamed from the host, see ``_streaming.py``).
* :class:`SparseOracle` is the same for a scipy.sparse ``X``.
* :class:`GramOracle` serves the squared loss on the full batch. One pass
  over ``X`` builds ``A = X~' S X~ / sum(s)`` and ``C = X~' S Y / sum(s)``;
  each later step costs O(d^2 k) and never touches ``X`` again, since the
  gradient is ``A theta - C``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state

from ..data._data import CHUNK_BYTES, CHUNK_ROWS
from ..model._losses import Loss, SquaredError

__all__ = [
    "Curvature",
    "DirectOracle",
    "solution_scale",
    "GramOracle",
    "Oracle",
    "SparseOracle",
    "choose_oracle",
    "lipschitz_estimate",
]

# Bytes of X per block of a pass that uses each block twice (the Gram
# statistics' two products): the second product reads the block from cache.
BLOCK_BYTES = 4 * 2**20
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


def _narrow(A: torch.Tensor, k: int) -> bool:
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
    if _narrow(X, W.shape[1]):
        P = (W.T @ X.T).T
        return P if b is None else P + b
    return X @ W if b is None else torch.addmm(b, X, W)


def xt_dot(XT: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``X' D`` from the transposed view ``XT`` of ``X``: shape (d, k)."""
    if _narrow(XT, D.shape[1]):
        return (D.T @ XT.T).T
    return XT @ D


@dataclass
class Curvature:
    """The second-moment matrix ``X~' S X~ / sum(s)`` of an oracle's data.

    Either ``matrix`` itself (float64) or its product ``matvec`` with a
    vector of size ``dim``; ``max_row`` is the largest row term
    ``s_i ||x~_i||^2 n / sum(s)`` (None when no minibatch needs it).
    """

    matrix: torch.Tensor | None = None
    matvec: Callable[[torch.Tensor], torch.Tensor] | None = None
    dim: int = 0
    dtype: torch.dtype = torch.float64
    device: torch.device | None = None
    max_row: float | None = None


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


def _weight_sum(n, sw) -> float:
    return float(n) if sw is None else float(sw.sum())


def _row_terms(Xc, s, fit_intercept, scale):
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
    wsum = _weight_sum(n, sw)
    G = torch.zeros(d, d, dtype=f64, device=X.device)
    s1 = torch.zeros(d, dtype=f64, device=X.device)
    max_row = torch.zeros((), dtype=f64, device=X.device)
    for sl in gen_batches(n, chunk_rows):
        Xc = X[sl]
        s = None if sw is None else sw[sl]
        norms = _row_terms(Xc, s, fit_intercept, n / wsum)
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


def check_moments_finite(A, what: str = "X' X / n") -> None:
    """Raise a ValueError when the second moments of the data (a tensor or
    a numpy array) overflow: features too large for any step to be computed
    (scikit-learn's SGD reports the same overflow, advising a scaler)."""
    if isinstance(A, torch.Tensor):
        finite = bool(torch.isfinite(A).all())
    else:
        finite = bool(np.isfinite(A).all())
    if not finite:
        # scikit-learn's words for an overflow, which its users look for
        raise ValueError(
            "Floating-point under-/overflow occurred at epoch #1: the features "
            f"are too large, their second moments ({what}) overflow before any "
            "step. Scaling input data with StandardScaler or MinMaxScaler "
            "might help."
        )


def solution_scale(oracle, theta0: torch.Tensor, curvature: float, l2: float) -> float:
    """The largest coordinate of the diagonal Newton step from ``theta0``
    (all zeros): ``|g_j| / (curvature E[x_j^2] + l2)`` for a coefficient,
    ``|g_b| / curvature`` for the intercept, for each output.

    The scale of the solution's coordinates, which a per-coordinate method
    (Adam, Adagrad) travels in steps of about its learning rate; one pass
    for the moments and one gradient.
    """
    _, second = oracle.column_moments()
    _, _, grad = oracle.loss_grad(theta0, oracle.full_batch())
    d = second.shape[0]
    grad = grad.to(torch.float64).abs()
    scale = grad[:d] / (curvature * second + l2).clamp_min(1e-300)[:, None]
    if grad.shape[0] > d:  # the intercept's row
        scale = torch.cat([scale, grad[d:] / curvature])
    value = float(scale.max())
    return value if math.isfinite(value) and value > 0 else 1.0


def lipschitz_estimate(oracle, n_iter: int = 30) -> tuple[float, float | None]:
    """Largest eigenvalue of the oracle's second-moment matrix, and its
    largest scaled row norm.

    The eigenvalue comes from ``eigvalsh`` when the oracle gives the matrix,
    and otherwise from power iteration from a fixed start (deterministic, and
    unchanged when rows are repeated instead of weighted). It stops after
    ``n_iter`` steps, or once the estimate stops moving in the data's
    precision (4 ulps): TF-IDF rows settle in 4 steps in float32, where all
    30 steps took half a sparse fit's set-up.
    """
    c = oracle.curvature()
    if c.max_row is not None and not math.isfinite(c.max_row):
        check_moments_finite(torch.tensor(c.max_row), "the largest row norm")
    if c.matrix is not None:
        check_moments_finite(c.matrix)
        return float(torch.linalg.eigvalsh(c.matrix)[-1]), c.max_row
    # a fixed, generic start vector (never orthogonal to the top eigenvector
    # in practice), independent of random_state
    v = torch.linspace(1.0, 2.0, c.dim, dtype=c.dtype, device=c.device)
    v = v / torch.linalg.vector_norm(v)
    lam, still = 0.0, 4 * torch.finfo(c.dtype).eps
    for _ in range(n_iter):
        w = c.matvec(v)
        new = float(torch.linalg.vector_norm(w))
        check_moments_finite(torch.tensor(new), "X' X / n times a unit vector")
        settled = abs(new - lam) <= still * new
        lam = new
        if lam == 0.0 or settled:
            break
        v = w / lam
    return lam, c.max_row


class Oracle:
    """The protocol every oracle keeps (see the module docstring).

    Attributes
    ----------
    n_samples : int
        Training rows.
    n_batches : int
        Batches per epoch.
    """

    n_samples: int
    n_batches: int

    def batches(self):
        """The batch indices of one epoch."""
        raise NotImplementedError

    def full_batch(self):
        """The index of the whole training set as one batch."""
        raise NotImplementedError

    def zero_model_loss(self) -> torch.Tensor:
        """Data term of the all-zero model per output: a scale for the
        objective that needs no pass over ``X``."""
        raise NotImplementedError

    @property
    def quadratic(self) -> bool:
        """Whether the data term is a quadratic function of ``theta``."""
        return getattr(getattr(self, "loss", None), "quadratic", False)

    # whether :meth:`derivatives` is offered (see DirectOracle), and the
    # multiply-adds of one Hessian
    supports_hessian = False
    hessian_work = math.inf
    # whether ``least_squares_moments`` and ``intercept_of`` are offered (see
    # GramOracle): the whole data term as a quadratic form in the coefficients
    supports_least_squares_moments = False

    def column_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted mean and second moment of every column of ``X``
        (float64, on the device): ``sum_i s_i x_ij / sum(s)`` and ``sum_i
        s_i x_ij^2 / sum(s)``. The preconditioner of the full-batch solvers
        is built from them; one pass over ``X``."""
        raise NotImplementedError

    def loss_grad(self, theta, idx, need_grad=True):
        """Weighted mean loss per output, batch weight, and gradient.

        ``theta`` stacks the coefficients and (when fitted) the intercept as
        one (n_features + fit_intercept, n_outputs) matrix. Returns
        ``(values, weight, grad)``: ``values`` of shape (n_outputs,),
        ``weight`` the batch's total sample weight (a float or a 0-dim
        tensor, so that epoch averages need no host synchronisation),
        ``grad`` shaped like ``theta`` (None when ``need_grad`` is False).
        """
        raise NotImplementedError

    def curvature(self) -> Curvature:
        """The second-moment matrix, for the automatic step size."""
        raise NotImplementedError

    def batch_threads(self) -> contextlib.AbstractContextManager:
        """The context a minibatch epoch runs in: torch's threads as they
        are (subclasses whose batches are too small to share narrow them)."""
        return contextlib.nullcontext()

    # whether :meth:`loss_descend_` saves work over :meth:`loss_grad` and a
    # step (the gradient never built): host batches, whose steps are a few
    # dozen small operations (a sparse batch's gradient is moreover non-zero
    # on the batch's features only)
    descends_in_place = False
    # whether a descent in place may keep the L2 part's scaling pending
    # (:meth:`Problem.lazily`): where a step touches only some features (a
    # sparse batch's); a dense step touches every one and scales them too
    scales_lazily = False

    def loss_descend_(self, theta, idx, coef_step, intercept_step, coef_scale=1.0):
        """:meth:`loss_grad`'s values and weight on batch ``idx`` at the
        parameters ``theta`` stands for (its coefficient rows times
        ``coef_scale``), then the data term's gradient step in place: the
        stored coefficient rows move by ``-coef_step`` times the gradient,
        the intercept by ``-intercept_step`` times its."""
        d = theta.shape[0] - int(self.fit_intercept)
        true = theta
        if coef_scale != 1.0:
            true = theta.clone()
            true[:d] *= coef_scale
        values, weight, grad = self.loss_grad(true, idx)
        theta[:d].sub_(grad[:d], alpha=coef_step)
        theta[d:].sub_(grad[d:], alpha=intercept_step)
        return values, weight


class LazyGenerator:
    """The host ``torch.Generator`` of a fit, seeded from ``random_state``
    (scikit-learn's ``check_random_state``) when first drawn from: a
    full-batch fit draws nothing and skips the seeding, which costs about
    0.15 ms (``numpy.random.RandomState``)."""

    def __init__(self, random_state):
        self.random_state = random_state
        self._generator = None

    def get(self) -> torch.Generator:
        if self._generator is None:
            rng = check_random_state(self.random_state)
            seed = int(rng.randint(0, np.iinfo(np.int32).max))
            self._generator = torch.Generator().manual_seed(seed)
        return self._generator


def _permutation(n, generator, device):
    """A random permutation of ``range(n)`` on ``device``, drawn from the
    host ``generator`` (seeded by ``random_state``; a :class:`LazyGenerator`
    or a ``torch.Generator``).

    On an accelerator it is drawn there, from a device generator seeded by
    ``generator``: a host permutation of 1e7 rows takes longer to draw and
    send than an epoch takes on the device.
    """
    if isinstance(generator, LazyGenerator):
        generator = generator.get()
    if device.type == "cpu" or generator is None:
        return torch.randperm(n, generator=generator).to(device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    on_device = torch.Generator(device=device).manual_seed(seed)
    return torch.randperm(n, generator=on_device, device=device)


class DirectOracle(Oracle):
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

    # up to this many features (and fewer than rows) the curvature is the
    # second-moment matrix itself, from one GEMM pass (about d / 8 passes'
    # cost) instead of power iteration's up to 2 * 30 passes
    gram_curvature_max_features = 512
    # up to this many features an output's Hessian, (d + 1)^2 entries from one
    # GEMM pass, costs about what d / 8 gradient passes do
    hessian_max_features = 512
    # a joint Hessian of fewer entries times rows than this is computed whole
    # (k^2 blocks, few operations), larger ones block by block (about a
    # third of the work for three classes)
    joint_blocks_below = 5e7

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
        self.chunk_rows = rows_per_chunk(X.shape[1], X.dtype.itemsize)
        self._gathered = None

    def _order(self, device):
        """The batch indices of one epoch: slices, or a permutation's pieces
        on ``device``."""
        n, bs = self.n_samples, self.batch_size
        if not self.shuffle:
            return [slice(start, min(start + bs, n)) for start in range(0, n, bs)]
        perm = _permutation(n, self.generator, device)
        return [perm[start : start + bs] for start in range(0, n, bs)]

    def batches(self):
        yield from self._order(self.X.device)

    def full_batch(self):
        return slice(0, self.n_samples)

    def zero_model_loss(self) -> torch.Tensor:
        P = torch.zeros_like(self.Y)
        values = self.loss.value(self.Y, P)
        if self.sw is None:
            return values.mean(0)
        s = self.sw[:, None]
        return (values * s).sum(0) / s.sum()

    # ---------------------------------------------- how a batch is read
    def _pieces(self, idx):
        """The batch in the pieces that are computed one at a time."""
        return (idx,)

    def _rows(self, piece):
        """The piece's rows of X and their transpose. Rows gathered by an
        index are valid until the next gather: they may share one buffer."""
        if isinstance(piece, torch.Tensor) and self.X.device.type == "cpu":
            # torch's advanced indexing is several times slower on CPU
            Xb = take_rows(self.X, piece, self._gather_buffer(piece.shape[0]))
        else:
            Xb = self.X[piece]
        return Xb, Xb.T

    def _gather_buffer(self, m: int) -> torch.Tensor | None:
        """The buffer host rows gathered through index_select go to (None
        for gathers that go through numpy)."""
        if not gathers_in_parallel(self.X, m):
            return None
        buf = self._gathered
        if buf is None or buf.shape[0] < m:
            shape = (m, self.X.shape[1])
            buf = self._gathered = torch.empty(shape, dtype=self.X.dtype)
        return buf

    def _index(self, piece):
        """Index of a piece (or a whole batch) into ``Y`` and the weights."""
        return piece

    def _length(self, piece) -> int:
        if isinstance(piece, slice):
            return piece.stop - piece.start
        return piece.shape[0]

    def _rows_done(self, pieces, j):
        """Called once piece ``j`` of ``pieces`` is computed."""

    def _batch_weight(self, idx, pieces):
        """The batch's total sample weight (a float without weights, so no
        sync; a 0-dim tensor with them) and its divisor, never 0: a batch of
        zero-weight rows contributes nothing, not 0 / 0."""
        if self.sw is None:
            weight = float(sum(self._length(p) for p in pieces))
            return weight, weight
        rows, sw = self._index(idx), self.sw
        if sw.device.type == "cpu" and sw.dtype in (torch.float32, torch.float64):
            # numpy's sum, on this thread: one column's sum gains little
            # from torch's threads, and numpy keeps the batch weights'
            # rounding what the fits were checked with
            host = sw.numpy()
            host = host[rows] if isinstance(rows, slice) else np.take(host, rows)
            weight = torch.from_numpy(np.asarray(host.sum(dtype=host.dtype)))
        else:
            weight = sw[rows].sum()
        return weight, weight.clamp_min(torch.finfo(weight.dtype).tiny)

    def loss_grad(self, theta, idx, need_grad=True):
        pieces = self._pieces(idx)
        weight, denom = self._batch_weight(idx, pieces)
        values = grad = None
        for j, piece in enumerate(pieces):
            v, D, XbT = self._piece_terms(theta, piece, denom, need_grad)
            values = v if values is None else values + v
            if need_grad:
                grad = self._add_gradient(grad, theta, XbT, D)
            self._rows_done(pieces, j)
        return values / denom, weight, grad

    def _targets(self, piece):
        """The piece's targets and sample weights (None without weights)."""
        rows = self._index(piece)
        if isinstance(rows, torch.Tensor) and self.Y.device.type == "cpu":
            sw = None if self.sw is None else take_rows(self.sw, rows)
            return take_rows(self.Y, rows), sw
        return self.Y[rows], None if self.sw is None else self.sw[rows]

    def _piece_terms(self, theta, piece, denom, need_grad=True, coef_scale=1.0):
        """A piece's weighted loss sums per output, its loss derivatives
        ``D`` (weighted, over ``denom``; None without ``need_grad``) and
        ``X_b'``: its gradient is ``[X_b' D; sum(D)]``. The coefficients
        are ``theta``'s rows times ``coef_scale``."""
        d = theta.shape[0] - int(self.fit_intercept)
        Xb, XbT = self._rows(piece)
        Yb, sb = self._targets(piece)
        b = theta[d] if self.fit_intercept else None
        if coef_scale == 1.0:
            P = affine(Xb, theta[:d], b)
        else:
            P = affine(Xb, theta[:d]).mul_(coef_scale)
            P = P if b is None else P.add_(b)
        if need_grad:
            v, D = self.loss.value_and_derivative(Yb, P)
        else:
            v, D = self.loss.value(Yb, P), None
        if sb is not None:
            sb = sb[:, None]
            v = v * sb
        if need_grad:
            D = D / denom if sb is None else D * (sb / denom)
        return v.sum(0), D, XbT

    # a step taken straight into theta skips the gradient's own operations:
    # on the host, a batch of 32 rows and 100 features runs about 40 small
    # operations a step, each a few microseconds, against ~1 us of
    # arithmetic; on an accelerator, a step's kernels are as many launches
    descends_in_place = True

    def loss_descend_(self, theta, idx, coef_step, intercept_step, coef_scale=1.0):
        pieces = self._pieces(idx)
        if len(pieces) != 1:  # a later piece's products need the old theta
            return super().loss_descend_(
                theta, idx, coef_step, intercept_step, coef_scale
            )
        weight, denom = self._batch_weight(idx, pieces)
        values, D, XbT = self._piece_terms(
            theta, pieces[0], denom, coef_scale=coef_scale
        )
        d = XbT.shape[0]
        if self.fit_intercept:
            theta[d].sub_(D.sum(0), alpha=intercept_step)
        self._descend_coef_(theta[:d], XbT, D, coef_step)
        return values / denom, weight

    def _descend_coef_(self, W, XbT, D, step):
        """``W -= step * X_b' D`` in place (``D`` may be overwritten)."""
        if _narrow(XbT, D.shape[1]):
            W.sub_(xt_dot(XbT, D), alpha=step)
        else:
            W.addmm_(XbT, D, alpha=-step)

    def _add_gradient(self, grad, theta, XbT, D):
        """``grad`` plus a piece's gradient ``[X_b' D; sum(D)]`` (or that
        gradient alone for the first piece)."""
        d = XbT.shape[0]
        if grad is None:
            if not self.fit_intercept:
                return xt_dot(XbT, D)
            grad = torch.empty_like(theta)
            grad[:d] = xt_dot(XbT, D)
            torch.sum(D, 0, out=grad[d])
            return grad
        grad[:d] += xt_dot(XbT, D)
        if self.fit_intercept:
            grad[d] += D.sum(0)
        return grad

    # -------------------------------------------------- curvature
    @property
    def supports_hessian(self) -> bool:
        """Rows in memory, and few enough features for a Hessian per output,
        or, for a joint loss, few enough coefficients in all (the loss must
        also have :attr:`~Loss.has_hessian`)."""
        X = self.X
        size = X.shape[1] * (self.Y.shape[1] if self.loss.joint else 1)
        return isinstance(X, torch.Tensor) and size < self.hessian_max_features

    @property
    def hessian_work(self) -> float:
        """The multiply-adds of one Hessian: ``n q^2`` an output, ``q = d +
        fit_intercept``, or ``n (k q)^2`` for a joint loss's."""
        (n, d), k = self.X.shape, self.Y.shape[1]
        q = d + int(self.fit_intercept)
        return float(n * (k * q) ** 2 if self.loss.joint else n * q * q * k)

    def derivatives(self, theta, order: int = 2):
        """Each output's weighted mean loss at ``theta`` (the stacked
        coefficients and intercept), and up to ``order`` its gradient and its
        Hessian: ``(values, grad, H)``, None beyond ``order``; ``H`` float64
        of shape (n_outputs, n_features + fit_intercept, same).

        One pass over the design rows ``A = [X, 1]`` in row chunks, sharing
        the predictions and the loss's terms (:meth:`~Loss.derivatives`):
        the gradient is ``A' D``, the Hessians one product ``A' [A c_1, ...,
        A c_k]`` per chunk (``c_j`` output ``j``'s second derivatives). A
        piecewise-quadratic loss gives its generalised Hessian. A joint loss
        (softmax cross-entropy) gives one Hessian of shape (1, k q, k q), ``q
        = n_features + fit_intercept``, in class-major order (``theta.T``
        flattened). For Newton's method, on rows in memory with few
        features (:attr:`supports_hessian`).

        Where one chunk holds every row, :attr:`last_rows` keeps that
        call's predictions and unweighted derivatives per row (``(P, dL/dp,
        d^2L/dp^2)``, None beyond ``order``; None over several chunks): the
        duality gap at the same ``theta`` needs them, and Newton's
        certificate takes them instead of a pass of its own."""
        n = self.n_samples
        values = grad = H = None
        self.last_rows = None
        for sl in gen_batches(n, self.chunk_rows):
            A = self._design_rows(sl)
            whole = sl.stop - sl.start == n
            Y = self.Y if whole else self.Y[sl]
            P = affine(A, theta)
            v, D, C = self.loss.derivatives(Y, P, order)
            if whole:  # the rows' own terms, kept for a certificate
                self.last_rows = (P, D, C)
            s = None if self.sw is None else self.sw[sl][:, None]
            if s is not None:
                v, D = v * s, None if D is None else D * s
            v = v.sum(0)
            values = v if values is None else values.add_(v)
            if D is not None:
                g = xt_dot(A.T, D)
                grad = g if grad is None else grad.add_(g)
            if C is not None and self.loss.joint:
                H = self._add_joint_hessian(H, A, C, s)
            elif C is not None:
                H = self._add_hessian(H, A, C if s is None else C * s)
        denom = float(n) if self.sw is None else self.sw.sum()
        values = values / denom
        grad = None if grad is None else grad.div_(denom)
        H = None if H is None else H.div_(denom)
        return values, grad, H

    @staticmethod
    def _grams(A, W) -> torch.Tensor:
        """``A' diag(w_j) A`` for every column ``w_j`` of ``W`` (m, p): shape
        (p, q, q), from one product ``A' [A w_1, ..., A w_p]``."""
        (m, q), p = A.shape, W.shape[1]
        if p == 1:  # the fewest operations
            return (A.T @ (A * W))[None]
        AW = (A[:, None, :] * W[:, :, None]).reshape(m, p * q)
        return (A.T @ AW).view(q, p, q).transpose(0, 1)

    def _add_hessian(self, H, A, C):
        """``H`` plus the chunk's ``A' diag(c_j) A`` for every output ``j``,
        in groups of outputs whose scaled copies of ``A`` fit in a chunk."""
        (m, q), k = A.shape, C.shape[1]
        group = max(1, min(k, self.chunk_rows // m))
        for j in range(0, k, group):
            part = self._grams(A, C[:, j : j + group]).to(torch.float64)
            if H is None and part.shape[0] == k:
                H = part
            else:
                if H is None:
                    H = torch.zeros(k, q, q, dtype=torch.float64, device=A.device)
                H[j : j + part.shape[0]] += part
        return H

    @staticmethod
    def _add_joint_hessian(H, A, S, s):
        """``H`` plus the chunk's ``sum_i s_i (diag(S_i) - S_i S_i') (x) A_i
        A_i'`` (the softmax's row Hessian, ``S_i`` the row's probabilities,
        ``s_i`` its weight), class-major.

        Block ``(a, b)`` is ``A' diag(w_ab) A`` with ``w_ab = s S_a (delta_ab
        - S_b)``: symmetric in ``a, b``, and each block row sums to zero (the
        probabilities sum to one). Where large, one product computes the
        blocks of the first ``k - 1`` classes with ``a <= b``, ``(k - 1) k /
        2 n q^2`` operations where all ``k^2`` blocks take ``2 k^2 n q^2``;
        the last class's blocks are the negated sums."""
        (m, q), k = A.shape, S.shape[1]
        if m * (k * q) ** 2 <= DirectOracle.joint_blocks_below:
            # small: every block from one product, in fewer operations
            W = S[:, :, None] * (
                torch.eye(k, dtype=S.dtype, device=S.device) - S[:, None]
            )
            W = W.reshape(m, k * k) if s is None else W.reshape(m, k * k) * s
            B = DirectOracle._grams(A, W).view(k, k, q, q)
        else:
            a, b = torch.triu_indices(k - 1, k - 1, device=A.device)
            W = S[:, a] * ((a == b).to(S.dtype) - S[:, b])
            G = DirectOracle._grams(A, W if s is None else W * s)
            B = A.new_zeros(k, k, q, q)
            B[a, b] = G
            B[b, a] = G
            B[: k - 1, k - 1] = B[: k - 1, : k - 1].sum(1).neg_()
            B[k - 1, : k - 1] = B[: k - 1, k - 1]
            B[k - 1, k - 1] = B[k - 1, : k - 1].sum(0).neg_()
        part = B.transpose(1, 2).reshape(1, k * q, k * q).to(torch.float64)
        return part if H is None else H.add_(part)

    def _design_rows(self, sl: slice) -> torch.Tensor:
        """Rows ``sl`` of the dense design matrix ``[X, 1]`` (``X`` without an
        intercept). When one chunk holds every row it is built once and kept:
        a Newton solver asks for it every iteration."""
        whole = sl.start == 0 and sl.stop >= self.n_samples
        if whole and getattr(self, "_design", None) is not None:
            return self._design
        A = design_matrix(self._dense_rows(sl), self.fit_intercept)
        if whole:
            self._design = A
        return A

    def _dense_rows(self, sl: slice) -> torch.Tensor:
        """Rows ``sl`` of ``X`` as a dense tensor (for :meth:`derivatives`)."""
        return self.X[sl]

    def _matvec(self, v):
        """``(X~' S X~ / sum s) @ v``, reading ``X`` in row chunks."""
        X, sw, fi = self.X, self.sw, self.fit_intercept
        n, d = X.shape
        out = torch.zeros_like(v)
        for sl in gen_batches(n, self.chunk_rows):
            Xc = X[sl]
            r = Xc @ v[:d]
            if fi:
                r = r + v[-1]
            if sw is not None:
                r = r * sw[sl]
            out[:d] += Xc.T @ r
            if fi:
                out[-1] += r.sum()
        return out / _weight_sum(n, sw)

    def curvature(self) -> Curvature:
        n, d = self.X.shape
        fi = self.fit_intercept
        if d < self.gram_curvature_max_features and n > d:
            A, max_row = second_moments(self.X, self.sw, fi, self.chunk_rows)
            return Curvature(matrix=A, max_row=max_row)
        max_row = 0.0
        wsum = _weight_sum(n, self.sw)
        for sl in gen_batches(n, self.chunk_rows):
            s = None if self.sw is None else self.sw[sl]
            norms = _row_terms(self.X[sl], s, fi, n / wsum)
            max_row = max(max_row, float(norms.max()))
        return Curvature(
            matvec=self._matvec,
            dim=d + int(fi),
            dtype=self.Y.dtype,
            device=self.Y.device,
            max_row=max_row,
        )

    def column_moments(self):
        X, sw = self.X, self.sw
        n, d = X.shape
        f64 = torch.float64
        mean = torch.zeros(d, dtype=f64, device=self.Y.device)
        second = torch.zeros(d, dtype=f64, device=self.Y.device)
        for sl in gen_batches(n, self.chunk_rows):
            Xc = X[sl] if sw is None else X[sl] * sw[sl][:, None]
            mean += Xc.sum(0, dtype=f64)
            second += (Xc * X[sl]).sum(0, dtype=f64)
        wsum = _weight_sum(n, sw)
        return mean / wsum, second / wsum


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
        if not self.shuffle:
            yield from self._order(self.X.device)
            return
        # the permutation is drawn on the host (the same draw as the dense
        # oracle's) and gathered block by block; each batch is a view
        pieces = self._order(torch.device("cpu"))
        row_nnz = np.diff(self._indptr_host)
        per_block = max(1, CHUNK_ROWS // self.batch_size)
        for first in range(0, len(pieces), per_block):
            group = pieces[first : first + per_block]
            host = torch.cat(group) if len(group) > 1 else group[0]
            rows = host.to(self.X.device)
            if rows.device.type == "cpu":
                block, crow = self._gather_host(host.numpy())
            else:
                crow = np.zeros(host.shape[0] + 1, dtype=np.int64)
                np.cumsum(row_nnz[host.numpy()], out=crow[1:])
                block = self._gather(rows, torch.from_numpy(crow).to(rows.device))
            block = block._replace(
                Y=self.Y[rows], sw=None if self.sw is None else self.sw[rows]
            )
            start = 0
            for piece in group:
                stop = start + piece.shape[0]
                lo, hi = int(crow[start]), int(crow[stop])
                yield _SparseBatch(rows[start:stop], block, start, stop, lo, hi)
                start = stop

    def _gather(self, rows: torch.Tensor, crow: torch.Tensor) -> _Block:
        """The CSR arrays of ``rows`` (``crow``: their row pointers, built on
        the host), without each non-zero's row: a device's products do not
        need it, and :meth:`_rows` derives it on the host."""
        indptr = self._indptr
        nnz = int(crow[-1]) if crow.device.type == "cpu" else None
        starts = indptr[rows]
        lens = indptr[rows + 1] - starts
        # positions of the rows' non-zeros in the CSR arrays
        pos = torch.repeat_interleave(starts - crow[:-1], lens, output_size=nnz)
        pos += torch.arange(pos.shape[0], device=pos.device)
        return _Block(crow, self._indices[pos], self._data[pos], None)

    def _gather_host(self, rows: np.ndarray) -> tuple[_Block, np.ndarray]:
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
        in_batch = np.arange(rows.shape[0]) % self.batch_size
        block = _Block(
            torch.from_numpy(sub.indptr),
            torch.from_numpy(sub.indices),
            torch.from_numpy(sub.data).to(self._data.dtype),
            torch.from_numpy(np.repeat(in_batch, np.diff(crow))),
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
        return out / _weight_sum(self.n_samples, sw)

    def curvature(self) -> Curvature:
        n, d = self.X.shape
        sw, fi = self.sw, self.fit_intercept
        norms = np.asarray(self.Xs.multiply(self.Xs).sum(1)).ravel() + float(fi)
        if sw is not None:
            norms = norms * sw.cpu().numpy() * (n / _weight_sum(n, sw))
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
