"""Cross-validation benchmark: TorchSGDRegressorCV against the searches it
replaces, side by side on the same data, grid, splits and thread count.

For each penalty (l2, l1, elasticnet with l1_ratio=0.5), on a 1e5 x 100
float32 regression (``_data.make_design``), 5 folds x 20 alphas:

* ours: ``TorchSGDRegressorCV(penalty=..., alphas=20, cv=splits)`` (its own
  LassoCV-style grid), on ``--device``;
* ``GridSearchCV(TorchSGDRegressor(penalty=...), {"alpha": grid}, cv=splits,
  n_jobs=2)``: the search it replaces, on the CPU (its worker processes are
  started before the timing);
* scikit-learn's own: ``RidgeCV`` (alphas times n_train, every split training
  on 80000 rows), ``LassoCV`` and ``ElasticNetCV`` on the same grid.

Every fit is timed whole (grid, search, refit), best of ``--repeat`` for the
fast ones; each row also says whether the contestant chose our alpha and, for
GridSearchCV, how far its mean test R^2 is from ours. Ratios are measured in
the same run. Each thread count of ``--threads`` (default 2, then 1: load on
the machine distorts the one-thread column far less) is a fresh process.
Writes ``CV.md`` (``CV_quick.md`` with ``--quick``) to ``--out`` (default
benchmarks/results), with the load average at the start of each run.

    python benchmarks/cv.py [--quick] [--device cpu|cuda|auto] [--threads 2 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _setup  # noqa: E402,F401  (threads and import path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _data import make_design  # noqa: E402
from _quiet import wait_until_quiet  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import ElasticNetCV, LassoCV, RidgeCV  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from sklearn_gd import TorchSGDRegressor, TorchSGDRegressorCV  # noqa: E402

N_SPLITS, N_ALPHAS, N_JOBS = 5, 20, 2
PENALTIES = [("l2", 0.15), ("l1", 1.0), ("elasticnet", 0.5)]


def timed(make, repeat):
    """(best seconds, fitted estimator) over ``repeat`` fits of ``make()``."""
    best, fitted = np.inf, None
    for _ in range(repeat):
        est = make()
        t0 = time.perf_counter()
        est.fit_it()
        best = min(best, time.perf_counter() - t0)
        fitted = est.model
    return best, fitted


class Fit:
    """A model and the data it is fitted on (``fit_it`` is what is timed)."""

    def __init__(self, model, X, y):
        self.model, self.X, self.y = model, X, y

    def fit_it(self):
        self.model.fit(self.X, self.y)


def sync(device):
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def contestants(penalty, l1_ratio, grid, splits, n_train):
    """(name, make model) of the peers on our grid."""
    base = TorchSGDRegressor(penalty=penalty, l1_ratio=l1_ratio)
    out = [
        (
            f"GridSearchCV(TorchSGDRegressor), n_jobs={N_JOBS}",
            lambda: GridSearchCV(base, {"alpha": list(grid)}, cv=splits, n_jobs=N_JOBS),
        )
    ]
    if penalty == "l2":
        # Ridge minimises n * (our objective) * 2: its alpha is ours * n_train
        out.append(("RidgeCV", lambda: RidgeCV(alphas=grid * n_train, cv=splits)))
    elif penalty == "l1":
        out.append(("LassoCV", lambda: LassoCV(alphas=grid, cv=splits)))
    else:
        out.append(
            (
                "ElasticNetCV",
                lambda: ElasticNetCV(alphas=grid, l1_ratio=l1_ratio, cv=splits),
            )
        )
    return out


def chosen_alpha(name, model, n_train):
    if name.startswith("GridSearchCV"):
        return model.best_params_["alpha"]
    if name == "RidgeCV":
        return model.alpha_ / n_train
    return model.alpha_


def run(args):
    """Every contestant at this process's thread count; returns the rows."""
    n, d = (20_000, 50) if args.quick else (100_000, 100)
    X, y, _ = make_design(n, d, seed=0)
    X, y = X.astype(np.float32), y.astype(np.float32)
    splits = list(KFold(N_SPLITS, shuffle=True, random_state=0).split(X))
    n_train = len(splits[0][0])
    warnings.simplefilter("ignore", ConvergenceWarning)
    # start GridSearchCV's worker processes before any timing
    GridSearchCV(TorchSGDRegressor(), {"alpha": [1.0, 0.1]}, cv=2, n_jobs=N_JOBS).fit(
        X[:1000], y[:1000]
    )
    rows = []
    for penalty, l1_ratio in PENALTIES:

        def ours_model():
            return TorchSGDRegressorCV(
                penalty=penalty,
                l1_ratio=l1_ratio,
                alphas=N_ALPHAS,
                cv=splits,
                device=args.device,
            )

        timed(lambda: Fit(ours_model(), X, y), 1)  # warm-up (CUDA context, ...)
        t_ours, ours = timed(lambda: Fit(ours_model(), X, y), args.repeat)
        sync(args.device)
        grid = ours.alphas_
        print(f"{penalty}: ours {t_ours:.3f} s (alpha_={ours.alpha_:.4g})", flush=True)
        rows.append(
            dict(
                penalty=penalty,
                name=f"TorchSGDRegressorCV ({args.device})",
                time=t_ours,
                alpha=ours.alpha_,
                same="-",
                delta="-",
                ratio=1.0,
            )
        )
        for name, make in contestants(penalty, l1_ratio, grid, splits, n_train):
            repeat = 1 if name.startswith("GridSearchCV") else args.repeat
            t, model = timed(lambda make=make: Fit(make(), X, y), repeat)
            alpha = chosen_alpha(name, model, n_train)
            same = "yes" if np.isclose(alpha, ours.alpha_, rtol=1e-6) else "no"
            if same == "no":  # how much worse their choice is on our curve
                at = np.flatnonzero(np.isclose(grid, alpha, rtol=1e-6))
                if at.size:
                    lost = ours.best_score_ - ours.cv_results_["mean_test_score"][at[0]]
                    same = f"no (R^2 {lost:.1e} below ours)"
            delta = "-"
            if name.startswith("GridSearchCV"):
                diff = np.abs(
                    model.cv_results_["mean_test_score"]
                    - ours.cv_results_["mean_test_score"]
                )
                delta = f"{diff.max():.1e}"
            print(f"  {name}: {t:.3f} s, alpha {alpha:.4g} (same: {same})", flush=True)
            rows.append(
                dict(
                    penalty=penalty,
                    name=name,
                    time=t,
                    alpha=float(alpha),
                    same=same,
                    delta=delta,
                    ratio=t / t_ours,
                )
            )
    return dict(rows=rows, n=n, d=d, threads=_setup.N_THREADS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2e4 x 50: a smoke test")
    ap.add_argument("--device", default="cpu", help="where ours trains")
    ap.add_argument("--repeat", type=int, default=3, help="best of, for fast fits")
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[2, 1],
        help="a run per thread count (each in a fresh process)",
    )
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--child", help=argparse.SUPPRESS)  # JSON path: one run
    args = ap.parse_args()
    if args.child:
        Path(args.child).write_text(json.dumps(run(args)))
        return
    runs = []
    for threads in args.threads:
        busy = wait_until_quiet(print)
        load = os.getloadavg()
        print(f"-- {threads} thread(s), load average {load[0]:.2f}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            argv = [a for a in sys.argv[1:]]
            env = dict(os.environ, SKLEARN_GD_BENCH_THREADS=str(threads))
            subprocess.run(
                [sys.executable, __file__, *argv, "--child", str(out)],
                env=env,
                check=True,
            )
            result = json.loads(out.read_text())
        result["load"] = load
        result["load_end"] = os.getloadavg()
        result["busy"] = busy
        runs.append(result)
    write(args, runs)


def _cores(busy) -> str:
    return "unknown cores" if busy is None else f"{busy:.2f} cores"


def write(args, runs):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = args.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name()})"
    n, d = runs[0]["n"], runs[0]["d"]
    loads = "; ".join(
        f"{r['threads']} thread(s): {r['load'][0]:.2f} / {r['load'][1]:.2f} / "
        f"{r['load'][2]:.2f} at the start, {r['load_end'][0]:.2f} (1 min) at "
        f"the end, {_cores(r['busy'])} busy with other processes before it"
        for r in runs
    )
    flags = (" --quick" if args.quick else "") + (
        "" if args.device == "cpu" else f" --device {args.device}"
    )
    lines = [
        "# Cross-validation benchmark",
        "",
        f"Command: `python benchmarks/cv.py{flags}`. {n} x {d} float32 "
        f"regression, {N_SPLITS} folds x {N_ALPHAS} alphas (ours: its "
        "LassoCV-style grid, which every peer is given), ours on "
        f"{device}. Each thread count is a fresh process with that many "
        f"threads in torch and BLAS (GridSearchCV: {N_JOBS} worker processes "
        f"in both). Best of {args.repeat} fits for all but GridSearchCV (one "
        f"fit). Machine: {platform.machine()}, {os.cpu_count()} cores; each "
        "run waited (up to 2 min) for the other processes to use under 0.3 "
        f"cores; load average (1 / 5 / 15 min) of each run: {loads}.",
        "",
        "Each fit is whole (grid, search over every alpha x fold, refit of the "
        "best). 'Same alpha': the contestant chose ours (where not, how far "
        "below our best its choice's mean R^2 is on our curve: a near tie "
        "on a flat curve); 'max |d R^2|': the "
        "largest difference between GridSearchCV's and our mean test R^2 "
        "over the grid. 'This / ours' > 1: ours is faster, measured in the same "
        "run.",
        "",
    ]
    head = "| penalty | contestant |"
    rule = "| --- | --- |"
    for r in runs:
        head += f" fit (s), {r['threads']} thr. | this / ours, {r['threads']} thr. |"
        rule += " --- | --- |"
    head += " alpha chosen | same alpha | max \\|d R^2\\| |"
    rule += " --- | --- | --- |"
    lines += [head, rule]
    for i, row in enumerate(runs[0]["rows"]):
        line = f"| {row['penalty']} | {row['name']} |"
        for r in runs:
            other = r["rows"][i]
            line += f" {other['time']:.3f} | {other['ratio']:.1f} |"
        line += f" {row['alpha']:.4g} | {row['same']} | {row['delta']} |"
        lines.append(line)
    bar = 50 if args.device.startswith("cuda") else 10
    lines += [
        "",
        "| target | " + " | ".join(f"{r['threads']} thr." for r in runs) + " |",
        "| --- |" + " --- |" * len(runs),
    ]
    for i, row in enumerate(runs[0]["rows"]):
        if row["ratio"] == 1.0 and row["name"].startswith("TorchSGD"):
            continue
        if row["name"].startswith("GridSearchCV"):
            goal = f"{row['penalty']}: >= {bar}x faster than {row['name']} (CPU)"
            met = [r["rows"][i]["ratio"] >= bar for r in runs]
        else:
            goal = f"{row['penalty']}: faster than {row['name']}"
            met = [r["rows"][i]["ratio"] > 1 for r in runs]
        cells = [
            f"{r['rows'][i]['ratio']:.1f}x {'met' if ok else 'NOT met'}"
            for r, ok in zip(runs, met)
        ]
        lines.append(f"| {goal} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    name = "CV.md" if not args.quick else "CV_quick.md"
    (out / name).write_text(text)
    print(text)
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
