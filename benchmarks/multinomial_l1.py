"""Multinomial log_loss with an L1 part: the default TorchSGDClassifier
against LogisticRegression (saga, its only L1 multinomial solver), side by
side on the same data and thread count.

Objective: mean softmax cross-entropy + alpha ||W||_1 (intercepts
unpenalised), float64; LogisticRegression with ``C = 1 / (alpha n)`` and
``l1_ratio=1`` minimises the same. Reports each fit's time (best of 3), its
relative objective gap to the best of saga at ``tol=1e-12`` and every fit
of the run, its steps, and the ratio ours / saga's default. Each thread
count of ``--threads`` (default 2, then 1) limits torch and BLAS alike.
Writes benchmarks/results/MULTINOMIAL_L1.md.

    python benchmarks/multinomial_l1.py [--threads 2 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.special import log_softmax
from sklearn.datasets import load_iris, load_wine, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_gd import TorchSGDClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import quiet_start, write_report  # noqa: E402

ALPHA = 1e-3


def objective(coef, intercept, X, y, classes) -> float:
    Z = X @ coef.T + intercept
    idx = np.searchsorted(classes, y)
    data = -log_softmax(Z, axis=1)[np.arange(len(y)), idx].mean()
    return float(data + ALPHA * np.abs(coef).sum())


def datasets():
    iris, wine = load_iris(), load_wine()
    std = StandardScaler().fit_transform
    yield "iris std 150x4, 3 classes", std(iris.data), iris.target
    yield "wine std 178x13, 3 classes", std(wine.data), wine.target
    yield "wine raw 178x13, 3 classes", wine.data, wine.target
    for n, d, k in [(5000, 30, 4), (20000, 30, 4), (5000, 60, 5)]:
        X, y = make_classification(n, d, n_informative=10, n_classes=k, random_state=0)
        yield f"make_classification {n}x{d}, {k} classes", X, y


def contestants(n):
    C = 1.0 / (ALPHA * n)
    return {
        "ours-default": lambda: TorchSGDClassifier(
            loss="log_loss", penalty="l1", alpha=ALPHA, multi_class="multinomial"
        ),
        "LogisticRegression saga": lambda: LogisticRegression(
            l1_ratio=1.0, C=C, solver="saga", max_iter=1000
        ),
    }


def timed(make, X, y, repeats=3):
    best, warned = np.inf, False
    for _ in range(repeats):
        est = make()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(X, y)
            best = min(best, time.perf_counter() - start)
        warned = warned or any(
            issubclass(w.category, ConvergenceWarning) for w in caught
        )
    return est, best, warned


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args()
    load = quiet_start()
    lines = [
        "# Multinomial log_loss + L1",
        "",
        f"Command: `python benchmarks/multinomial_l1.py`, threads "
        f"{' then '.join(map(str, args.threads))} (torch and BLAS alike), float64, "
        f"alpha={ALPHA}, best of 3 fits. Gap: relative objective gap to the best "
        "of LogisticRegression(saga, tol=1e-12) and every fit of the run. " + load,
        "",
        "| threads | data | contestant | fit (ms) | gap | steps | warned "
        "| ours / this |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            for name, X, y in datasets():
                classes = np.unique(y)
                ref = LogisticRegression(
                    l1_ratio=1.0,
                    C=1.0 / (ALPHA * len(y)),
                    solver="saga",
                    tol=1e-12,
                    max_iter=100000,
                ).fit(X, y)
                f_ref = objective(ref.coef_, ref.intercept_, X, y, classes)
                rows = {}
                for label, make in contestants(len(y)).items():
                    est, seconds, warned = timed(make, X, y)
                    f = objective(est.coef_, est.intercept_, X, y, classes)
                    f_ref = min(f_ref, f)
                    rows[label] = (seconds, f, int(np.max(est.n_iter_)), warned)
                ours = rows["ours-default"][0]
                for label, (seconds, f, steps, warned) in rows.items():
                    gap = (f - f_ref) / abs(f_ref)
                    lines.append(
                        f"| {threads} | {name} | {label} | {seconds * 1e3:.1f} | "
                        f"{gap:.1e} | {steps} | {'yes' if warned else 'no'} | "
                        f"{ours / seconds:.2f} |"
                    )
    write_report(lines, "MULTINOMIAL_L1.md")


if __name__ == "__main__":
    main()
