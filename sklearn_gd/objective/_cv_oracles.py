"""Column oracles: one data term per column of a parameter matrix.

The cross-validation estimators train every (fold, l1_ratio, alpha)
configuration as a *unit* of columns of one parameter matrix ``theta`` of
shape (n_features + fit_intercept, n_units * k), ``k`` columns a unit (one per
output, or per class). A unit's data term is the weighted mean loss over its
fold's training rows::

    f_j(theta_j) = sum_i m_{i,f(j)} L(y_{i,o(j)}, x_i . w_j + b_j) / sum_i m_{i,f(j)}

with ``m`` the (n_samples, n_folds) matrix of *fold weights*: a sample's
weight (times its class weight, computed on that fold's training labels) on
the rows a fold trains on, zero on its held-out rows. A :class:`Layout` says
which fold each unit trains on; the oracles answer ``column_loss_grad`` for
any layout, so that groups of units can be trained one after the other from
the same statistics.

* :class:`ColumnDirectOracle`, :class:`ColumnSparseOracle` and
  :class:`ColumnHostOracle` read the rows of ``X`` (a tensor, a scipy CSR
  matrix on the device, or a host array streamed in chunks) as
  :class:`~sklearn_gd.objective._direct.DirectOracle` and its subclasses
  do: each batch is read once and serves every column, in pieces of
  ``piece_rows`` rows that bound the (rows x columns) temporaries.
* ``ColumnGramOracle`` (``_cv_gram.py``) serves the full-batch squared
  loss: one pass over ``X`` builds every fold's second moments (rows are
  grouped by the set of folds they train in, so that each row enters one
  Gram matrix), and each step then costs O(d^2) per column without
  touching ``X``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from ._direct import DirectOracle
from ._fold_groups import row_groups, tests_are_complements
from ._protocol import check_moments_finite
from ._rows import affine, augment, gen_batches
from ._sparse import SparseOracle
from ._streaming import HostChunkOracle

__all__ = [
    "ColumnDirectOracle",
    "ColumnHostOracle",
    "ColumnSparseOracle",
    "FoldMoments",
    "Layout",
]

_F64 = torch.float64


class Layout:
    """Which fold each unit of columns trains on.

    Unit ``u`` owns columns ``u * k`` to ``u * k + k - 1``, one per output
    (or class); ``unit_fold[u]`` is its fold. ``by_fold`` lists, per fold,
    its columns (a slice where contiguous, else an index tensor) and its
    units (host indices).
    """

    def __init__(self, unit_fold: np.ndarray, k: int, device):
        unit_fold = np.asarray(unit_fold, dtype=np.int64)
        self.n_units = unit_fold.shape[0]
        self.k = int(k)
        self.n_columns = self.n_units * self.k
        self.unit_fold_host = unit_fold
        self.unit_fold = torch.as_tensor(unit_fold, device=device)
        # the columns of each fold: a slice where they are contiguous (units
        # ordered fold by fold), else an index tensor
        self.by_fold = []
        for f in np.unique(unit_fold):
            units = np.flatnonzero(unit_fold == f)
            if units[-1] - units[0] + 1 == units.shape[0]:
                cols = slice(int(units[0]) * k, (int(units[-1]) + 1) * k)
            else:
                cols = torch.as_tensor(
                    (units[:, None] * k + np.arange(k)).ravel(), device=device
                )
            self.by_fold.append((int(f), cols, units))

    def expand(self, per_unit: torch.Tensor) -> torch.Tensor:
        """A per-unit vector repeated over each unit's columns."""
        return per_unit.repeat_interleave(self.k) if self.k > 1 else per_unit

    def columns(self, per_unit: np.ndarray) -> torch.Tensor:
        """A per-unit host array repeated over each unit's columns, on the
        device."""
        return torch.as_tensor(
            np.repeat(per_unit, self.k), device=self.unit_fold.device
        )

    def unit_sum(self, per_column: torch.Tensor) -> torch.Tensor:
        """The sum of a per-column vector over each unit's columns."""
        if self.k == 1:
            return per_column
        return per_column.reshape(self.n_units, self.k).sum(1)


