"""Default fits of L1 and elastic-net quantile regression against the optimum.

Each case draws ``make_regression`` data from its seed (n in 100..2000, d in
2..30, noise), fits ``TorchSGDRegressor(loss="quantile", penalty=...)`` with
its defaults on dense and CSR X, and compares the objective with the
optimum's: for L1 the linear program's (``QuantileRegressor(solver=
"highs")``); for the elastic net a lower bound by weak duality (the best of
the dual points made from the fit's residuals and from a fit run to
tol=1e-10), so that its gaps are upper bounds, loose by at most the slack
printed. It reports, per layout, the cases within a relative gap of 1e-4,
the worst gap, the warnings (and whether a certified bound a warning gives
is below the gap: untrue) and the fits' time.

Run from the repository root (the package imports from the cwd)::

    OMP_NUM_THREADS=1 python benchmarks/nonsmooth_sweep.py [n_seeds] [--elasticnet]
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import QuantileRegressor

from sklearn_gd import TorchSGDRegressor

PROMISE = 1e-4
L1_RATIO = 0.15  # the estimators' default
# the elastic net's reference is a dual bound, loose where rows interpolate
# (measured slack up to 7e-2): off unless asked for (``--elasticnet``)
PENALTIES = ("l1", "elasticnet") if "--elasticnet" in sys.argv else ("l1",)


def lp_optimum(X, y, q, l1):
    """``min mean(pinball_q(y - X w - b)) + l1 ||w||_1`` exactly: the linear
    program of scikit-learn's ``QuantileRegressor(solver="highs")``."""
    model = QuantileRegressor(quantile=q, alpha=l1, solver="highs").fit(X, y)
    return model.coef_, model.intercept_


def dual_bound(w, b, X, y, q, l1, l2):
    """A lower bound of the elastic-net optimum (weak duality): the best
    dual value over the points ``beta = clip(r / mu, q - 1, q)`` of the
    residuals ``r`` of ``(w, b)``, moved into ``sum(beta) = 0`` within the
    box, for ``mu`` on a grid. The dual of the problem is ``max mean(beta
    y) - ||soft(X' beta / n, l1)||^2 / (2 l2)`` over that set."""
    n = len(y)
    r = y - X @ w - b
    best = -np.inf
    for mu in np.abs(r).mean() * 10.0 ** -np.arange(1, 14):
        beta = np.clip(r / mu, q - 1.0, q)
        need = beta.sum()
        bound = q - 1.0 if need > 0 else q
        room = (beta - bound).sum()
        if abs(need) > abs(room):
            continue
        beta = beta - (beta - bound) * (need / room if room else 0.0)
        v = X.T @ beta / n
        soft = np.sign(v) * np.maximum(np.abs(v) - l1, 0.0)
        best = max(best, beta @ y / n - soft @ soft / (2.0 * l2))
    return best


def reference(X, y, q, l1, l2):
    """The optimum's objective (L1: the LP's) and a lower bound of it: the
    LP's value, or the dual bound at a fit run to tol=1e-10."""
    if l2 == 0:
        ref = objective(*lp_optimum(X, y, q, l1), X, y, q, l1, 0.0)
        return ref, ref
    alpha = l1 + l2
    est = TorchSGDRegressor(
        loss="quantile",
        quantile=q,
        alpha=alpha,
        penalty="elasticnet",
        l1_ratio=l1 / alpha,
        tol=1e-10,
        max_iter=5000,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    w, b = est.coef_, est.intercept_[0]
    return objective(w, b, X, y, q, l1, l2), dual_bound(w, b, X, y, q, l1, l2)


def objective(w, b, X, y, q, l1, l2):
    r = y - X @ w - b
    loss = np.maximum(q * r, (q - 1.0) * r).mean()
    return loss + l1 * np.abs(w).sum() + 0.5 * l2 * (w @ w)


def cases(n_seeds):
    for seed in range(n_seeds):
        rng = np.random.RandomState(seed)
        n, d = int(rng.randint(100, 2001)), int(rng.randint(2, 31))
        noise = float(rng.choice([1.0, 10.0, 50.0]))
        X, y = make_regression(n, d, noise=noise, random_state=seed)
        for q in (0.5, 0.9):
            for alpha in (1e-4, 1e-3, 1e-2):
                for penalty in PENALTIES:
                    yield seed, X, y, q, alpha, penalty


def fit(X, y, q, alpha, penalty):
    est = TorchSGDRegressor(loss="quantile", quantile=q, alpha=alpha, penalty=penalty)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        est.fit(X, y)
        elapsed = time.perf_counter() - start
    texts = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    return est, texts, elapsed


def bound_of(text):
    """The certified bound a warning reports (None if it reports none)."""
    if "duality gap" not in text:
        return None
    return float(text.split(" is ")[1].split(",")[0])


def main(n_seeds):
    stats = {
        lay: dict(n=0, ok=0, worst=0.0, warned=0, untrue=0, silent_bad=0, t=0.0)
        for lay in ("dense", "csr")
    }
    slack = 0.0
    for seed, X, y, q, alpha, penalty in cases(n_seeds):
        l1 = alpha * (1.0 if penalty == "l1" else L1_RATIO)
        l2 = 0.0 if penalty == "l1" else alpha * (1.0 - L1_RATIO)
        ref, lower = reference(X, y, q, l1, l2)
        slack = max(slack, (ref - lower) / abs(lower))
        for lay, Xin in (("dense", X), ("csr", sp.csr_matrix(X))):
            est, texts, elapsed = fit(Xin, y, q, alpha, penalty)
            ours = objective(est.coef_, est.intercept_[0], X, y, q, l1, l2)
            # the gap to the best lower bound: exact for L1, and for the
            # elastic net an upper bound of the gap, loose by ``slack``
            if l2:
                w, b = est.coef_, est.intercept_[0]
                lower = max(lower, dual_bound(w, b, X, y, q, l1, l2))
            gap = (ours - lower) / abs(lower)
            s = stats[lay]
            s["n"] += 1
            s["t"] += elapsed
            s["ok"] += gap <= PROMISE
            s["warned"] += bool(texts)
            s["worst"] = max(s["worst"], gap)
            bounds = [bound_of(t) for t in texts]
            s["untrue"] += any(b is not None and b < gap * (1 - 1e-6) for b in bounds)
            s["silent_bad"] += gap > PROMISE and not texts
            if gap > PROMISE or texts:
                print(
                    f"seed={seed} {X.shape} q={q} alpha={alpha} {penalty} {lay}: "
                    f"gap={gap:.2e} n_iter={est.n_iter_} bounds={bounds}",
                    flush=True,
                )
    print(f"elastic net: the reference's own certified gap is at most {slack:.1e}")
    for lay, s in stats.items():
        print(
            f"{lay}: {s['ok']}/{s['n']} within {PROMISE:g}, worst gap "
            f"{s['worst']:.2e}, warned {s['warned']} (bound below the gap: "
            f"{s['untrue']}), above 1e-4 silently {s['silent_bad']}, fit time "
            f"{s['t']:.1f} s"
        )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 10)
