"""Thread limits and import path shared by the benchmark's processes.

Every process uses the same number of threads, 2 unless
``SKLEARN_GD_BENCH_THREADS`` says otherwise (run.py's one-thread column sets
1): torch.set_num_threads and threadpoolctl limits for numpy/scipy's BLAS and
OpenMP, so that every contestant gets the same cores.
"""

import importlib.util
import os
import sys

N_THREADS = int(os.environ.get("SKLEARN_GD_BENCH_THREADS", "2"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("sklearn_gd") is None:  # not installed: the checkout
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

torch.set_num_threads(N_THREADS)
_LIMITS = threadpool_limits(N_THREADS)
