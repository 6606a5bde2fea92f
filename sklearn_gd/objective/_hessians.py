"""The data term's Hessians from rows of the design ``A = [X, 1]``: ``A'
diag(c_j) A`` for every output, and the softmax's joint blocks."""

from __future__ import annotations

import torch

__all__ = ["add_hessian", "add_joint_hessian", "grams"]


def grams(A, W) -> torch.Tensor:
    """``A' diag(w_j) A`` for every column ``w_j`` of ``W`` (m, p): shape
    (p, q, q), from one product ``A' [A w_1, ..., A w_p]``."""
    (m, q), p = A.shape, W.shape[1]
    if p == 1:  # the fewest operations
        return (A.T @ (A * W))[None]
    AW = (A[:, None, :] * W[:, :, None]).reshape(m, p * q)
    return (A.T @ AW).view(q, p, q).transpose(0, 1)


def add_hessian(H, A, C, chunk_rows: int):
    """``H`` plus the chunk's ``A' diag(c_j) A`` for every output ``j``,
    in groups of outputs whose scaled copies of ``A`` fit in a chunk of
    ``chunk_rows`` rows."""
    (m, q), k = A.shape, C.shape[1]
    group = max(1, min(k, chunk_rows // m))
    for j in range(0, k, group):
        part = grams(A, C[:, j : j + group]).to(torch.float64)
        if H is None and part.shape[0] == k:
            H = part
        else:
            if H is None:
                H = torch.zeros(k, q, q, dtype=torch.float64, device=A.device)
            H[j : j + part.shape[0]] += part
    return H


def add_joint_hessian(H, A, S, s, blocks_below: float):
    """``H`` plus the chunk's ``sum_i s_i (diag(S_i) - S_i S_i') (x) A_i
    A_i'`` (the softmax's row Hessian, ``S_i`` the row's probabilities,
    ``s_i`` its weight), class-major.

    Block ``(a, b)`` is ``A' diag(w_ab) A`` with ``w_ab = s S_a (delta_ab
    - S_b)``: symmetric in ``a, b``, and each block row sums to zero (the
    probabilities sum to one). Where large, one product computes the
    blocks of the first ``k - 1`` classes with ``a <= b``, ``(k - 1) k /
    2 n q^2`` operations where all ``k^2`` blocks take ``2 k^2 n q^2``;
    the last class's blocks are the negated sums. Below ``blocks_below``
    entries times rows, every block comes from one product instead."""
    (m, q), k = A.shape, S.shape[1]
    if m * (k * q) ** 2 <= blocks_below:
        # small: every block from one product, in fewer operations
        W = S[:, :, None] * (torch.eye(k, dtype=S.dtype, device=S.device) - S[:, None])
        W = W.reshape(m, k * k) if s is None else W.reshape(m, k * k) * s
        B = grams(A, W).view(k, k, q, q)
    else:
        a, b = torch.triu_indices(k - 1, k - 1, device=A.device)
        W = S[:, a] * ((a == b).to(S.dtype) - S[:, b])
        G = grams(A, W if s is None else W * s)
        B = A.new_zeros(k, k, q, q)
        B[a, b] = G
        B[b, a] = G
        B[: k - 1, k - 1] = B[: k - 1, : k - 1].sum(1).neg_()
        B[k - 1, : k - 1] = B[: k - 1, k - 1]
        B[k - 1, k - 1] = B[k - 1, : k - 1].sum(0).neg_()
    part = B.transpose(1, 2).reshape(1, k * q, k * q).to(torch.float64)
    return part if H is None else H.add_(part)
