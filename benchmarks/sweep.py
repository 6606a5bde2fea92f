"""Run the sweep of default fits over any seed range and print its counts.

    python benchmarks/sweep.py [START] [STOP] [--json FILE] [--no-determinism]

Seeds ``START .. STOP - 1`` (default: the default suite's ``0 .. 127``) are
drawn by ``tests/_sweep.py``'s generator, fitted with the default estimator,
and compared with its float64 references. Prints one line per failing case,
then the counts: cases, ok (gap <= 1e-4), warned (gap > 1e-4 with a
ConvergenceWarning), failed, crashes, the worst float32 gap, the worst
reference certificate and the time. ``--json`` writes every case's result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from _sweep import COMBOS, failures, run_case, summarize  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start", type=int, nargs="?", default=0)
    parser.add_argument("stop", type=int, nargs="?", default=len(COMBOS))
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument(
        "--no-determinism", action="store_true", help="skip the second fit"
    )
    args = parser.parse_args(argv)
    results = []
    t0 = time.perf_counter()
    for seed in range(args.start, args.stop):
        res = run_case(seed, determinism=0.0 if args.no_determinism else np.inf)
        results.append(res)
        problems = failures(res)
        if problems:
            print(f"FAIL {res.case}: {'; '.join(problems)}", flush=True)
    counts = summarize(results)
    counts["wall_seconds"] = time.perf_counter() - t0
    print(f"seeds {args.start}..{args.stop - 1}")
    for key, value in counts.items():
        print(
            f"{key:>24}: {value:.3g}"
            if isinstance(value, float)
            else f"{key:>24}: {value}"
        )
    if args.json:
        rows = []
        for res in results:
            row = asdict(res)
            row["failures"] = failures(res)
            row["n_iter"] = (
                np.ravel(res.n_iter).tolist() if res.n_iter is not None else None
            )
            rows.append(row)
        args.json.write_text(json.dumps(rows, default=float, indent=1))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
