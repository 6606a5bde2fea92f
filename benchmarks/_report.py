"""Writing a benchmark's Markdown report to benchmarks/results."""

from __future__ import annotations

import os
from pathlib import Path


def target_row(label: str, two: float, one: float, limit: float) -> str:
    """A target table's row: the ratios at 2 threads and at 1, and the
    verdict, judged at 2 threads."""
    verdict = "met" if two <= limit else "NOT met"
    return f"| {label} | {two:.2f} | {one:.2f} | {verdict} |"


def write_report(lines: list[str], filename: str) -> None:
    """Write ``lines`` to benchmarks/results/``filename`` (and print them),
    with the load average at the end in place of LOAD_END."""
    text = "\n".join(lines) + "\n"
    text = text.replace("LOAD_END", f"{os.getloadavg()[0]:.2f}")
    (Path(__file__).parent / "results" / filename).write_text(text)
    print(text)


def quiet_start() -> str:
    """Wait for a quiet machine (see _quiet.py); the report's sentence on
    the load, its end left as LOAD_END for :func:`write_report`."""
    from _quiet import wait_until_quiet

    busy = wait_until_quiet(print)
    used = "?" if busy is None else f"{busy:.2f}"
    return (
        f"Load average {os.getloadavg()[0]:.2f} at the start (other processes "
        f"used {used} cores just before), LOAD_END at the end; "
        f"{os.cpu_count()} cores."
    )
