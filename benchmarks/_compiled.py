"""The package's one-pass kernel (``sklearn_gd/objective/_rowpass.c``) compiled for
this very machine: built on first use with the machine's C compiler
(``$CC``, else ``cc``) and ``-march=native``, and loaded as a module of its
own. A measurement aid for benchmarks/epochs.py, against which the
installed, portable build is timed: on a machine without a compiler (or
Python's headers) :func:`load` gives None and the row is left out."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import numpy as np

from sklearn_gd.model._losses import Huber

SOURCE = Path(__file__).resolve().parents[1] / "sklearn_gd" / "objective" / "_rowpass.c"
FLAGS = [
    "-O3", "-march=native", "-fopenmp-simd", "-fno-trapping-math", "-pthread",
    "-shared", "-fPIC",
]


def _build():
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    include = sysconfig.get_paths()["include"]
    with tempfile.TemporaryDirectory(prefix="sklearn_gd_bench_") as folder:
        lib = Path(folder) / ("_rowpass" + sysconfig.get_config_var("EXT_SUFFIX"))
        done = subprocess.run(
            [cc, *FLAGS, f"-I{include}", str(SOURCE), "-o", str(lib)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        # loaded, the library stays mapped after its file is removed
        spec = importlib.util.spec_from_file_location("_rowpass", lib)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def load():
    """``huber_pass(X, y, w, b, epsilon, threads) -> (loss sum, gradient)``
    over float32 C-contiguous numpy arrays (gradient, float64: ``X' f`` then
    ``sum(f)``, ``f`` the loss derivatives), or None without a compiler."""
    module = _build()
    if module is None:
        return None

    def huber_pass(X, y, w, b, epsilon, threads):
        X, y, w = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, y, w))
        n, d = X.shape
        grad = np.zeros(d + 1)
        total = module.rowpass(
            *Huber(epsilon).row_kernel(), False, X.ctypes.data, n, d, d, 0, 0, n,
            y.ctypes.data, 0, w.ctypes.data, b, 1.0, grad.ctypes.data, threads,
        )
        return total, grad

    return huber_pass


