"""A generated sweep of default fits against float64 reference solvers.

Every case is drawn from one integer seed: :func:`make_case` turns the seed
into a dataset (``make_regression`` or ``make_classification`` with random
size, noise, per-column scale and offset, constant and duplicated columns,
class imbalance), a container (dense numpy in C or F order, CSR with unsorted
indices, or a torch tensor), a dtype (float32 or float64), sample weights
(none, integer-ish or real) and a configuration (loss x penalty x
``fit_intercept``, cycling through every combination with ``seed % len(COMBOS)``;
``alpha``, ``l1_ratio``, ``epsilon`` and ``quantile`` drawn at random). The
estimator is otherwise the default one: ``optimizer`` and ``tol`` are never
set; ``random_state=0`` is, so that two fits can be compared exactly.

:func:`run_case` fits it, scores the fit with the float64 objective of
``tests/_objective.py`` (the same formulas, extended to sample weights for the
classifier) on the very numbers the estimator saw (a float32 case is scored on
its float32 data cast to float64), and compares it with the best of several
reference solvers of the same objective, each problem column (output, or
one-vs-rest class) on its own:

* squared error: exact least squares (l2, None), scikit-learn's ElasticNet /
  Lasso at ``tol=1e-12`` (l1, elasticnet), and L-BFGS-B;
* the other smooth losses (huber, squared_epsilon_insensitive, log_loss,
  modified_huber, squared_hinge, multinomial): scipy's L-BFGS-B on the exact
  objective (L1 through the split ``w = u - v``, ``u, v >= 0``), started from
  zero and from our solution, plus LogisticRegression for log_loss + l2;
* the piecewise-linear losses (absolute_error, quantile, epsilon_insensitive,
  hinge, perceptron): the linear program solved by HiGHS (l1, None), or for l2
  and elasticnet the box-constrained dual QP solved by L-BFGS-B for each
  intercept, the intercept by Brent's method; the dual also gives a certified
  lower bound on the optimum.

All solvers work on centred and scaled columns (an exact change of variables,
``w = w' / sigma``, ``b = b' - mu . w``) and are scored back in the original
ones. The reference objective ``f_ref`` is the minimum over all of them,
ours included (ours may be better than a sloppy reference, which then is
not held against us), and the relative gap is::

    gap = (f_ours - f_ref) / max(|f_ref|, 1e-8 * f_null, 1e-12)

with ``f_null`` the objective of the zero model: an optimum of exactly 0
(squared error without noise or penalty, hinge on separable data, the
perceptron) is measured against the problem's own scale instead of 0.

The assertions on a case (:func:`failures`): no exception; a gap <= 1e-4 or a
ConvergenceWarning (the perceptron, whose objective the zero model
minimises and whose default runs SGDClassifier's update rule, is exempt
from the gap); no ConvergenceWarning where the gap is certifiably
<= 1e-6; the caller's X, y and sample weights unchanged (CSR indices order
included); and a second fit giving the same coefficients, bit for bit.
``python benchmarks/sweep.py`` runs any seed range and prints the counts.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from _objective import LOSS_NAMES, PENALTY_NAMES, margin_loss, penalty, pointwise_loss
from scipy.optimize import linprog, minimize
from scipy.special import expit, logsumexp, softmax
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor

__all__ = [
    "COMBOS",
    "Case",
    "Result",
    "case_from_arrays",
    "gap_of",
    "failures",
    "make_case",
    "run_case",
    "summarize",
]

REGRESSION_LOSSES = LOSS_NAMES  # the order fixes COMBOS: never reorder
CLASSIFICATION_LOSSES = (
    "hinge",
    "log_loss",
    "modified_huber",
    "squared_hinge",
    "perceptron",
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
)
PENALTIES = PENALTY_NAMES
SMOOTH = {
    "squared_error",
    "huber",
    "squared_epsilon_insensitive",
    "log_loss",
    "modified_huber",
    "squared_hinge",
}
MARGIN = {"hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"}

# every (estimator, loss, penalty, fit_intercept, multi_class) once; a seed's
# configuration is COMBOS[seed % len(COMBOS)], so any len(COMBOS) consecutive
# seeds cover them all. Append only: reordering would change every seed's case.
COMBOS = tuple(
    [
        ("regressor", loss, pen, fi, None)
        for loss in REGRESSION_LOSSES
        for pen in PENALTIES
        for fi in (True, False)
    ]
    + [
        ("classifier", loss, pen, fi, "ovr")
        for loss in CLASSIFICATION_LOSSES
        for pen in PENALTIES
        for fi in (True, False)
    ]
    + [
        ("classifier", "log_loss", pen, fi, "multinomial")
        for pen in PENALTIES
        for fi in (True, False)
    ]
)

GAP_OK = 1e-4  # the package's promise (README, issue 26): gap <= 1e-4 or a warning
GAP_FALSE_WARNING = 1e-6  # a warning below this is false (issue 26)


# ------------------------------------------------------------------ cases
@dataclass
class Case:
    """One generated fit: the estimator's parameters and the caller's data,
    plus the float64 copy of what the estimator sees, for the references."""

    seed: int
    kind: str  # "regressor" or "classifier"
    params: dict
    X: object  # as passed to fit: ndarray, csr_matrix or torch.Tensor
    y: object
    sample_weight: object
    layout: str
    dtype: str
    X64: np.ndarray = field(repr=False)  # dense float64 of the same numbers
    y64: np.ndarray = field(repr=False)  # float64 targets (labels: raw)
    s64: np.ndarray = field(repr=False)  # float64 weights, ones when None
    info: dict = field(default_factory=dict)

    def estimator(self):
        cls = TorchSGDRegressor if self.kind == "regressor" else TorchSGDClassifier
        return cls(**self.params)

    def describe(self):
        p = self.params
        parts = [
            f"seed={self.seed}",
            self.kind,
            f"loss={p['loss']}",
            f"penalty={p['penalty']}",
            f"fit_intercept={p['fit_intercept']}",
            f"alpha={p['alpha']:.2e}",
        ]
        if p["penalty"] == "elasticnet":
            parts.append(f"l1_ratio={p['l1_ratio']:.2f}")
        for key in ("epsilon", "quantile", "multi_class"):
            if key in p:
                parts.append(f"{key}={p[key]:.3g}" if key != "multi_class" else p[key])
        n, d = self.X64.shape
        parts += [f"n={n}", f"d={d}", self.layout, self.dtype]
        parts += [f"{k}={v}" for k, v in self.info.items()]
        return " ".join(parts)


def _unsorted_csr(X, rng):
    """CSR of ``X`` whose column indices run in a random order in each row."""
    csr = sp.csr_matrix(X)
    data, indices = csr.data.copy(), csr.indices.copy()
    for i in range(csr.shape[0]):
        lo, hi = csr.indptr[i], csr.indptr[i + 1]
        perm = lo + rng.permutation(hi - lo)
        data[lo:hi], indices[lo:hi] = data[perm], indices[perm]
    out = sp.csr_matrix((data, indices, csr.indptr.copy()), shape=csr.shape)
    out.has_sorted_indices = False  # what scipy would find, said explicitly
    return out


def make_case(seed: int) -> Case:
    """The case of ``seed``: deterministic, the same on every machine.

    Only ``np.random.RandomState`` (a frozen stream) and scikit-learn's
    ``make_regression``/``make_classification`` draw numbers.
    """
    kind, loss, pen, fit_intercept, multi_class = COMBOS[seed % len(COMBOS)]
    rng = np.random.RandomState(seed)
    n = int(rng.randint(40, 401))
    d = int(rng.randint(1, 31))
    dtype = "float32" if rng.rand() < 0.4 else "float64"
    layout = ("dense", "dense_F", "csr", "torch")[rng.choice(4, p=[0.3, 0.1, 0.3, 0.3])]
    info = {}
    data_seed = int(rng.randint(2**31 - 1))
    if kind == "regressor":
        n_targets = 1 if rng.rand() < 0.7 else int(rng.randint(2, 4))
        noise = float(rng.choice([0.0, 0.1, 1.0, 10.0, 50.0]))
        rank = None if rng.rand() < 0.8 else int(rng.randint(1, d + 1))
        X, y = make_regression(
            n,
            d,
            n_informative=int(rng.randint(1, d + 1)),
            n_targets=n_targets,
            bias=float(rng.uniform(-50, 50)),
            noise=noise,
            effective_rank=rank,
            random_state=data_seed,
        )
        y = y * 10 ** rng.uniform(-2, 2)
        info.update(k=n_targets, noise=noise)
        if rank is not None:
            info["rank"] = rank
    else:
        n_classes = 2 if (rng.rand() < 0.5 or d == 1) else int(rng.randint(3, 5))
        if multi_class == "multinomial" and d > 1:
            n_classes = int(rng.randint(3, 5))
        n_inf = max(int(np.ceil(np.log2(n_classes))), int(rng.randint(1, d + 1)))
        n_inf = min(n_inf, d)
        weights = None
        if rng.rand() < 0.4:  # imbalance: one class rare
            share = rng.uniform(0.05, 0.3)
            weights = [share] + [(1 - share) / (n_classes - 1)] * (n_classes - 1)
        X, y = make_classification(
            n,
            d,
            n_informative=n_inf,
            n_redundant=0,
            n_repeated=0,
            n_classes=n_classes,
            n_clusters_per_class=1,
            weights=weights,
            flip_y=float(rng.uniform(0, 0.1)),
            class_sep=float(rng.uniform(0.5, 2.0)),
            random_state=data_seed,
        )
        info.update(classes=n_classes, imbalanced=weights is not None)
    decades = int(rng.randint(0, 4))
    scale = 10 ** rng.uniform(-decades, decades, d)
    offset = np.zeros(d)
    if rng.rand() < 0.5:
        offset = rng.uniform(-1, 1, d) * 10 ** rng.uniform(0, 3)
    X = X * scale + offset * scale
    info["decades"] = decades
    if d >= 2 and rng.rand() < 0.2:
        j = rng.randint(d)
        X[:, j] = offset[j] * scale[j]
        info["constant_col"] = int(j)
    if d >= 2 and rng.rand() < 0.2:
        src, dst = rng.choice(d, 2, replace=False)
        X[:, dst] = X[:, src]
        info["duplicate_col"] = int(dst)
    if layout == "csr":
        X[rng.rand(n, d) < rng.uniform(0, 0.6)] = 0.0
    sw_kind = ("none", "int", "real")[rng.choice(3, p=[0.5, 0.25, 0.25])]
    sw = None
    if sw_kind == "int":
        sw = rng.randint(0, 4, n).astype(np.float64)
        sw[rng.randint(n)] = 1.0  # at least one row counts
    elif sw_kind == "real":
        sw = rng.lognormal(0.0, 1.0, n)
    info["weights"] = sw_kind

    alpha = float(10 ** rng.uniform(-5, -1))
    params = dict(
        loss=loss,
        penalty=pen,
        alpha=alpha,
        fit_intercept=fit_intercept,
        random_state=0,
    )
    l1_ratio = 0.15 if rng.rand() < 0.5 else float(rng.uniform(0.05, 0.95))
    if pen == "elasticnet":
        params["l1_ratio"] = l1_ratio
    eps_draw = float(10 ** rng.uniform(-2, 1))
    if loss in ("huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
        if kind == "regressor" and rng.rand() < 0.5:
            params["epsilon"] = eps_draw
    q_draw = float(rng.uniform(0.05, 0.95))
    if loss == "quantile" and rng.rand() < 0.5:
        params["quantile"] = q_draw
    if multi_class == "multinomial":
        params["multi_class"] = "multinomial"

    np_dtype = np.dtype(dtype)
    X = np.asarray(X, dtype=np_dtype)
    X64 = X.astype(np.float64)
    if kind == "regressor":
        y = np.asarray(y, dtype=np_dtype)
        y64 = y.astype(np.float64)
    else:
        y = np.asarray(y, dtype=np.int64)
        y64 = y.copy()
    s64 = np.ones(n) if sw is None else sw.astype(np.float64)
    if layout == "dense_F":
        X = np.asfortranarray(X)
    elif layout == "csr":
        X = _unsorted_csr(X, rng)
        X64 = X.toarray().astype(np.float64)
    elif layout == "torch":
        X = torch.from_numpy(X.copy())
        y = torch.from_numpy(y.copy())
        if sw is not None:
            sw = torch.from_numpy(sw.astype(np_dtype))
            s64 = sw.numpy().astype(np.float64)
    return Case(seed, kind, params, X, y, sw, layout, dtype, X64, y64, s64, info)


def case_from_arrays(kind, params, X, y, sample_weight=None, seed=-1):
    """A :class:`Case` of given numpy data (dense), for the named tests."""
    cls = TorchSGDRegressor if kind == "regressor" else TorchSGDClassifier
    params = cls(**params).get_params()
    X = np.asarray(X)
    y64 = np.asarray(y, dtype=np.float64 if kind == "regressor" else None)
    n = X.shape[0]
    s64 = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    return Case(
        seed,
        kind,
        dict(params),
        X,
        y,
        sample_weight,
        "dense",
        str(X.dtype),
        X.astype(np.float64),
        y64,
        s64,
    )


def gap_of(case, est):
    """``(gap, Reference)`` of a fitted estimator of ``case``."""
    W, b = _model(est, case.X64.shape[1])
    f = float(column_objectives(case, W, b).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = reference(case, W, b)
    return (f - ref.f_ref) / max(abs(ref.f_ref), 1e-8 * ref.f_null, 1e-12), ref


# ----------------------------------------------------------- the objective
def _settings(case):
    p = case.params
    est = case.estimator()
    return dict(
        loss=p["loss"],
        penalty=p["penalty"],
        alpha=p["alpha"],
        l1_ratio=est.l1_ratio,
        epsilon=est.epsilon,
        quantile=getattr(est, "quantile", 0.5),
    )


def _targets(case):
    """``(T, classes)``: the problem columns' targets, float64 (n, k): the
    outputs (regressor), +-1 per one-vs-rest class or the binary problem, or
    the one-hot matrix (multinomial)."""
    if case.kind == "regressor":
        return case.y64.reshape(len(case.y64), -1), None
    classes = np.unique(case.y64)
    if len(classes) == 2:
        return np.where(case.y64 == classes[1], 1.0, -1.0)[:, None], classes
    hit = (case.y64[:, None] == classes[None, :]).astype(np.float64)
    if case.params.get("multi_class") == "multinomial":
        return hit, classes
    return 2 * hit - 1, classes


def _joint(case):
    return case.params.get("multi_class") == "multinomial" and (
        len(np.unique(case.y64)) > 2
    )


def _pointwise(loss, T, P, s):
    """Elementwise loss of targets ``T`` at scores ``P`` (float64)."""
    if loss == "perceptron":
        return np.maximum(0.0, -T * P)
    if loss in MARGIN:
        return margin_loss(loss, T, P)
    return pointwise_loss(loss, T, P, epsilon=s["epsilon"], quantile=s["quantile"])


def column_objectives(case, W, b):
    """The objective of each problem column at ``W`` (k, d), ``b`` (k,), in
    float64: ``tests/_objective.py``'s formulas with sample weights; for the
    multinomial loss one value, the whole objective."""
    s = _settings(case)
    T, _ = _targets(case)
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    b = np.broadcast_to(np.asarray(b, dtype=np.float64).ravel(), W.shape[:1])
    c = case.s64 / case.s64.sum()
    P = case.X64 @ W.T + b
    reg = s["alpha"] * penalty(s["penalty"], W, l1_ratio=s["l1_ratio"])
    if _joint(case):
        data = c @ (logsumexp(P, axis=1) - (T * P).sum(1))
        return np.array([data + reg.sum()])
    L = _pointwise(s["loss"], T, P, s)
    return c @ L + reg


def _model(est, d):
    W = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64)).reshape(-1, d)
    b = np.broadcast_to(
        np.asarray(est.intercept_, dtype=np.float64).ravel(), W.shape[:1]
    )
    return W, np.array(b)


# ------------------------------------------------------------- references
@dataclass
class _Problem:
    """One column's problem on centred and scaled columns: minimise
    ``sum_i c_i L(t_i, Xs_i w' + b') + sum_j l1_j |w'_j| + q_j / 2 w'_j^2``."""

    Xs: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    c: np.ndarray
    l1: np.ndarray
    q: np.ndarray
    fit_intercept: bool

    def to_original(self, w, b):
        w = w / self.sigma
        return w, (b - self.mu @ w) if self.fit_intercept else 0.0

    def to_scaled(self, w, b):
        return w * self.sigma, (b + self.mu @ w) if self.fit_intercept else 0.0


def _problem(case):
    s = _settings(case)
    X, c = case.X64, case.s64 / case.s64.sum()
    fi = case.params["fit_intercept"]
    mu = c @ X if fi else np.zeros(X.shape[1])
    sigma = np.sqrt(c @ (X - mu) ** 2)
    sigma[~(sigma > 1e-12 * (1 + np.abs(mu)))] = 1.0  # constant columns
    lam1 = {"l1": s["alpha"], "elasticnet": s["alpha"] * s["l1_ratio"]}
    lam2 = {"l2": s["alpha"], "elasticnet": s["alpha"] * (1 - s["l1_ratio"])}
    return _Problem(
        (X - mu) / sigma,
        mu,
        sigma,
        c,
        lam1.get(s["penalty"], 0.0) / sigma,
        lam2.get(s["penalty"], 0.0) / sigma**2,
        fi,
    )


def _smooth_grad(loss, t, p, s):
    """Value and derivative in ``p`` of a smooth loss, elementwise."""
    if loss == "squared_error":
        r = p - t
        return 0.5 * r * r, r
    if loss == "huber":
        r, e = t - p, s["epsilon"]
        a = np.abs(r)
        inner = a <= e
        return (
            np.where(inner, 0.5 * r * r, e * a - 0.5 * e * e),
            np.where(inner, -r, -e * np.sign(r)),
        )
    if loss == "squared_epsilon_insensitive":
        r = t - p
        m = np.maximum(np.abs(r) - s["epsilon"], 0.0)
        return m * m, -2.0 * m * np.sign(r)
    z = t * p
    if loss == "log_loss":
        return np.logaddexp(0.0, -z), -t * expit(-z)
    h = np.maximum(0.0, 1.0 - z)
    if loss == "squared_hinge":
        return h * h, -2.0 * h * t
    if loss == "modified_huber":
        inner = z >= -1.0
        return np.where(inner, h * h, -4.0 * z), t * np.where(inner, -2.0 * h, -4.0)
    raise ValueError(loss)


def _lbfgs(fun_grad, x0, bounds):
    # ftol/gtol at the limit of float64. L-BFGS-B can stop early on a failed
    # line search (bounds of the L1 split, a kink of huber's second
    # derivative): restarted from its own point, with a fresh memory, until a
    # restart gains nothing, it ends within about 1e-12 of the optimum on
    # these small problems (the two starts agree to that)
    x, f = x0, np.inf
    for _ in range(8):
        r = minimize(
            fun_grad,
            x,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options=dict(
                maxiter=30000, maxfun=60000, maxcor=30, ftol=1e-16, gtol=1e-13
            ),
        )
        if not r.fun < f - 1e-15 * abs(f):
            return r.x if r.fun <= f else x
        x, f = r.x, r.fun
    return x


def _smooth_primal(pb, loss, t, s, start):
    """L-BFGS-B on the exact objective (split ``w' = u - v`` under L1)."""
    n, d = pb.Xs.shape
    split = bool(np.any(pb.l1 > 0))
    nb = int(pb.fit_intercept)

    def unpack(x):
        w = x[:d] - x[d : 2 * d] if split else x[:d]
        b = x[-1] if nb else 0.0
        return w, b

    def fg(x):
        w, b = unpack(x)
        val, dp = _smooth_grad(loss, t, pb.Xs @ w + b, s)
        gw = pb.Xs.T @ (pb.c * dp) + pb.q * w
        f = pb.c @ val + 0.5 * pb.q @ (w * w)
        g = [gw]
        if split:
            f += pb.l1 @ x[: 2 * d].reshape(2, d).sum(0)
            g = [gw + pb.l1, -gw + pb.l1]
        if nb:
            g.append([pb.c @ dp])
        return f, np.concatenate(g)

    w0, b0 = pb.to_scaled(*start)
    x0 = np.concatenate(
        ([np.maximum(w0, 0), np.maximum(-w0, 0)] if split else [w0]) + [[b0]] * nb
    )
    bounds = [(0, None)] * (2 * d) + [(None, None)] * nb if split else None
    return pb.to_original(*unpack(_lbfgs(fg, x0, bounds)))


def _multinomial(pb, T, start):
    """L-BFGS-B on the softmax cross-entropy plus penalty, all classes."""
    n, d = pb.Xs.shape
    k = T.shape[1]
    split = bool(np.any(pb.l1 > 0))
    nw = k * d * (2 if split else 1)

    def unpack(x):
        W = x[:nw].reshape(-1, k, d)
        W = W[0] - W[1] if split else W[0]
        b = x[nw:] if pb.fit_intercept else np.zeros(k)
        return W, b

    def fg(x):
        W, b = unpack(x)
        P = pb.Xs @ W.T + b
        lse = logsumexp(P, axis=1)
        dP = pb.c[:, None] * (softmax(P, axis=1) - T)
        gW = dP.T @ pb.Xs + pb.q * W
        f = pb.c @ (lse - (T * P).sum(1)) + 0.5 * (pb.q * W * W).sum()
        g = [gW.ravel()]
        if split:
            f += (pb.l1 * x[:nw].reshape(2, k, d).sum(0)).sum()
            g = [(gW + pb.l1).ravel(), (-gW + pb.l1).ravel()]
        if pb.fit_intercept:
            g.append(dP.sum(0))
        return f, np.concatenate(g)

    W0, b0 = start
    Ws = W0 * pb.sigma
    bs = b0 + Ws @ (pb.mu / pb.sigma) if pb.fit_intercept else np.zeros(k)
    parts = (
        [np.maximum(Ws, 0).ravel(), np.maximum(-Ws, 0).ravel()]
        if split
        else [Ws.ravel()]
    )
    x0 = np.concatenate(parts + ([bs] if pb.fit_intercept else []))
    bounds = None
    if split:
        bounds = [(0, None)] * nw + [(None, None)] * (k * pb.fit_intercept)
    W, b = unpack(_lbfgs(fg, x0, bounds))
    W = W / pb.sigma
    return W, (b - W @ pb.mu) if pb.fit_intercept else np.zeros(k)


def _pieces(loss, t, s):
    """A piecewise-linear loss as ``e + g p + sum_k max(0, A_k p + C_k)``."""
    zero = np.zeros_like(t)
    if loss == "quantile":
        tau = s["quantile"]
        return tau * t, zero - tau, np.ones((len(t), 1)), -t[:, None]
    if loss in ("absolute_error", "epsilon_insensitive"):
        e = s["epsilon"] if loss == "epsilon_insensitive" else 0.0
        A = np.stack([-np.ones_like(t), np.ones_like(t)], 1)
        return zero, zero, A, np.stack([t - e, -t - e], 1)
    margin = 1.0 if loss == "hinge" else 0.0  # hinge, perceptron
    return zero, zero, -t[:, None], np.full((len(t), 1), margin)


def _lp(pb, loss, t, s):
    """The exact optimum of a piecewise-linear loss with l1 or no penalty:
    the linear program in ``(w', b', slacks)``, by HiGHS."""
    n, d = pb.Xs.shape
    e, g, A, C = _pieces(loss, t, s)
    m = A.shape[1]
    split = bool(np.any(pb.l1 > 0))
    nb = int(pb.fit_intercept)
    cg = pb.Xs.T @ (pb.c * g)
    cost = [cg + pb.l1, -cg + pb.l1] if split else [cg]
    cost = np.concatenate(cost + [[pb.c @ g]] * nb + [np.repeat(pb.c, m)])
    rows = (A[:, :, None] * pb.Xs[:, None, :]).reshape(n * m, d)
    blocks = [rows, -rows] if split else [rows]
    if nb:
        blocks.append(A.reshape(-1, 1))
    blocks.append(-sp.eye(n * m).toarray())
    A_ub = sp.csr_matrix(np.hstack(blocks))
    nw = d * (2 if split else 1)
    bounds = [(0, None) if split else (None, None)] * nw
    bounds += [(None, None)] * nb + [(0, None)] * (n * m)
    res = linprog(
        cost,
        A_ub=A_ub,
        b_ub=-C.ravel(),
        bounds=bounds,
        method="highs",
        # tight feasibility: the slacks are the loss, so their feasibility
        # error is the objective's error
        options=dict(
            primal_feasibility_tolerance=1e-10, dual_feasibility_tolerance=1e-10
        ),
    )
    if res.status != 0:
        raise RuntimeError(f"reference LP failed: {res.message}")
    x = res.x
    w = x[:d] - x[d : 2 * d] if split else x[:d]
    return pb.to_original(w, x[nw] if nb else 0.0)


def _smooth_max(z, mu):
    """``max(0, z)`` smoothed (Moreau, parameter ``mu``): value, first and
    second derivative; ``0 <= max(0, z) - value <= mu / 2``."""
    inner = (z > 0) & (z < mu)
    val = np.where(z >= mu, z - 0.5 * mu, np.where(inner, z * z / (2 * mu), 0.0))
    return val, np.clip(z / mu, 0.0, 1.0), inner / mu


def _lm_newton(parts, x, mu):
    """Newton's method with Levenberg-Marquardt damping on ``parts(x, mu) ->
    (f, grad, hess)``: a step that does not decrease ``f`` enough is retried
    with a larger damping, so that a singular Hessian (an unpenalised
    intercept with no row near a kink, the softmax's common shift) still
    moves. Returns the point and ``f`` less half the squared Newton
    decrement (the model's estimate of the minimum)."""
    f, grad, hess = parts(x, mu)
    lam, dec2, eye = 1e-12, np.inf, np.eye(len(x))
    for _ in range(300):
        scale = np.abs(np.diag(hess)).max() + 1e-300
        try:
            step = -np.linalg.solve(hess + lam * scale * eye, grad)
        except np.linalg.LinAlgError:
            lam *= 10.0
            continue
        dec2 = -grad @ step
        if not dec2 > 1e-28 * (1.0 + abs(f)):
            break
        f_new = parts(x + step, mu)[0]
        if f_new <= f - 1e-4 * dec2:
            x = x + step
            f, grad, hess = parts(x, mu)
            lam = max(lam * 0.1, 1e-15)
        elif lam < 1e12:
            lam *= 10.0
        else:
            break
    return x, f - 0.5 * dec2 if np.isfinite(dec2) else f


def _continuation(parts, exact, starts, slack, mu0):
    """Minimise ``exact`` through its smoothed ``parts`` for ``mu`` from
    ``mu0`` down by 100 a stage, until the smoothing's bound on the error,
    ``mu * slack``, is below 1e-11 of the objective; from each start (the
    second polishes from ``mu0 * 1e-6``), the best point."""
    best = None
    for x, first in zip(starts, (0, 3)):
        for k in range(first, 8):
            mu = mu0 * 0.01**k
            x, lower = _lm_newton(parts, x, mu)
            if mu * slack <= 1e-11 * abs(lower):
                break
        value = exact(x)
        if best is None or value < best[0]:
            best = (value, x, lower)
    return best[1], best[2]


def _penalty_parts(pb, w, mu, f, grad, hess):
    """Add the penalty (its L1 part smoothed) to the first ``d`` unknowns."""
    d = len(w)
    diag = np.arange(d)
    f += 0.5 * pb.q @ (w * w)
    grad[:d] += pb.q * w
    hess[diag, diag] += pb.q
    if np.any(pb.l1 > 0):
        vp, d1p, d2p = _smooth_max(w, mu)
        vm, d1m, d2m = _smooth_max(-w, mu)
        f += pb.l1 @ (vp + vm)
        grad[:d] += pb.l1 * (d1p - d1m)
        hess[diag, diag] += pb.l1 * (d2p + d2m)
    return f, grad, hess


def _smooth_hess(loss, t, p, s):
    """Second derivative in ``p`` of a smooth loss (piecewise, elementwise)."""
    if loss == "squared_error":
        return np.ones_like(p)
    if loss == "huber":
        return (np.abs(t - p) <= s["epsilon"]).astype(float)
    if loss == "squared_epsilon_insensitive":
        return 2.0 * (np.abs(t - p) > s["epsilon"])
    z = t * p
    if loss == "log_loss":
        sig = expit(-z)
        return sig * (1.0 - sig)
    if loss == "squared_hinge":
        return 2.0 * (z < 1.0)
    return 2.0 * ((z >= -1.0) & (z < 1.0))  # modified_huber


def _smoothed_newton(pb, loss, t, s, start):
    """The optimum of one column's problem by Newton's method, and (for a
    piecewise-linear loss) an estimate of a lower bound on it.

    Each ``max(0, .)`` of a piecewise-linear loss, and ``|w_j|`` of an L1
    part, is replaced by its Moreau envelope of parameter ``mu``, below it by
    at most ``mu / 2``; the smoothed problem (at most 31 unknowns) is
    minimised by damped Newton for ``mu`` from the targets' scale down, each
    stage warm-started (:func:`_continuation`); a smooth loss with no L1 is
    one stage. The smoothed optimum is below the true one, so the smoothed
    value at the end, less half the squared Newton decrement, estimates a
    lower bound on the optimum.
    """
    n, d = pb.Xs.shape
    M = np.hstack([pb.Xs, np.ones((n, 1))]) if pb.fit_intercept else pb.Xs
    piecewise = loss not in SMOOTH
    if piecewise:
        e, g, A, C = _pieces(loss, t, s)

    def data(p, mu):
        if piecewise:
            v, d1, d2 = _smooth_max(A * p[:, None] + C, mu)
            return (
                pb.c @ (e + g * p + v.sum(1)),
                pb.c * (g + (d1 * A).sum(1)),
                pb.c * (d2 * A * A).sum(1),
            )
        val, dp = _smooth_grad(loss, t, p, s)
        return pb.c @ val, pb.c * dp, pb.c * _smooth_hess(loss, t, p, s)

    def parts(x, mu):
        f, gp, hp = data(M @ x, mu)
        return _penalty_parts(pb, x[:d], mu, f, M.T @ gp, (M * hp[:, None]).T @ M)

    def exact(x):
        p = M @ x
        if piecewise:
            val = pb.c @ (e + g * p + np.maximum(0.0, A * p[:, None] + C).sum(1))
        else:
            val = pb.c @ _smooth_grad(loss, t, p, s)[0]
        return val + pb.l1 @ np.abs(x[:d]) + 0.5 * pb.q @ (x[:d] ** 2)

    # f - f_mu <= mu / 2 * (sum_i c_i m + 2 sum_j l1_j), m pieces a row
    slack = 0.5 * ((A.shape[1] if piecewise else 0) + 2.0 * pb.l1.sum())
    mu0 = max(float(np.std(t)), 1e-3 * (1.0 + float(np.abs(t).max())))
    w0, b0 = pb.to_scaled(*start)
    starts = (
        np.zeros(M.shape[1]),
        np.concatenate([w0, [b0]] if pb.fit_intercept else [w0]),
    )
    x, lower = _continuation(parts, exact, starts, slack, mu0)
    out = pb.to_original(x[:d], x[d] if pb.fit_intercept else 0.0)
    return out, lower


def _multinomial_newton(pb, T, start):
    """The softmax cross-entropy's optimum by Newton's method on all classes'
    parameters together (at most 4 x 31 unknowns), the L1 part smoothed as
    in :func:`_smoothed_newton`."""
    n, d = pb.Xs.shape
    k = T.shape[1]
    M = np.hstack([pb.Xs, np.ones((n, 1))]) if pb.fit_intercept else pb.Xs
    m = M.shape[1]
    # unknowns: the weights (k x d), then the intercepts (k), so that the
    # penalty's terms are the first k * d
    order = np.concatenate(
        [(np.arange(k)[:, None] * m + np.arange(d)).ravel()]
        + ([np.arange(k) * m + d] if pb.fit_intercept else [])
    )
    q_all, l1_all = np.tile(pb.q, k), np.tile(pb.l1, k)
    pen = _Problem(None, None, None, None, l1_all, q_all, None)

    def theta(x):
        out = np.empty(k * m)
        out[order] = x
        return out.reshape(k, m)

    def parts(x, mu):
        P = M @ theta(x).T
        S = softmax(P, axis=1)
        f = pb.c @ (logsumexp(P, axis=1) - (T * P).sum(1))
        grad = ((pb.c[:, None] * (S - T)).T @ M).ravel()[order]
        Wt = pb.c[:, None, None] * (
            S[:, :, None] * np.eye(k)[None] - S[:, :, None] * S[:, None, :]
        )
        hess = np.empty((k, m, k, m))
        for a in range(k):
            for b in range(a, k):
                hess[a, :, b, :] = (M * Wt[:, a, b, None]).T @ M
                hess[b, :, a, :] = hess[a, :, b, :].T
        hess = hess.reshape(k * m, k * m)
        return _penalty_parts(pen, x[: k * d], mu, f, grad, hess[np.ix_(order, order)])

    def exact(x):
        P = M @ theta(x).T
        w = x[: k * d]
        f = pb.c @ (logsumexp(P, axis=1) - (T * P).sum(1))
        return f + l1_all @ np.abs(w) + 0.5 * q_all @ (w * w)

    W0, b0 = start
    Ws = W0 * pb.sigma
    bs = b0 + Ws @ (pb.mu / pb.sigma) if pb.fit_intercept else np.zeros(0)
    starts = (np.zeros(len(order)), np.concatenate([Ws.ravel(), bs]))
    x, lower = _continuation(parts, exact, starts, l1_all.sum(), 1.0)
    Th = theta(x)
    W = Th[:, :d] / pb.sigma
    b = Th[:, d] - W @ pb.mu if pb.fit_intercept else np.zeros(k)
    return (W, b), lower


def _exact_squared(pb, t):
    """Least squares with an l2 (or no) penalty: lstsq on the augmented
    system, minimum-norm where the columns are collinear."""
    n, d = pb.Xs.shape
    rc = np.sqrt(pb.c)
    M = pb.Xs * rc[:, None]
    if pb.fit_intercept:
        M = np.hstack([M, rc[:, None]])
    rhs = rc * t
    if np.any(pb.q > 0):
        ridge = np.zeros((d, M.shape[1]))
        ridge[:, :d] = np.diag(np.sqrt(pb.q))
        M, rhs = np.vstack([M, ridge]), np.concatenate([rhs, np.zeros(d)])
    x = np.linalg.lstsq(M, rhs, rcond=None)[0]
    return pb.to_original(x[:d], x[d] if pb.fit_intercept else 0.0)


def _sklearn_peer(case, t, s, dry=False):
    """A scikit-learn solver of exactly this column's objective (with
    ``dry``: whether there is one)."""
    fi, c = case.params["fit_intercept"], case.s64 / case.s64.sum()
    X, alpha, pen = case.X64, s["alpha"], s["penalty"]
    squared = s["loss"] == "squared_error" and pen in ("l1", "elasticnet")
    logistic = s["loss"] == "log_loss" and pen == "l2"
    if dry:
        return squared or logistic
    if squared:
        # sklearn rescales sample weights to sum to n: its objective is ours
        if pen == "l1":
            model = Lasso(alpha=alpha, fit_intercept=fi, tol=1e-12, max_iter=10**6)
        else:
            model = ElasticNet(
                alpha=alpha,
                l1_ratio=s["l1_ratio"],
                fit_intercept=fi,
                tol=1e-12,
                max_iter=10**6,
            )
        model.fit(X, t, sample_weight=c)
    elif logistic:
        # C sum c_i L + |w|^2 / 2, with sum c = 1: C = 1 / alpha
        model = LogisticRegression(
            C=1.0 / alpha, fit_intercept=fi, tol=1e-14, max_iter=10**5
        )
        model.fit(X, t > 0, sample_weight=c)
    return np.ravel(model.coef_), float(np.ravel(model.intercept_)[0]) if fi else 0.0


@dataclass
class Reference:
    f_ref: float  # the best objective found, ours included
    lower: float | None  # a certified lower bound on the optimum, or None
    f_null: float  # the objective of the zero model
    solvers: dict  # each solver's objective (summed over columns)


def reference(case, W_ours, b_ours) -> Reference:
    """The best objective of every reference solver and ours, column by
    column, in float64."""
    s = _settings(case)
    T, _ = _targets(case)
    pb = _problem(case)
    k, d = T.shape[1], case.X64.shape[1]
    cols = lambda W, b: column_objectives(case, W, b)  # noqa: E731
    f_null = float(
        cols(np.zeros((W_ours.shape[0], d)), np.zeros(W_ours.shape[0])).sum()
    )
    ours = cols(W_ours, b_ours)
    if _joint(case):
        zero = (np.zeros((k, d)), np.zeros(k))
        found = {"ours": ours[0]}
        for name, start in (("lbfgs0", zero), ("lbfgs_ours", (W_ours, b_ours))):
            found[name] = cols(*_multinomial(pb, T, start))[0]
        (W, b), lower = _multinomial_newton(pb, T, (W_ours, b_ours))
        found["newton"] = cols(W, b)[0]
        if s["penalty"] == "l2":
            lr = LogisticRegression(
                C=1.0 / s["alpha"],
                fit_intercept=pb.fit_intercept,
                tol=1e-14,
                max_iter=10**5,
            )
            lr.fit(case.X64, case.y64, sample_weight=pb.c)
            icpt = lr.intercept_ if pb.fit_intercept else np.zeros(k)
            found["logistic"] = cols(lr.coef_, icpt)[0]
        return Reference(min(found.values()), lower, f_null, found)
    found = {"ours": ours}
    lower = np.full(k, np.nan)
    for name, solve in _column_solvers(case, pb, s):
        vals = np.empty(k)
        for j in range(k):
            out = solve(T[:, j], (W_ours[j], b_ours[j]))
            if name in ("newton", "newton_smooth"):
                out, lower[j] = out[0], np.nan if out[1] is None else out[1]
            vals[j] = _one(case, j, out)
        found[name] = vals
    best = np.min(np.vstack(list(found.values())), axis=0)
    lb = None if np.isnan(lower).any() else float(lower.sum())
    return Reference(
        float(best.sum()), lb, f_null, {k_: float(v.sum()) for k_, v in found.items()}
    )


def _one(case, j, wb):
    """Column ``j``'s objective at ``(w, b)`` (the other columns at zero)."""
    k = _targets(case)[0].shape[1]
    W = np.zeros((k, case.X64.shape[1]))
    b = np.zeros(k)
    W[j], b[j] = wb
    return column_objectives(case, W, b)[j]


def _column_solvers(case, pb, s):
    loss = s["loss"]
    zero = (np.zeros(case.X64.shape[1]), 0.0)
    if loss in SMOOTH:
        yield "lbfgs0", lambda t, start: _smooth_primal(pb, loss, t, s, zero)
        yield "lbfgs_ours", lambda t, start: _smooth_primal(pb, loss, t, s, start)
        yield "newton", lambda t, start: _smoothed_newton(pb, loss, t, s, start)
        if loss == "squared_error" and s["penalty"] in ("l2", None):
            yield "lstsq", lambda t, start: _exact_squared(pb, t)
        elif _sklearn_peer(case, None, s, dry=True):
            yield "sklearn", lambda t, start: _sklearn_peer(case, t, s)
    elif loss == "perceptron":
        # max(0, -z) >= 0 and every penalty is >= 0, both 0 at the zero model:
        # the optimum is exactly 0, there
        yield "zero", lambda t, start: zero
    elif s["penalty"] in ("l1", None):
        yield "lp", lambda t, start: _lp(pb, loss, t, s)
    else:
        yield "newton_smooth", lambda t, start: _smoothed_newton(pb, loss, t, s, start)


# -------------------------------------------------------------- running
@dataclass
class Result:
    case: str
    seed: int
    exception: str | None = None
    warned: bool = False
    messages: list = field(default_factory=list)
    other_warnings: list = field(default_factory=list)
    f_ours: float = np.nan
    f_ref: float = np.nan
    lower: float | None = None
    gap: float = np.nan  # (f_ours - f_ref) / scale: a lower bound on the true gap
    gap_hi: float = np.nan  # against the certified lower bound, where known
    ref_spread: float = np.nan  # (f_ref - lower) / scale: the reference's certificate
    solvers: dict = field(default_factory=dict)
    mutated: list = field(default_factory=list)
    deterministic: bool = True
    n_iter: object = None
    dtype: str = "float64"
    seconds: float = 0.0
    loss: str = ""


def _snapshot(obj):
    if obj is None:
        return None
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if sp.issparse(obj):
        return (obj.data.copy(), obj.indices.copy(), obj.indptr.copy(), obj.shape)
    return np.array(obj, copy=True)


def _changed(obj, snap):
    if obj is None:
        return False
    if isinstance(obj, torch.Tensor):
        return not torch.equal(obj, snap)
    if sp.issparse(obj):
        now = (obj.data, obj.indices, obj.indptr)
        return obj.shape != snap[3] or not all(
            np.array_equal(a, b) for a, b in zip(now, snap[:3])
        )
    return not np.array_equal(obj, snap)


def _fit(case):
    est = case.estimator()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(case.X, case.y, sample_weight=case.sample_weight)
    return est, caught


def run_case(seed: int, *, determinism: float = np.inf) -> Result:
    """Fit case ``seed``, score it against the references, check its inputs.

    The second fit (same seed, same model?) runs when the first took less
    than ``determinism`` seconds.
    """
    start = time.perf_counter()
    case = make_case(seed)
    res = Result(case.describe(), seed, dtype=case.dtype, loss=case.params["loss"])
    snaps = {n: _snapshot(getattr(case, n)) for n in ("X", "y", "sample_weight")}
    try:
        est, caught = _fit(case)
    except Exception as exc:  # any exception on finite data is a failure
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        res.exception = (
            f"{type(exc).__name__}: {exc} [{tb.filename.split('/')[-1]}:{tb.lineno}]"
        )
        res.seconds = time.perf_counter() - start
        return res
    res.mutated = [n for n, s in snaps.items() if _changed(getattr(case, n), s)]
    res.n_iter = est.n_iter_
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            res.warned = True
            res.messages.append(str(w.message))
        else:
            res.other_warnings.append(f"{w.category.__name__}: {w.message}")
    if time.perf_counter() - start < determinism:
        again, _ = _fit(case)
        res.deterministic = np.array_equal(
            est.coef_, again.coef_, equal_nan=True
        ) and np.array_equal(est.intercept_, again.intercept_, equal_nan=True)
    W, b = _model(est, case.X64.shape[1])
    res.f_ours = float(column_objectives(case, W, b).sum())
    if np.isfinite(res.f_ours):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the references' own warnings
            ref = reference(case, W, b)
        scale = max(abs(ref.f_ref), 1e-8 * ref.f_null, 1e-12)
        res.f_ref, res.lower, res.solvers = ref.f_ref, ref.lower, ref.solvers
        res.gap = (res.f_ours - ref.f_ref) / scale
        res.gap_hi = res.gap
        if ref.lower is not None:
            res.gap_hi = (res.f_ours - ref.lower) / scale
            res.ref_spread = (ref.f_ref - ref.lower) / scale
    res.seconds = time.perf_counter() - start
    return res


def failures(res: Result) -> list[str]:
    """What case ``res`` breaks of the package's promises (empty: none)."""
    out = []
    if res.exception is not None:
        return [f"crash: {res.exception}"]
    if not np.isfinite(res.f_ours):
        out.append(f"non-finite model (objective {res.f_ours})")
    elif res.loss == "perceptron":
        # no gap promise: the perceptron's objective is minimised by the zero
        # model, and its default runs SGDClassifier's update rule instead
        # (README, "Classification"); the checks below still apply
        pass
    elif res.gap > GAP_OK and not res.warned:
        out.append(f"silent stop at gap {res.gap:.3g}")
    elif res.warned and res.gap_hi <= GAP_FALSE_WARNING:
        out.append(f"false ConvergenceWarning at gap {res.gap_hi:.3g}")
    if res.mutated:
        out.append(f"fit modified the caller's {', '.join(res.mutated)}")
    if not res.deterministic:
        out.append("a second fit gave other coefficients")
    return out


def summarize(results) -> dict:
    """Counts over a list of :class:`Result`."""
    fails = [r for r in results if failures(r)]
    f32 = [
        r.gap
        for r in results
        if r.dtype == "float32" and np.isfinite(r.gap) and r.loss != "perceptron"
    ]
    return dict(
        cases=len(results),
        exempt=sum(r.loss == "perceptron" for r in results),
        ok=sum(r.exception is None and r.gap <= GAP_OK for r in results),
        warned=sum(
            r.exception is None and r.gap > GAP_OK and r.warned for r in results
        ),
        failed=len(fails),
        crashes=sum(r.exception is not None for r in results),
        worst_float32_gap=max(f32, default=np.nan),
        worst_reference_spread=np.nanmax([r.ref_spread for r in results] + [-np.inf]),
        seconds=sum(r.seconds for r in results),
    )
