"""TorchSGDRegressor on a real dask.distributed cluster (the ``dask`` extra).

A LocalCluster of two worker processes: the estimator is pickled to the
workers between blocks (dask-ml's Incremental) and between folds (the joblib
dask backend), so these tests also check that it travels without tensors.
"""

import numpy as np
import pytest

pytest.importorskip("dask_ml")
pytest.importorskip("distributed")

# a cluster of worker processes: run by .ci/run and `pytest -m slow`
pytestmark = pytest.mark.slow

import dask.array as da  # noqa: E402
import joblib  # noqa: E402
from dask_ml.wrappers import Incremental  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from sklearn_gd import TorchSGDRegressor  # noqa: E402


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        # a busy machine can leave the workers unstarted when the first
        # computation is sent, which then waits on them for ever: fail
        # instead, with the reason
        client.wait_for_workers(2, timeout=120)
        yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(4000, 8).astype(np.float32)
    y = (X @ rng.randn(8) + 1.0 + 0.1 * rng.randn(4000)).astype(np.float32)
    return X, y


def test_incremental_matches_in_memory(client, data):
    X, y = data
    Xd, yd = da.from_array(X, chunks=(500, 8)), da.from_array(y, chunks=500)
    est = TorchSGDRegressor(
        batch_size=32, learning_rate="invscaling", eta0=0.05, random_state=0
    )
    inc = Incremental(est, shuffle_blocks=True, random_state=0)
    for _ in range(3):  # three passes over the blocks, each block one epoch
        inc.partial_fit(Xd, yd)
    fitted = inc.estimator_
    assert fitted.coef_.dtype == np.float32
    assert fitted.t_ == 1 + 3 * 8 * 16  # 3 passes x 8 blocks x 16 batches
    r2_dask = r2_score(y, fitted.predict(X))
    r2_mem = r2_score(y, TorchSGDRegressor().fit(X, y).predict(X))
    assert r2_mem > 0.99
    assert abs(r2_dask - r2_mem) < 1e-3, (r2_dask, r2_mem)
    # predicting through the wrapper maps over the blocks on the workers
    assert_allclose(inc.predict(Xd).compute(), fitted.predict(X), rtol=1e-6)


def test_grid_search_on_dask_backend(client, data):
    X, y = data
    grid = {"alpha": [1e-4, 1e-1], "batch_size": [None, 256]}
    est = TorchSGDRegressor(max_iter=30, tol=None, random_state=0)
    with joblib.parallel_backend("dask"):
        search = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X, y)
    local = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
    assert search.best_params_ == local.best_params_
    # the same fits on other processes: the same CPU arithmetic
    assert_allclose(
        search.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
