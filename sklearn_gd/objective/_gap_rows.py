"""The certificates' passes over an oracle's rows, in float64 a block at a
time: predictions, correlations ``X' v``, products ``X~ z``, weighted Gram
matrices and gathered entries."""

from __future__ import annotations

import numpy as np
import torch

# rows of a float32 X converted to float64 at a time: a block small enough
# to stay in the cache for the product that reads it (X of 160000 x 100,
# its predictions then X' v, two threads: 61 ms in blocks of 65536 rows,
# 16 ms in blocks of 4096)
BLOCK_ROWS = 1 << 12


def float64_blocks(oracle, pieces):
    """``(start, X, X')`` over X's rows in order, in float64 a block at a
    time: the certificate's sums must not round at the data's precision
    (float32's rounds the gap of a near-exact fit, 1e-4 of an objective
    of 1e-4 of the targets' scale, to 0, and certified a 48% gap)."""
    start = 0
    for j, piece in enumerate(pieces):
        Xb, XbT = oracle.rows_of(piece)
        if Xb.dtype == torch.float64:
            yield start, Xb, XbT
        elif Xb.layout == torch.strided:
            for lo in range(0, Xb.shape[0], BLOCK_ROWS):
                block = Xb[lo : lo + BLOCK_ROWS].double()
                yield start + lo, block, block.T
        else:
            block = Xb.to(torch.float64)
            yield start, block, block.t()
        start += Xb.shape[0]
        oracle.rows_read(pieces, j)


def predictions(oracle, pieces, theta, d):
    """Every row's predictions (float64), one block of X at a time."""
    theta = theta.double()
    Ps = [Xb @ theta[:d] for _, Xb, _ in float64_blocks(oracle, pieces)]
    P = torch.cat(Ps)
    return P + theta[d] if oracle.fit_intercept else P


def correlations(oracle, pieces, sb: torch.Tensor) -> torch.Tensor:
    """``X' sb`` (shape (d, n_outputs)), one block of X at a time."""
    out = None
    for start, _, XbT in float64_blocks(oracle, pieces):
        part = XbT @ sb[start : start + XbT.shape[1]]
        out = part if out is None else out + part
    return out


def weighted_grams(oracle, pieces, weights: torch.Tensor) -> np.ndarray:
    """``X~' diag(w) X~`` (float64 host) for each column ``w`` of
    ``weights`` (rows by columns; shape (columns, q, q)), ``X~`` X with a
    column of ones when the model has an intercept: one pass over X."""
    out = 0.0
    for start, Xb, _ in float64_blocks(oracle, pieces):
        Xb = Xb if Xb.layout == torch.strided else Xb.to_dense()
        if oracle.fit_intercept:
            Xb = torch.cat([Xb, torch.ones_like(Xb[:, :1])], 1)
        w = weights[start : start + Xb.shape[0]].double()
        grams = [Xb.T @ (w[:, c, None] * Xb) for c in range(w.shape[1])]
        out = out + torch.stack(grams).cpu().numpy()
    return out


def correlations_rows(oracle, pieces, Z):
    """``X~ Z`` row by row (``Z`` of shape (d [+ 1], n_outputs))."""
    d = oracle.X.shape[1]
    parts = [Xb @ Z[:d] for _, Xb, _ in float64_blocks(oracle, pieces)]
    out = torch.cat(parts)
    return out + Z[d:] if oracle.fit_intercept else out


def gather_rows(at, rows, cols):
    """``X~[rows][:, cols]`` (``rows`` sorted positions, ``cols`` sorted,
    ``d`` the intercept's column of ones) as a float64 host array, one
    block of X at a time."""
    d, out = at.d, []
    features = cols[cols < d]
    for start, Xb, _ in float64_blocks(at.oracle, at.pieces):
        lo, hi = np.searchsorted(rows, [start, start + Xb.shape[0]])
        if hi == lo:
            continue
        local = torch.as_tensor(rows[lo:hi] - start, device=Xb.device)
        pick = torch.as_tensor(features, device=Xb.device)
        if Xb.layout == torch.strided:
            sub = Xb[local][:, pick]
        else:  # sparse: its columns by a product with a selection
            E = torch.zeros(d, len(features), dtype=Xb.dtype, device=Xb.device)
            E[pick, torch.arange(len(features), device=Xb.device)] = 1.0
            sub = (Xb @ E)[local]
        out.append(sub.cpu().numpy())
    X = np.concatenate(out) if out else np.zeros((0, len(features)))
    return np.hstack([X, np.ones((len(rows), len(cols) - len(features)))])
