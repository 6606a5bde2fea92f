"""The reference pass of ``_fused_pass.c``, built on first use with the
machine's C compiler (``$CC``, else ``cc``), OpenMP and ``-march=native``,
loaded through ctypes. A measurement aid for benchmarks/epochs.py: on a
machine without a compiler :func:`load` gives None and the row is left
out."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("_fused_pass.c")


def _build() -> ctypes.CDLL | None:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    flags = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
    with tempfile.TemporaryDirectory(prefix="sklearn_gd_bench_") as folder:
        lib = Path(folder) / "fused_pass.so"
        done = subprocess.run(
            [cc, *flags, str(SOURCE), "-o", str(lib)], capture_output=True, text=True
        )
        # loaded, the library stays mapped after its file is removed
        return ctypes.CDLL(str(lib)) if done.returncode == 0 else None


def load():
    """``huber_pass(X, y, w, b, epsilon, threads) -> (loss sum, gradient)``
    over float32 C-contiguous numpy arrays (gradient: ``X' f`` then
    ``sum(f)``, ``f`` the loss derivatives), or None without a compiler."""
    lib = _build()
    if lib is None:
        return None
    ptr = ctypes.c_void_p
    fn = lib.huber_pass
    fn.restype = ctypes.c_double
    fn.argtypes = [ptr, ptr, ptr, ctypes.c_float, ctypes.c_long, ctypes.c_long,
                   ctypes.c_float, ptr, ctypes.c_int]

    def huber_pass(X, y, w, b, epsilon, threads):
        X, y, w = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, y, w))
        n, d = X.shape
        grad = np.empty(d + 1, np.float32)
        total = fn(X.ctypes.data, y.ctypes.data, w.ctypes.data, b, n, d,
                   epsilon, grad.ctypes.data, threads)
        if total < 0:
            raise ValueError(f"the reference pass takes at most 1024 features, not {d}")
        return total, grad

    return huber_pass
