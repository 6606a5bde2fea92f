"""
Training beyond memory: memmaps and Dask
========================================

The same regression is trained three ways on the same data: from a numpy
memmap on disk (``out_of_core="auto"`` streams it in chunks of 16384 rows,
never copying it whole), from the same array in memory, and
with dask-ml's ``Incremental`` on a ``dask.distributed`` cluster of two worker
processes (one ``partial_fit`` epoch per block). Each prints its throughput
in rows per second and the final R^2; the memmap fit also prints the memory
it took beyond the file's pages, against the documented bound. The Dask part
is skipped when the ``dask`` extra (``pip install sklearn-gd[dask]``) is
absent.

Set ``SKLEARN_GD_FAST=1`` for a small, quick run.
"""

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import r2_score

from sklearn_gd import TorchSGDRegressor

FAST = os.environ.get("SKLEARN_GD_FAST") == "1"
N_ROWS = 200_000 if FAST else 2_000_000
N_FEATURES = 50
CHUNK_ROWS = 16384  # rows per chunk of a streamed fit
# memory a streamed fit may take beyond the pages of X (the estimator's
# documented bound): four chunks, and about 60 bytes per sample for y, the
# weights and the shuffling order
BOUND = 4 * CHUNK_ROWS * N_FEATURES * 4 + 60 * N_ROWS
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


def memory_mib(field):
    """A line of /proc/self/status in MiB (Linux; nan elsewhere): RssAnon is
    the process's own memory, without the file pages it maps (X's)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class PeakMemory:
    """The largest RssAnon seen while the block runs, sampled every 2 ms."""

    def __enter__(self):
        self.start = self.peak = memory_mib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, memory_mib("RssAnon"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, memory_mib("RssAnon"))


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

    # Evaluate on the first rows (a copy small enough for memory).
    X_eval, y_eval = np.array(X_mm[:100_000]), y[:100_000]

    # -- 1. the memmap, streamed (before anything loads X whole into memory)
    t = time.perf_counter()
    with PeakMemory() as mem:
        streamed = TorchSGDRegressor(max_iter=EPOCHS, tol=None, **PARAMS).fit(X_mm, y)
    seconds = time.perf_counter() - t
    report("memmap", N_ROWS * EPOCHS, seconds, streamed, X_eval, y_eval)
    print(
        f"           its own memory grew by at most {mem.peak - mem.start:.0f} MiB, "
        f"within the bound of {BOUND / 2**20:.0f} MiB;\n           X itself "
        f"({size_mib:.0f} MiB) was read through the page cache (file pages the "
        "kernel can evict), never copied"
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
