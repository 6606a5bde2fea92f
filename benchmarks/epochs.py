"""Row-reading epochs against the memory floor: the cost of one epoch of
the losses that read the rows of ``X`` every epoch (huber, log_loss), full
batch and in minibatches, at 1e6 x 100 float32.

The floor is one read of ``X`` (torch's sum over it, best of 7) on the
same threads in the same run. For reference the run also times the two
products torch computes for an epoch, ``X w`` and ``X' r`` (best of 7),
each a read of ``X``; the same two products in one pass over blocks of rows,
each block's second product reading it from the cache; a huber epoch's
loss and gradient in that blocked pass, the block's losses and derivatives
from the package's own loss between the products (the one-pass design,
in torch's operations: the package does not use it, as it was measured no
faster than the two products); what a shuffled epoch adds before the
products (the permutation, the row gathers); and the peers' epochs
(SGDRegressor, SGDClassifier) on the same data. An epoch's cost is the
marginal cost of more epochs (``tol=None``, fits of k1 and k2 epochs, best
of 3 each), so the set-up cancels. Every row is measured with 2 threads and
with 1 thread in every library (threadpoolctl and ``torch.set_num_threads``).
The run waits for a quiet machine and records the load average at both
ends. Writes benchmarks/results/EPOCHS.md.

    python benchmarks/epochs.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import SGDClassifier, SGDRegressor
from threadpoolctl import threadpool_limits

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor
from sklearn_gd.model._losses import Huber

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import quiet_start, target_row, write_report  # noqa: E402
from _timing import per_epoch  # noqa: E402

BATCH = 65536
BLOCK = 4096
EPSILON = 0.1  # huber's, as TorchSGDRegressor's and SGDRegressor's default


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


def blocked_products(X, w, r):
    """``X' (X w - r)`` in one pass over blocks of BLOCK rows, each block's
    two products taken while it is in cache (the fused pass an epoch could
    take instead of two passes over ``X``)."""
    g = torch.zeros_like(w)
    for start in range(0, X.shape[0], BLOCK):
        Xb = X[start : start + BLOCK]
        g.addmv_(Xb.T, torch.mv(Xb, w).sub_(r[start : start + BLOCK]))
    return g


def blocked_huber_pass(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A huber loss sum and gradient ``X' f`` in one pass over blocks of
    BLOCK rows: each block's predictions, then its losses and derivatives
    (the package's :class:`~sklearn_gd.model._losses.Huber`), then its share of
    the gradient while the block is in cache. The loss's element-wise
    operations between the two products are what this row adds to the
    blocked products'."""
    loss = Huber(EPSILON)
    total = torch.zeros((), dtype=X.dtype)
    g = torch.zeros_like(w)
    for start in range(0, X.shape[0], BLOCK):
        Xb = X[start : start + BLOCK]
        v, f = loss.value_and_derivative(y[start : start + BLOCK], torch.mv(Xb, w))
        total += v.sum()
        g.addmv_(Xb.T, f)
    return total, g


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
            reg(batch_size=BATCH, shuffle=False),
            "y",
            2,
            7,
        ),
        "log_loss, full batch": (clf(), "c", 2, 12),
        f"log_loss, batch_size={BATCH}": (clf(batch_size=BATCH), "c", 2, 7),
        f"log_loss, batch_size={BATCH}, shuffle=False": (
            clf(batch_size=BATCH, shuffle=False),
            "c",
            2,
            7,
        ),
        "SGDRegressor (huber)": (
            lambda k: SGDRegressor(loss="huber", max_iter=k, **peer),
            "y",
            1,
            3,
        ),
        "SGDClassifier (log_loss)": (
            lambda k: SGDClassifier(loss="log_loss", max_iter=k, **peer),
            "c",
            1,
            3,
        ),
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
    load = quiet_start()
    flag = " --quick" if args.quick else ""
    lines = [
        "# Row-reading epochs against the memory floor",
        "",
        f"Command: `python benchmarks/epochs.py{flag}`. X: {n:,} x {X.shape[1]} "
        f"float32 ({X.nbytes / 2**20:.0f} MiB), standard normal. Floor: one "
        "read of X (torch's sum, best of 7, the lesser of readings before and "
        "after the fits) on the same threads; the two "
        "products: `X w` then `X' r` (torch, best of 7), each reading X, which "
        "torch computes for an epoch. Epoch: the marginal cost of more epochs "
        f"(tol=None, eta0=0.01), best of 3 fits each. {load}",
        "",
        "| threads | what | epoch (ms) | / floor | / the two products |",
        "| --- | --- | --- | --- | --- |",
    ]
    ratios = {}
    r = torch.mv(Xt, w)
    yt = torch.from_numpy(y.astype(np.float32))  # y is float64 (w is)
    perm = torch.randperm(n)
    buf = torch.empty(BATCH, X.shape[1])
    references = {
        "floor: one read of X": lambda: float(Xt.sum()),
        "the two products": lambda: torch.mv(Xt.T, torch.mv(Xt, w).sub_(r)),
        f"the two products in one pass (blocks of {BLOCK} rows, both "
        "products per block)": lambda: blocked_products(Xt, w, r),
        f"a huber epoch's loss and gradient in that pass (blocks of {BLOCK} rows, "
        "the loss's operations between the products; a reference, unused)": (
            lambda: blocked_huber_pass(Xt, yt, w)
        ),
        "a shuffled epoch's permutation (torch.randperm)": lambda: torch.randperm(n),
        f"a shuffled epoch's row gathers (index_select, batches of {BATCH})": (
            lambda: [
                torch.index_select(Xt, 0, p, out=buf[: p.shape[0]])
                for p in perm.split(BATCH)
            ]
        ),
    }
    floor_name, two_name = list(references)[:2]
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            ms = {name: best_ms(f) for name, f in references.items()}
            for name, (make, which, k1, k2) in contestants().items():
                ms[name] = per_epoch(make, X, targets[which], k1, k2)[0] * 1e3
                print(f"| {threads} | {name} | {ms[name]:.1f} |", flush=True)
            # the floor and the products again, after the fits: the least
            # of the two readings is the machine's
            for name in (floor_name, two_name):
                ms[name] = min(ms[name], best_ms(references[name]))
        floor, two = ms[floor_name], ms[two_name]
        for name, t in ms.items():
            ratios[threads, name] = t / floor
            lines.append(
                f"| {threads} | {name} | {t:.1f} | {t / floor:.2f} | {t / two:.2f} |"
            )
    lines += [
        "",
        "| target: epoch <= 2 x floor | 2 threads | 1 thread | verdict (2 threads) |",
        "| --- | --- | --- | --- |",
    ]
    for (threads, name), ratio in ratios.items():
        if threads == 2 and name.startswith(("huber", "log_loss")):
            lines.append(target_row(name, ratio, ratios[1, name], 2))
    write_report(lines, "EPOCHS.md")


if __name__ == "__main__":
    main()
