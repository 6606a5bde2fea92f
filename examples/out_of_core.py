"""
Training beyond memory: memmaps and Dask
========================================

The same regression is trained three ways on the same data: from an array
in memory, from a numpy memmap on disk bigger than a set memory budget
(``out_of_core="auto"`` streams it in chunks, never copying it whole), and
with dask-ml's ``Incremental`` on a ``dask.distributed`` cluster of two worker
processes (one ``partial_fit`` epoch per block). Each prints its throughput
in rows per second and the final R^2. The Dask part is skipped when the
``dask`` extra (``pip install sklearn-gd[dask]``) is absent.

Set ``SKLEARN_GD_FAST=1`` for a small, quick run.
"""

import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score

from sklearn_gd import TorchSGDRegressor

FAST = os.environ.get("SKLEARN_GD_FAST") == "1"
N_ROWS = 200_000 if FAST else 2_000_000
N_FEATURES = 50
BUDGET = N_ROWS * N_FEATURES * 4 // 2  # the memmap is twice the budget
PARAMS = dict(batch_size=4096, learning_rate="constant", eta0=0.1, random_state=0)
EPOCHS = 2


def load_rows(path, start, stop):
    """Rows start:stop of the memmap file (run on a dask worker)."""
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(N_ROWS, N_FEATURES))
    return np.array(X[start:stop])


def report(name, rows, seconds, model, X_eval, y_eval):
    r2 = r2_score(y_eval, model.predict(X_eval))
    print(f"{name:<10} {rows / seconds:>12,.0f} rows/s   R^2 {r2:.5f}")
    return r2


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    rng = np.random.default_rng(0)
    coef = rng.standard_normal(N_FEATURES).astype(np.float32)

    # -- the data: written to disk block by block, never whole in memory
    folder = Path(os.environ.get("SKLEARN_GD_EXAMPLES_OUT", tempfile.gettempdir()))
    path = folder / "out_of_core_X.f32"
    X_mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(N_ROWS, N_FEATURES))
    y = np.empty(N_ROWS, dtype=np.float32)
    for start in range(0, N_ROWS, 100_000):
        block = rng.standard_normal((min(100_000, N_ROWS - start), N_FEATURES))
        X_mm[start : start + len(block)] = block
        y[start : start + len(block)] = (
            block @ coef + 1.0 + 0.1 * rng.standard_normal(len(block))
        )
    X_mm.flush()
    del X_mm
    X_mm = np.memmap(path, dtype=np.float32, mode="r", shape=(N_ROWS, N_FEATURES))
    size_mib = X_mm.nbytes / 2**20
    print(f"X: {N_ROWS} x {N_FEATURES} float32, {size_mib:.0f} MiB on disk")
    print(f"memory budget for the memmap fit: {BUDGET / 2**20:.0f} MiB")

    # Evaluate on the first rows (a copy small enough for memory).
    X_eval, y_eval = np.array(X_mm[:100_000]), y[:100_000]

    # -- 1. the memmap, streamed (before anything loads X whole into memory)
    rss0 = rss_mib()
    t = time.perf_counter()
    streamed = TorchSGDRegressor(max_iter=EPOCHS, tol=None, **PARAMS).fit(X_mm, y)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report("memmap", N_ROWS * EPOCHS, seconds, streamed, X_eval, y_eval)
    print(
        f"           peak RSS grew by {peak - rss0:.0f} MiB (X is {size_mib:.0f} MiB; "
        "its pages are the kernel's page cache, evictable)"
    )

    # -- 2. the same data in memory
    X_mem = np.array(X_mm)
    t = time.perf_counter()
    in_memory = TorchSGDRegressor(max_iter=EPOCHS, tol=None, **PARAMS).fit(X_mem, y)
    seconds = time.perf_counter() - t
    report("in-memory", N_ROWS * EPOCHS, seconds, in_memory, X_eval, y_eval)
    del X_mem

    # -- 3. Dask: Incremental over the blocks of a dask array, on two workers
    try:
        import dask
        import dask.array as da
        from dask_ml.wrappers import Incremental
        from distributed import Client, LocalCluster
    except ImportError:
        print("dask       skipped: install the extra with pip install sklearn-gd[dask]")
    else:
        with (
            LocalCluster(
                n_workers=2,
                processes=True,
                threads_per_worker=1,
                dashboard_address=None,
            ) as cluster,
            Client(cluster),
        ):
            chunk = N_ROWS // 8
            # each worker reads its blocks from the file: no data in the graph
            blocks = [
                da.from_delayed(
                    dask.delayed(load_rows)(str(path), a, min(a + chunk, N_ROWS)),
                    shape=(min(a + chunk, N_ROWS) - a, N_FEATURES),
                    dtype=np.float32,
                )
                for a in range(0, N_ROWS, chunk)
            ]
            X_da = da.concatenate(blocks)
            y_da = da.from_array(y, chunks=chunk)
            inc = Incremental(TorchSGDRegressor(**PARAMS), random_state=0)
            inc.partial_fit(X_da[:chunk], y_da[:chunk])  # start the workers' torch
            t = time.perf_counter()
            for _ in range(EPOCHS):
                inc.partial_fit(X_da, y_da)
            seconds = time.perf_counter() - t
            report("dask", N_ROWS * EPOCHS, seconds, inc.estimator_, X_eval, y_eval)
        print("(dask: one extra warm-up block before timing)")

    del X_mm
    path.unlink()


# dask's worker processes re-import this script: run only as the main module
if __name__ == "__main__":
    main()