@dataclass
class Moments:
    """Weighted moments of ``x`` (and ``y``) over a set of rows, one set per
    leading index (a fold), float64: the weight ``S``, the means ``mx`` and
    ``my``, and the centred second moments ``Gc = E[(x - mx)(x - mx)']``,
    ``Cc = E[(x - mx)(y - my)']`` and ``yyc = E[(y - my)^2]`` (``my``,
    ``Cc`` and ``yyc`` are None without targets)."""

    S: torch.Tensor  # (F,)
    mx: torch.Tensor  # (F, d)
    Gc: torch.Tensor  # (F, d, d)
    my: torch.Tensor | None = None  # (F, k)
    Cc: torch.Tensor | None = None  # (F, d, k)
    yyc: torch.Tensor | None = None  # (F, k)

    @classmethod
    def from_sums(cls, M, mu, nu, d):
        """From sums ``M = Z' S Z`` of ``Z = [x - mu, 1, y - nu]``, (F, D, D)."""
        S = M[:, d, d].clamp_min(torch.finfo(_F64).tiny)
        E = M / S[:, None, None]
        a = E[:, :d, d]  # the mean minus the shift
        out = cls(S, mu + a, E[:, :d, :d] - a[:, :, None] * a[:, None, :])
        if M.shape[1] > d + 1:
            ay = E[:, d, d + 1 :]
            out.my = nu + ay
            out.Cc = E[:, :d, d + 1 :] - a[:, :, None] * ay[:, None, :]
            Eyy = torch.diagonal(E[:, d + 1 :, d + 1 :], dim1=1, dim2=2)
            out.yyc = Eyy - ay * ay
        return out

    def raw(self):
        """The uncentred moments ``E[x x']``, ``E[x y']`` and ``E[y^2]`` (the
        last two None without targets)."""
        mx, my = self.mx, self.my
        G = self.Gc + mx[:, :, None] * mx[:, None, :]
        if my is None:
            return G, None, None
        return G, self.Cc + mx[:, :, None] * my[:, None, :], self.yyc + my * my

    def gram(self, fit_intercept):
        """``(A, C, yy)`` of :class:`~sklearn_gd.objective._gram.GramOracle` in raw
        coordinates: ``E[x~ x~']``, ``E[x~ y']``, ``E[y^2]`` (``x~ = [x, 1]``)."""
        mx = self.mx
        G, C, yy = self.raw()
        A = torch.stack([augment(G[f], mx[f], fit_intercept) for f in range(len(G))])
        check_moments_finite(A)
        if C is None:
            return A, None, None
        if fit_intercept:
            C = torch.cat([C, self.my[:, None, :]], 1)
        return A, C, yy


@dataclass
class FoldMoments:
    """The moments of every fold's training rows (weighted by the fold
    weights), of its held-out rows and of all rows (weighted by the row
    weights), the last two only where the pass could give them (see
    :meth:`_ColumnRows.fold_moments`)."""

    train: Moments
    test: Moments | None = None
    total: Moments | None = None


