"""Run several Python scripts in fresh interpreters, as many at a time as
there are cores, each to its end or a wall-clock limit.

Starting them all at once on a small machine oversubscribes its cores: every
interpreter brings torch's and OpenBLAS's thread pools, whose spinning
threads then slow one another many times over. Each script's own CPU time
(user + system, its threads included, from ``os.wait4``) is returned as the
load-independent measure of what it costs; wall time counts whatever else
shares the cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple


class Run(NamedTuple):
    returncode: int  # negative: killed by that signal (the limit, or a crash)
    output: str  # stdout and stderr together
    cpu_seconds: float
    folder: Path


def _run_one(args: list[str], folder: Path, env: dict, timeout: float) -> Run:
    log = folder / "output.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        # wait4 reaps this child alone and returns its own resource usage
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        proc.returncode, log.read_text(), usage.ru_utime + usage.ru_stime, folder
    )


def run_scripts(jobs: dict, env: dict, timeout: float) -> dict:
    """``jobs`` maps a key to (interpreter arguments, working folder, extra
    environment variables); the script's output is logged in its folder.
    Returns key -> :class:`Run`."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {
            key: pool.submit(_run_one, args, folder, {**env, **extra}, timeout)
            for key, (args, folder, extra) in jobs.items()
        }
        return {key: future.result() for key, future in futures.items()}
