"""Waiting for a quiet machine before timing anything.

OpenBLAS's threads slow 50-90x when another process shares the cores, which
would flatter us falsely: the benchmarks wait until the other processes use
under ``limit`` cores, and record what they saw.
"""

import os
import time


def other_cpu(seconds=1.0):
    """Cores busy with other processes (this one sleeps meanwhile), from
    /proc/stat; None where it cannot be read."""

    def busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4], sum(v)  # not idle, not iowait; total

    try:
        b0, t0 = busy()
        time.sleep(seconds)
        b1, t1 = busy()
    except (OSError, ValueError, IndexError):
        return None
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def wait_until_quiet(log, limit=0.3, patience=120.0):
    """Wait (up to ``patience`` s) until other processes use under ``limit``
    cores: OpenBLAS's threads slow 50-90x when they share the cores, which
    would flatter us falsely. Returns the cores in use when timing starts."""
    start = time.perf_counter()
    used = other_cpu()
    while used is not None and used > limit and time.perf_counter() - start < patience:
        log(f"  machine busy ({used:.2f} cores used by other processes): waiting")
        time.sleep(4.0)
        used = other_cpu()
    if used is not None and used > limit:
        log(f"  still busy ({used:.2f} cores): this workload's rows are marked")
    return used
