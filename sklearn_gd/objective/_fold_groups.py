"""Which rows' moments a pass over ``X`` sums together: rows grouped by the
set of folds they train in, and whether each fold's held-out rows are the
rows it does not train on."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["row_groups", "tests_are_complements"]


def tests_are_complements(codes, tests) -> bool:
    """Whether each fold's held-out rows are exactly the rows it does not
    train on (rows carry the bits of the folds they train in)."""
    for f, test in enumerate(tests):
        rows = np.flatnonzero((codes >> f) & 1 == 0)
        if not np.array_equal(rows, np.sort(np.asarray(test))):
            return False
    return True


def row_groups(Wf: torch.Tensor):
    """The groups of rows whose moments are accumulated together, and each
    row's pattern code (the bits of the folds it trains in; None when the
    groups are the folds themselves).

    A group is ``(rows, weights_of(index), member)``: sorted host indices,
    the rows' weights (None: all ones) and the folds (a bool tensor) its
    moments belong to.
    """
    F = Wf.shape[1]
    mask = Wf > 0
    c = Wf.amax(1)
    if F < 63 and bool((Wf == c[:, None] * mask).all()):
        bits = 2 ** torch.arange(F, device=Wf.device)
        codes = (mask.long() * bits).sum(1).cpu().numpy()
        patterns, inverse = np.unique(codes, return_inverse=True)
        if patterns.shape[0] <= F + 1:
            unweighted = bool((c[mask.any(1)] == 1).all())

            def weights_of(ix):
                return None if unweighted else c[ix]

            fold_bits = 2 ** np.arange(F)
            groups = [
                (
                    np.flatnonzero(inverse == p),
                    weights_of,
                    torch.as_tensor((code & fold_bits) > 0, device=Wf.device),
                )
                for p, code in enumerate(patterns)
                if code  # rows no fold trains on stay out
            ]
            return groups, codes
    eye = torch.eye(F, dtype=torch.bool, device=Wf.device)
    host_mask = mask.cpu().numpy()
    groups = [
        (np.flatnonzero(host_mask[:, f]), (lambda ix, f=f: Wf[ix, f]), eye[f])
        for f in range(F)
    ]
    return groups, None
