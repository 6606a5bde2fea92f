"""The oracles' public interface: Oracle.with_loss gives a copy that shares
the data and answers for another loss, the original left as it was."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sklearn_gd.model._losses import Huber, SquaredError
from sklearn_gd.objective._direct import DirectOracle
from sklearn_gd.objective._sparse import SparseOracle


def _oracle(kind, X, Y, sw, loss):
    kw = dict(batch_size=7, shuffle=True, generator=torch.Generator().manual_seed(0))
    if kind == "sparse":
        Xs = sp.csr_matrix(X.numpy())
        return SparseOracle(
            Xs, Y, sw, loss, device=torch.device("cpu"), dtype=X.dtype, **kw
        )
    return DirectOracle(X, Y, sw, loss, **kw)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_with_loss_shares_the_data_and_keeps_the_original_loss(kind):
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((30, 4)))
    Y = torch.from_numpy(rng.standard_normal((30, 2)))
    sw = torch.from_numpy(rng.uniform(0.5, 2.0, 30))
    squared, huber = SquaredError(), Huber(0.5)
    oracle = _oracle(kind, X, Y, sw, squared)
    twin = oracle.with_loss(huber)
    assert type(twin) is type(oracle) and twin is not oracle
    assert oracle.loss is squared and twin.loss is huber
    # the same tensors, not copies
    assert twin.X is oracle.X and twin.Y is oracle.Y and twin.sw is oracle.sw
    assert twin.epochs is oracle.epochs
    # each answers for its own loss: float64, the same rows and operations
    theta = torch.from_numpy(rng.standard_normal((5, 2)))
    for got, loss in ((twin, huber), (oracle, squared)):
        want = _oracle(kind, X, Y, sw, loss)
        v1, w1, g1 = got.loss_grad(theta, got.full_batch())
        v2, w2, g2 = want.loss_grad(theta, want.full_batch())
        assert torch.equal(v1, v2) and torch.equal(g1, g2)