class _ColumnRows:
    """The column data term over the rows of ``X`` (mixed into the row
    oracles, whose batches, pieces and row reading it uses unchanged).

    Parameters
    ----------
    X, Y, loss, **kwargs
        As for the row oracle it is mixed into (its ``sample_weight`` is
        None: weights come from ``fold_weights``).
    fold_weights : tensor of shape (n_samples, n_folds)
        The weight of each sample in each fold's training set (0: held out).
    fold_rows : ndarray of shape (n_folds,)
        Training rows of each fold (its ``n_samples``, for the step size).
    piece_rows : int
        Rows of ``X`` computed at once.
    """

    def __init__(self, X, Y, fold_weights, fold_rows, loss, *, piece_rows, **kwargs):
        super().__init__(X, Y, None, loss, **kwargs)
        self.fold_weights = fold_weights
        self.fold_rows = np.asarray(fold_rows)
        self.piece_rows = int(piece_rows)
        self.fold_wsum = fold_weights.sum(0, dtype=_F64)

    # ------------------------------------------------------- the data term
    def column_loss_grad(self, theta, idx, layout: Layout, need_grad=True):
        """Per-column weighted mean loss, batch weight and gradient.

        As :meth:`~sklearn_gd.objective._protocol.Oracle.loss_grad`, with ``values``
        and ``weight`` of shape (n_columns,): each column's mean and total
        weight over its own fold's rows of the batch.
        """
        fi = self.fit_intercept
        d = theta.shape[0] - int(fi)
        W = theta[:d]
        U, k = layout.n_units, layout.k
        values = wsum = grad = None
        pieces = self._pieces(idx)
        for j, piece in enumerate(pieces):
            Xb, XbT = self._rows(piece)
            rows = self._index(piece)
            b = Xb.shape[0]
            M = self.fold_weights[rows][:, layout.unit_fold]  # (b, U)
            P = affine(Xb, W, theta[d] if fi else None)
            # (b, U, k) against (b, 1, k): every unit sees the same targets,
            # and a joint loss (softmax) works over each unit's k columns
            P3, Y3, M3 = P.view(b, U, k), self.Y[rows].view(b, 1, k), M[:, :, None]
            v = (self.loss.value(Y3, P3) * M3).sum(0).reshape(-1)
            m = M.sum(0)
            values = v if values is None else values + v
            wsum = m if wsum is None else wsum + m
            if need_grad:
                D = (self.loss.derivative(Y3, P3) * M3).reshape(b, -1)
                grad = self._add_gradient(grad, theta, XbT, D)
            self._rows_done(pieces, j)
        weight = layout.expand(wsum)
        denom = weight.clamp_min(torch.finfo(weight.dtype).tiny)
        return values / denom, weight, (None if grad is None else grad / denom)

    def bind(self, layout: Layout):
        """The oracle for one layout of columns (what training sees)."""
        return _BoundRows(self, layout)

    def column_zero_loss(self, layout: Layout) -> torch.Tensor:
        """Data term of the all-zero model, per column."""
        L0 = self.loss.value(self.Y, torch.zeros_like(self.Y)).to(_F64)
        Z = self.fold_weights.to(_F64).T @ L0 / self.fold_wsum[:, None]
        return Z[layout.unit_fold].reshape(-1)

    # ----------------------------------------------------------- one pass
    def all_rows(self, rows=None):
        """The pieces of all rows (or of the rows ``rows``, sorted host
        indices), for passes that are not training batches."""
        if rows is None:
            return self._pieces(slice(0, self.n_samples))
        rows = np.asarray(rows, dtype=np.int64)
        if rows.shape[0] and rows[-1] - rows[0] + 1 == rows.shape[0]:
            return self._pieces(slice(int(rows[0]), int(rows[-1]) + 1))
        return self._pieces(torch.as_tensor(rows, device=self._index_device()))

    def _index_device(self):
        return self.X.device

    def xt_dot(self, V: torch.Tensor) -> torch.Tensor:
        """``X' V`` over all rows (float64), for ``V`` of shape (n, m)."""
        out = None
        for piece in self.all_rows():
            _, XbT = self._rows(piece)
            part = (XbT @ V[self._index(piece)].to(XbT.dtype)).to(_F64)
            out = part if out is None else out + part
        return out

    def row_sq_norms(self) -> torch.Tensor:
        """``||x_i||^2`` of every row (float64)."""
        parts = []
        for piece in self.all_rows():
            Xb, _ = self._rows(piece)
            parts.append((Xb * Xb).sum(1).to(_F64))
        return torch.cat(parts)

    def feature_moments(self, weights: torch.Tensor):
        """Weighted mean and variance of every feature (float64), from one
        pass about a shift (the first rows' mean), which keeps the variance
        of features with large offsets accurate."""
        shift = None
        s1 = s2 = 0.0
        for piece in self.all_rows():
            Xb, _ = self._rows(piece)
            if shift is None:
                shift = Xb.mean(0)
            Xc = Xb - shift
            w = weights[self._index(piece)].to(Xb.dtype)
            s1 = s1 + (w @ Xc).to(_F64)
            s2 = s2 + (w @ (Xc * Xc)).to(_F64)
        total = weights.sum().to(_F64)
        m = s1 / total
        return shift.to(_F64) + m, s2 / total - m * m

    def predictions(self, rows, W, b):
        """``(index, X[index] @ W + b)`` for the pieces of the rows ``rows``."""
        for piece in self.all_rows(rows):
            Xb, _ = self._rows(piece)
            yield self._index(piece), Xb @ W + b

    # ---------------------------------------------------------- curvature
    def fold_curvature(self, max_row=True):
        """Largest eigenvalue of each fold's ``X~' M_f X~ / sum(m_f)`` and
        largest scaled row term (as :func:`~sklearn_gd.objective._protocol.
        lipschitz_estimate` gives for one oracle; None unless ``max_row``),
        as float64 arrays."""
        n, d = self.X.shape
        if self._dense and d < self.gram_curvature_max_features and n > d:
            A, _, _ = self.fold_moments(targets=False).train.gram(self.fit_intercept)
            lam = torch.linalg.eigvalsh(A)[:, -1]
        else:
            lam = self._power_iteration()
        if not max_row:
            return lam.cpu().numpy(), None
        norms = self.row_sq_norms() + float(self.fit_intercept)
        W = self.fold_weights.to(_F64)
        scale = torch.as_tensor(self.fold_rows, dtype=_F64, device=W.device)
        max_row = (norms.to(W.device)[:, None] * W).amax(0) * scale / self.fold_wsum
        return lam.cpu().numpy(), max_row.cpu().numpy()

    _dense = True

    def _power_iteration(self, n_iter: int = 30) -> torch.Tensor:
        """Every fold's top eigenvalue at once: each pass multiplies a
        vector per fold (lipschitz_estimate's fixed start and step count)."""
        fi = self.fit_intercept
        d = self.X.shape[1]
        F = self.fold_weights.shape[1]
        dt = self.Y.dtype
        v = torch.linspace(1.0, 2.0, d + int(fi), dtype=dt, device=self.Y.device)
        V = (v / torch.linalg.vector_norm(v))[:, None].repeat(1, F)
        lam = torch.zeros(F, dtype=_F64, device=V.device)
        for _ in range(n_iter):
            out = torch.zeros_like(V)
            for piece in self.all_rows():
                Xb, XbT = self._rows(piece)
                R = Xb @ V[:d]
                if fi:
                    R = R + V[d]
                R = R * self.fold_weights[self._index(piece)]
                out[:d] += XbT @ R
                if fi:
                    out[d] += R.sum(0)
            out = out / self.fold_wsum.to(dt)
            norm = torch.linalg.vector_norm(out, dim=0)
            lam = norm.to(_F64)
            check_moments_finite(lam, "X' X / n times a unit vector")
            V = out / norm.clamp_min(torch.finfo(dt).tiny)
        return lam

    # ------------------------------------------------------ fold moments
    def fold_moments(self, targets: bool, tests=None) -> FoldMoments:
        """Every fold's moments from one pass over ``X``.

        Rows are grouped by the set of folds they train in, with one weight
        each (the usual case: a sample weight times a 0/1 fold mask); each
        group's moments are summed into the folds it belongs to, so that
        every row enters one Gram matrix (for k-fold, the whole pass costs
        one Gram matrix of ``X``). The same sums then give each fold's
        held-out moments, where its held-out rows (``tests``, sorted) are
        exactly those it does not train on, and the moments of all rows,
        where every row trains in some fold. Otherwise (class weights that
        differ between folds, or more groups than folds, as for
        ShuffleSplit) each fold is its own group, and only the training
        moments are given. Each piece of rows is one product ``Z' S Z`` of
        ``Z = [X - mu, 1, Y - nu]``, accumulated in float64 about a shift
        (the first rows' mean) so that features with large offsets keep
        their digits in float32.
        """
        Wf = self.fold_weights
        first = self.all_rows()[0]
        Xs, _ = self._rows(first)
        mu = Xs.to(_F64).mean(0)
        nu = self.Y[self._index(first)].to(_F64).mean(0)
        d, k = mu.shape[0], nu.shape[0] if targets else 0
        shift = torch.cat([mu, nu[:k]]).to(Xs.dtype)
        dev = Wf.device
        groups, codes = row_groups(Wf)
        sums, members = [], []
        for rows, weights_of, member in groups:
            acc = torch.zeros(d + 1 + k, d + 1 + k, dtype=_F64, device=dev)
            for piece in self.all_rows(rows):
                Xb, _ = self._rows(piece)
                ix = self._index(piece)
                Z = torch.empty(Xb.shape[0], d + 1 + k, dtype=Xb.dtype, device=dev)
                Z[:, :d] = Xb
                Z[:, d + 1 :] = self.Y[ix][:, :k]
                Z[:, :d].sub_(shift[:d])
                Z[:, d + 1 :].sub_(shift[d:])
                Z[:, d] = 1.0
                c = weights_of(ix)
                ZS = Z if c is None else Z * c.to(Z.dtype)[:, None]
                acc += (ZS.T @ Z).to(_F64)
            sums.append(acc)
            members.append(member)
        sums = torch.stack(sums)  # (groups, D, D)
        member = torch.stack(members).to(_F64)  # (groups, folds)

        def moments(weights):  # (groups, sets) -> the sets' moments
            return Moments.from_sums(
                torch.einsum("gf,gde->fde", weights, sums), mu, nu, d
            )

        out = FoldMoments(moments(member))
        if codes is not None and bool((codes != 0).all()):
            out.total = moments(torch.ones_like(member[:, :1]))
        if (
            codes is not None
            and tests is not None
            and tests_are_complements(codes, tests)
        ):
            out.test = moments(1.0 - member)
        return out


