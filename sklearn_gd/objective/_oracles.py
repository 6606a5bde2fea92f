"""Which oracle serves a problem (:func:`choose_oracle`), and an overview.

An oracle owns the training data on its device and answers, for a batch,
the weighted mean loss per output and its gradient in ``(coef, intercept)``::

    f_j(W, b) = sum_i s_i L(y_ij, x_i . w_j + b_j) / sum_i s_i

Every oracle keeps one protocol (``Oracle``, in ``_protocol.py``):
``batches`` and ``full_batch`` name the batches of an epoch, ``loss_grad``
answers for one, ``zero_model_loss`` gives the objective's scale, and
``curvature`` describes the second-moment matrix ``X~' S X~ / sum(s)``
(with ``X~ = [X, 1]``) that the automatic step size needs, as a matrix or
as a product.

* :class:`DirectOracle` (``_direct.py``) reads the rows of ``X`` for every
  batch. It serves every loss and every batch size, with closed-form
  gradients (no autograd). A batch is computed in pieces (one piece in
  memory; bounded chunks for an ``X`` streamed from the host, see
  ``_streaming.py``).
* :class:`SparseOracle` (``_sparse.py``) is the same for a scipy.sparse
  ``X``.
* :class:`GramOracle` (``_gram.py``) serves the squared loss on the full
  batch. One pass over ``X`` builds ``A = X~' S X~ / sum(s)`` and ``C =
  X~' S Y / sum(s)``; each later step costs O(d^2 k) and never touches
  ``X`` again, since the gradient is ``A theta - C``.
"""

from __future__ import annotations

import scipy.sparse as sp

from ..model._losses import Loss, SquaredError
from ._direct import DirectOracle
from ._gram import GramOracle
from ._sparse import SparseOracle

__all__ = ["choose_oracle", "prefers_gram"]


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
