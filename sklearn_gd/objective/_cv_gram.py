"""The column data term of the full-batch squared loss from every fold's
moments (:class:`ColumnGramOracle`): no pass over ``X`` after they are
built."""

from __future__ import annotations

import contextlib

import torch

from ._cv_oracles import FoldMoments, Layout

__all__ = ["ColumnGramOracle"]

_F64 = torch.float64


class ColumnGramOracle:
    """The full-batch squared loss of every column from its fold's moments.

    ``values = 1/2 yy - C' theta + 1/2 theta' A theta`` and gradient
    ``A theta - C``, per column with its fold's ``A``, ``C`` and ``yy``
    (:class:`~sklearn_gd.objective._gram.GramOracle`, one fold at a time). When
    every fold has the same number of units, laid out fold by fold, all
    folds are one batched product.
    """

    n_batches = 1

    def __init__(self, moments: FoldMoments, fit_intercept, out_dtype: torch.dtype):
        self.moments = moments
        self.A, self.C, self.yy = moments.train.gram(fit_intercept)
        self.out_dtype = out_dtype

    def batches(self):
        yield None

    def full_batch(self):
        return None

    def bind(self, layout: Layout):
        return _BoundGram(self, layout)

    def fold_curvature(self, max_row=False):
        lam = torch.linalg.eigvalsh(self.A)[:, -1]
        return lam.cpu().numpy(), None


class _BoundGram:
    """:class:`ColumnGramOracle` for one layout: each fold's ``C`` and
    ``yy`` repeated over its units once, and the folds stacked for one
    batched product when they are regular."""

    def __init__(self, gram: ColumnGramOracle, layout: Layout):
        self.gram, self.layout = gram, layout
        folds = [f for f, _, _ in layout.by_fold]
        sizes = {units.shape[0] for _, _, units in layout.by_fold}
        regular = len(sizes) == 1 and all(
            isinstance(cols, slice) for _, cols, _ in layout.by_fold
        )
        regular = regular and [c.start for _, c, _ in layout.by_fold] == sorted(
            c.start for _, c, _ in layout.by_fold
        )
        self.stacked = regular
        if regular:
            m = sizes.pop()
            self.A = gram.A[folds]  # (F', d + fi, d + fi)
            self.C = gram.C[folds].repeat(1, 1, m)  # (F', d + fi, m k)
            self.yy = gram.yy[folds].repeat(1, m)  # (F', m k)
        else:
            self.parts = [
                (
                    f,
                    cols,
                    gram.C[f].repeat(1, units.shape[0]),
                    gram.yy[f].repeat(units.shape[0]),
                )
                for f, cols, units in layout.by_fold
            ]

    def batches(self):
        return self.gram.batches()

    def batch_threads(self):
        """Torch's threads as they are: a batch's work is every column's."""
        return contextlib.nullcontext()

    def full_batch(self):
        return None

    def loss_grad(self, theta, idx=None, need_grad=True):
        th = theta.to(_F64)
        if self.stacked:
            F = self.A.shape[0]
            t = th.reshape(th.shape[0], F, -1).transpose(0, 1)  # (F', d+fi, mk)
            At = torch.bmm(self.A, t)
            values = 0.5 * self.yy - (self.C * t).sum(1) + 0.5 * (t * At).sum(1)
            values = values.reshape(-1)
            grad = (
                (At - self.C).transpose(0, 1).reshape(th.shape) if need_grad else None
            )
        else:
            values = torch.empty(th.shape[1], dtype=_F64, device=th.device)
            grad = torch.empty_like(th) if need_grad else None
            for f, cols, C, yy in self.parts:
                t = th[:, cols]
                At = self.gram.A[f] @ t
                values[cols] = 0.5 * yy - (C * t).sum(0) + 0.5 * (t * At).sum(0)
                if need_grad:
                    grad[:, cols] = At - C
        weight = torch.ones_like(values)
        return values, weight, (None if grad is None else grad.to(self.gram.out_dtype))

    def zero_model_loss(self) -> torch.Tensor:
        return 0.5 * self.gram.yy[self.layout.unit_fold].reshape(-1)
