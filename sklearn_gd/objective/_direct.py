"""The data term read from the rows of ``X`` (:class:`DirectOracle`): the
loss and gradient of a batch, the full batch's Hessians and curvature."""

from __future__ import annotations

import numpy as np
import torch

from ..model._losses import Loss
from ._epochs import EpochOrder
from ._hessians import add_hessian, add_joint_hessian
from ._protocol import Curvature, Oracle
from ._rows import (
    RowGather,
    affine,
    design_matrix,
    gen_batches,
    narrow,
    row_terms,
    rows_per_chunk,
    second_moments,
    take_rows,
    weight_sum,
    xt_dot,
)

__all__ = ["DirectOracle"]


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
        self.epochs = EpochOrder(n, batch_size, shuffle, generator)
        self.n_samples, self.n_batches = n, self.epochs.n_batches
        self.chunk_rows = rows_per_chunk(X.shape[1], X.dtype.itemsize)
        self.gather = RowGather(X)

    def batches(self):
        yield from self.epochs.batches(self.X.device)

    def full_batch(self):
        return slice(0, self.n_samples)

    def zero_model_loss(self) -> torch.Tensor:
        P = torch.zeros_like(self.Y)
        values = self.loss.value(self.Y, P)
        if self.sw is None:
            return values.mean(0)
        s = self.sw[:, None]
        return (values * s).sum(0) / s.sum()

    # ------------------------------------ the rows, as others read them
    supports_certificate = True

    def pieces_of(self, idx) -> list:
        """The batch ``idx`` (``full_batch()``: every row) in the pieces
        that are computed one at a time, in row order."""
        return list(self._pieces(idx))

    def rows_of(self, piece):
        """The piece's rows of ``X`` and their transpose: valid until the
        next piece's rows are read (they may share one buffer); call
        :meth:`rows_read` once they are used."""
        return self._rows(piece)

    def index_of(self, piece):
        """Index of a piece (or a whole batch) into ``Y`` and ``sw``."""
        return self._index(piece)

    def rows_read(self, pieces, j) -> None:
        """Say that piece ``j`` of ``pieces`` (from :meth:`pieces_of`) is
        used: rows streamed from the host then fetch the next piece."""
        self._rows_done(pieces, j)

    # ---------------------------------------------- how a batch is read
    def _pieces(self, idx):
        """The batch in the pieces that are computed one at a time."""
        return (idx,)

    def _rows(self, piece):
        """The piece's rows of X and their transpose. Rows gathered by an
        index are valid until the next gather: they may share one buffer."""
        if isinstance(piece, torch.Tensor) and self.X.device.type == "cpu":
            # torch's advanced indexing is several times slower on CPU
            Xb = self.gather.take(piece)
        else:
            Xb = self.X[piece]
        return Xb, Xb.T

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
        if narrow(XbT, D.shape[1]):
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
                H = add_joint_hessian(H, A, C, s, self.joint_blocks_below)
            elif C is not None:
                C = C if s is None else C * s
                H = add_hessian(H, A, C, self.chunk_rows)
        denom = float(n) if self.sw is None else self.sw.sum()
        values = values / denom
        grad = None if grad is None else grad.div_(denom)
        H = None if H is None else H.div_(denom)
        return values, grad, H

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
        return out / weight_sum(n, sw)

    def curvature(self) -> Curvature:
        n, d = self.X.shape
        fi = self.fit_intercept
        if d < self.gram_curvature_max_features and n > d:
            A, max_row = second_moments(self.X, self.sw, fi, self.chunk_rows)
            return Curvature(matrix=A, max_row=max_row)
        max_row = 0.0
        wsum = weight_sum(n, self.sw)
        for sl in gen_batches(n, self.chunk_rows):
            s = None if self.sw is None else self.sw[sl]
            norms = row_terms(self.X[sl], s, fi, n / wsum)
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
        wsum = weight_sum(n, sw)
        return mean / wsum, second / wsum
