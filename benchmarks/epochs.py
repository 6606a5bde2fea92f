"""Row-reading epochs against the memory floor: the cost of one epoch of
the losses that read the rows of ``X`` every epoch (huber, log_loss), full
batch and in minibatches, at 1e6 x 100 float32.

The floor is one read of ``X`` (torch's sum over it, best of 7) on the same
threads in the same run. For reference the run also times the two products
an epoch needs, ``X w`` and ``X' r`` (torch, best of 7), and the peers'
epochs (SGDRegressor, SGDClassifier) on the same data. An epoch's cost is
the marginal cost of more epochs (``tol=None``, fits of k1 and k2 epochs,
best of 3 each), so the set-up cancels. Every row is measured with 2
threads and with 1 thread in every library (threadpoolctl and
``torch.set_num_threads``). The run waits for a quiet machine and records
the load average at both ends. Writes benchmarks/results/EPOCHS.md.

    python benchmarks/epochs.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import SGDClassifier, SGDRegressor
from threadpoolctl import threadpool_limits

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _quiet import wait_until_quiet  # noqa: E402
from _timing import per_epoch  # noqa: E402

BATCH = 65536


def data(n, d=100, seed=0):
    """Standard normal ``X`` (float32), a linear target with 5% outliers and
    its sign as a binary label."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal(d).astype(np.float32) / np.sqrt(d)
    y = X @ w + 0.1 * rng.standard_normal(n).astype(np.float32)
    out = rng.random(n) < 0.05
    y[out] += 10 * rng.standard_normal(out.sum()).astype(np.float32)
    return X, y, (y > np.median(y)).astype(np.int64)


def best_ms(f, repeats=7):
    f()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def contestants():
    """name -> (estimator of k epochs, which target, k1, k2)."""
    ours = dict(tol=None, eta0=0.01, random_state=0)

    def reg(**kw):
        return lambda k: TorchSGDRegressor(loss="huber", max_iter=k, **ours, **kw)

    def clf(**kw):
        return lambda k: TorchSGDClassifier(loss="log_loss", max_iter=k, **ours, **kw)

    peer = dict(tol=None, random_state=0)
    return {
        "huber, full batch": (reg(), "y", 2, 12),
        f"huber, batch_size={BATCH}": (reg(batch_size=BATCH), "y", 2, 7),
        f"huber, batch_size={BATCH}, shuffle=False": (
            reg(batch_size=BATCH, shuffle=False), "y", 2, 7),
        "log_loss, full batch": (clf(), "c", 2, 12),
        f"log_loss, batch_size={BATCH}": (clf(batch_size=BATCH), "c", 2, 7),
        f"log_loss, batch_size={BATCH}, shuffle=False": (
            clf(batch_size=BATCH, shuffle=False), "c", 2, 7),
        "SGDRegressor (huber)": (
            lambda k: SGDRegressor(loss="huber", max_iter=k, **peer), "y", 1, 3),
        "SGDClassifier (log_loss)": (
            lambda k: SGDClassifier(loss="log_loss", max_iter=k, **peer), "c", 1, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000
    X, y, c = data(n)
    targets = {"y": y, "c": c}
    Xt = torch.from_numpy(X)
    w = torch.from_numpy(np.ones(X.shape[1], np.float32) / 10)
    busy = wait_until_quiet(print)
    load_start = os.getloadavg()[0]
    flag = " --quick" if args.quick else ""
    lines = [
        "# Row-reading epochs against the memory floor",
        "",
        f"Command: `python benchmarks/epochs.py{flag}`. X: {n:,} x {X.shape[1]} "
        f"float32 ({X.nbytes / 2**20:.0f} MiB), standard normal. Floor: one "
        "read of X (torch's sum, best of 7) on the same threads; the two "
        "products: `X w` then `X' r` (torch, best of 7), the least an epoch "
        "reads. Epoch: the marginal cost of more epochs (tol=None, eta0=0.01), "
        "best of 3 fits each. Load average "
        f"{load_start:.2f} at the start (other processes used "
        f"{'?' if busy is None else f'{busy:.2f}'} cores just before), "
        "LOAD_END at the end; 2 cores.",
        "",
        "| threads | what | epoch (ms) | / floor | / the two products |",
        "| --- | --- | --- | --- | --- |",
    ]
    ratios = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            floor = best_ms(lambda: float(Xt.sum()))
            r = torch.mv(Xt, w)
            two = best_ms(lambda: torch.mv(Xt.T, torch.mv(Xt, w).sub_(r)))
            lines += [
                f"| {threads} | floor: one read of X | {floor:.1f} | 1.00 | |",
                f"| {threads} | the two products | {two:.1f} | {two / floor:.2f} "
                "| 1.00 |",
            ]
            print("\n".join(lines[-2:]), flush=True)
            for name, (make, which, k1, k2) in contestants().items():
                epoch = per_epoch(make, X, targets[which], k1, k2)[0] * 1e3
                ratios[threads, name] = epoch / floor
                lines.append(
                    f"| {threads} | {name} | {epoch:.1f} | {epoch / floor:.2f} "
                    f"| {epoch / two:.2f} |"
                )
                print(lines[-1], flush=True)
    lines += [
        "",
        "| target: epoch <= 2 x floor | 2 threads | 1 thread | verdict (2 threads) |",
        "| --- | --- | --- | --- |",
    ]
    for (threads, name), ratio in ratios.items():
        if threads != 2 or not name.startswith(("huber", "log_loss")):
            continue
        lines.append(
            f"| {name} | {ratio:.2f} | {ratios[1, name]:.2f} "
            f"| {'met' if ratio <= 2 else 'NOT met'} |"
        )
    text = "\n".join(lines) + "\n"
    text = text.replace("LOAD_END", f"{os.getloadavg()[0]:.2f}")
    out = Path(__file__).parent / "results" / "EPOCHS.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