class _SplitPieces:
    """Batches computed in pieces of at most ``piece_rows`` rows."""

    def _pieces(self, idx):
        if isinstance(idx, slice):
            start = idx.start or 0
            return [
                slice(start + sl.start, start + sl.stop)
                for sl in gen_batches(idx.stop - start, self.piece_rows)
            ]
        rows = self._index(idx)
        if rows.shape[0] <= self.piece_rows:
            return [idx]
        return list(rows.split(self.piece_rows))


class ColumnDirectOracle(_ColumnRows, _SplitPieces, DirectOracle):
    """Column data term over a dense ``X`` tensor."""


class ColumnSparseOracle(_ColumnRows, _SplitPieces, SparseOracle):
    """Column data term over a scipy.sparse ``X``, kept as CSR on the device."""

    _dense = False

    def row_sq_norms(self):
        Xs = self.Xs
        norms = np.asarray(Xs.multiply(Xs).sum(1), dtype=np.float64).ravel()
        return torch.from_numpy(norms)

    def feature_moments(self, weights):
        # sparse features are rarely offset: E[x^2] - E[x]^2 directly
        Xs = self.Xs
        w = weights.cpu().numpy()
        total = w.sum()
        mean = np.asarray(Xs.T @ w, dtype=np.float64).ravel() / total
        sq = np.asarray(Xs.multiply(Xs).T @ w, dtype=np.float64).ravel() / total
        return torch.from_numpy(mean), torch.from_numpy(sq - mean * mean)


class ColumnHostOracle(_ColumnRows, HostChunkOracle):
    """Column data term over a host array streamed in chunks of
    ``piece_rows`` rows (the chunk size of its :class:`HostRows`)."""

    def _index_device(self):
        return torch.device("cpu")  # host rows index the host array


class _BoundRows:
    """A row oracle bound to a layout: what the column training loop sees."""

    def __init__(self, oracle, layout: Layout):
        self.oracle, self.layout = oracle, layout

    def batches(self):
        return self.oracle.batches()

    def batch_threads(self):
        """Torch's threads as they are: a batch's work is every column's."""
        return contextlib.nullcontext()

    def full_batch(self):
        return self.oracle.full_batch()

    def loss_grad(self, theta, idx, need_grad=True):
        return self.oracle.column_loss_grad(theta, idx, self.layout, need_grad)

    def zero_model_loss(self) -> torch.Tensor:
        return self.oracle.column_zero_loss(self.layout)
