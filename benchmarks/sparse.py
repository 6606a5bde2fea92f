"""Sparse text benchmark: the cost of an epoch on a TF-IDF corpus,
TorchSGDClassifier (full batch and minibatches of 256) against
SGDClassifier, side by side on the same data and thread count.

The corpus: 100,000 generated documents (a Zipf background of 20,000 words
plus a topic of 300 words per class, 40-160 words each, two classes) hashed
into 2**18 features by HashingVectorizer and TF-IDF weighted, float32;
training on the first 80,000 rows. An epoch's cost is the marginal cost of
more epochs (``tol=None``, fits of k1 and k2 epochs, best of 3 each), so the
fit's set-up (validation, conversion, step size) cancels; the set-up is
reported apart, as the one-epoch fit. Ratios are ours / SGDClassifier's,
measured in the same run, with 2 threads and with 1 thread in every library.
The run waits for a quiet machine and records the load average at both
ends. Writes benchmarks/results/SPARSE.md.

    python benchmarks/sparse.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import SGDClassifier
from threadpoolctl import threadpool_limits

from sklearn_gd import TorchSGDClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import quiet_start, target_row, write_report  # noqa: E402
from _timing import per_epoch  # noqa: E402


def corpus(n_docs, vocab=20_000, n_classes=2, seed=0):
    """TF-IDF rows (CSR, float32) and labels of generated documents."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)])
    background = 1.0 / np.arange(1, vocab + 1) ** 1.1
    background /= background.sum()
    labels = np.arange(n_docs) % n_classes
    lengths = rng.integers(40, 160, n_docs)
    ends = np.cumsum(lengths)
    doc_of = np.repeat(np.arange(n_docs), lengths)
    u = rng.random(ends[-1])
    tokens = np.empty(ends[-1], dtype=np.int64)
    for c in range(n_classes):
        topic = np.zeros(vocab)
        topic[np.random.RandomState(c).choice(vocab, 300, replace=False)] = 1.0
        cdf = np.cumsum(background * 0.97 + topic / topic.sum() * 0.03)
        mask = labels[doc_of] == c
        tokens[mask] = np.minimum(np.searchsorted(cdf / cdf[-1], u[mask]), vocab - 1)
    docs = [" ".join(words[tokens[e - n : e]]) for n, e in zip(lengths, ends)]
    counts = HashingVectorizer(
        n_features=2**18, alternate_sign=False, norm=None, dtype=np.float32
    ).transform(docs)
    return TfidfTransformer().fit_transform(counts).astype(np.float32), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_docs = 20_000 if args.quick else 100_000
    X, y = corpus(n_docs)
    n_train = int(0.8 * n_docs)
    X, y = X[:n_train], y[:n_train]
    contestants = {
        "SGDClassifier (hinge)": (
            lambda k: SGDClassifier(max_iter=k, tol=None, random_state=0),
            2,
            12,
        ),
        "ours, full batch": (
            lambda k: TorchSGDClassifier(max_iter=k, tol=None, random_state=0),
            2,
            22,
        ),
        "ours, batch_size=256": (
            lambda k: TorchSGDClassifier(
                max_iter=k, tol=None, batch_size=256, random_state=0
            ),
            1,
            5,
        ),
    }
    load = quiet_start()
    flag = " --quick" if args.quick else ""
    lines = [
        "# Sparse text benchmark",
        "",
        f"Command: `python benchmarks/sparse.py{flag}`. TF-IDF of {n_docs:,} "
        f"generated documents hashed into 2**18 features, float32, training on "
        f"{X.shape[0]:,} rows ({X.nnz:,} non-zeros), two classes, default "
        "settings otherwise (hinge loss, alpha=1e-4). Epoch: the marginal cost "
        "of more epochs (tol=None), best of 3 fits each; one-epoch fit: the "
        "whole fit with max_iter=1 (validation, conversion, step size, one "
        f"epoch). {load}",
        "",
        "| threads | contestant | epoch (ms) | epoch / SGDClassifier's "
        "| one-epoch fit (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    ratios = {}
    for threads in (2, 1):
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            rows = {
                name: per_epoch(make, X, y, k1, k2)
                for name, (make, k1, k2) in contestants.items()
            }
        ref = rows["SGDClassifier (hinge)"][0]
        for name, (epoch, first) in rows.items():
            ratios[threads, name] = epoch / ref
            lines.append(
                f"| {threads} | {name} | {epoch * 1e3:.1f} | {epoch / ref:.2f} "
                f"| {first:.2f} |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        "| target | 2 threads | 1 thread | verdict (2 threads) |",
        "| --- | --- | --- | --- |",
    ]
    for name, limit in (("ours, full batch", 2), ("ours, batch_size=256", 3)):
        label = f"{name}: epoch <= {limit} x SGDClassifier's"
        lines.append(target_row(label, ratios[2, name], ratios[1, name], limit))
    write_report(lines, "SPARSE.md")


if __name__ == "__main__":
    main()
