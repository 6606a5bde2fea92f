"""Synthetic workloads of the benchmark (fixed seeds) and their objectives.

Every workload is ``min_{w,b} mean_i L(y_i, x_i.w + b) + alpha R(w)`` in the
package's (= SGDRegressor's) convention. The design matrix is Gaussian with a
mildly correlated covariance (eigenvalues spread geometrically over
[1/COND, 1], random rotation): independent features would make every
gradient method converge in a handful of steps, which flatters all of them.
"""

from __future__ import annotations

import numpy as np

COND = 10.0  # condition number of the feature covariance


def make_design(n, d, seed, *, scales=False, noise="gauss", sparse_coef=False):
    """float64 ``X, y, coef`` of a dense synthetic linear regression."""
    rng = np.random.default_rng(seed)
    eig = np.geomspace(1.0, 1.0 / COND, d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    M = (Q * np.sqrt(eig)) @ Q.T  # symmetric square root of the covariance
    X = np.empty((n, d))
    step = max(1, 2**22 // d)
    for s in range(0, n, step):  # in blocks: bounded temporaries
        e = min(n, s + step)
        X[s:e] = rng.standard_normal((e - s, d)) @ M
    coef = rng.standard_normal(d)
    if sparse_coef:
        coef[rng.random(d) < 0.7] = 0.0
    y = X @ coef + 3.0
    if noise == "gauss":
        y += rng.standard_normal(n)
    elif noise == "outliers":  # Gaussian noise, 5 % gross outliers
        y += rng.standard_normal(n)
        out = rng.random(n) < 0.05
        y[out] += rng.standard_normal(out.sum()) * 50.0
    elif noise == "laplace":
        y += rng.laplace(size=n)
    if scales:
        # feature scales spread over 1e-2 .. 1e2 (contestants get a StandardScaler)
        X *= np.geomspace(1e-2, 1e2, d)[rng.permutation(d)]
    return X, y, coef


def loss_values(loss, r, *, epsilon=0.1, quantile=0.5):
    """Pointwise loss of residuals ``r = y - p`` (float64)."""
    if loss == "squared_error":
        return 0.5 * r * r
    if loss == "huber":
        a = np.abs(r)
        q = np.minimum(a, epsilon)
        return q * (a - 0.5 * q)
    if loss == "quantile":
        return np.maximum(quantile * r, (quantile - 1.0) * r)
    raise ValueError(loss)


def penalty_value(w, penalty, alpha, l1_ratio=0.15):
    if penalty is None:
        return 0.0
    if penalty == "l2":
        return alpha * 0.5 * float(w @ w)
    if penalty == "l1":
        return alpha * float(np.abs(w).sum())
    if penalty == "elasticnet":
        return alpha * (
            l1_ratio * float(np.abs(w).sum()) + (1 - l1_ratio) * 0.5 * float(w @ w)
        )
    raise ValueError(penalty)


class Objective:
    """The objective of one workload, evaluated in float64.

    For the squared loss it keeps centred second moments (one pass over X,
    then O(d^2) per evaluation, no cancellation between large terms); for
    the other losses it keeps a float64 copy of X.
    """

    def __init__(
        self, X, y, *, loss, penalty, alpha, l1_ratio=0.15, epsilon=0.1, quantile=0.5
    ):
        self.loss, self.penalty, self.alpha = loss, penalty, alpha
        self.l1_ratio, self.epsilon, self.quantile = l1_ratio, epsilon, quantile
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        if loss == "squared_error":
            mx = np.zeros(d)
            step = max(1, 2**22 // d)
            for s in range(0, n, step):
                mx += X[s : s + step].sum(0, dtype=np.float64)
            mx /= n
            my = y.mean()
            G = np.zeros((d, d))
            c = np.zeros(d)
            for s in range(0, n, step):
                Xc = np.asarray(X[s : s + step], dtype=np.float64) - mx
                G += Xc.T @ Xc
                c += Xc.T @ (y[s : s + step] - my)
            self.mx, self.my = mx, my
            self.G, self.c = G / n, c / n
            self.yy = float(((y - my) ** 2).mean())
        else:
            self.X = np.asarray(X, dtype=np.float64)
            self.y = y

    def __call__(self, w, b):
        w = np.asarray(w, dtype=np.float64).ravel()
        b = float(np.asarray(b, dtype=np.float64).ravel()[0])
        if self.loss == "squared_error":
            off = self.my - self.mx @ w - b
            data = 0.5 * (self.yy - 2 * self.c @ w + w @ self.G @ w + off * off)
        else:
            r = self.y - (self.X @ w + b)
            data = float(
                loss_values(
                    self.loss, r, epsilon=self.epsilon, quantile=self.quantile
                ).mean()
            )
        return data + penalty_value(w, self.penalty, self.alpha, self.l1_ratio)

    def ridge_solution(self):
        """Exact optimum of squared + l2 (normal equations in float64)."""
        d = self.G.shape[0]
        w = np.linalg.solve(self.G + self.alpha * np.eye(d), self.c)
        return w, self.my - self.mx @ w

    def lipschitz(self):
        """Largest eigenvalue of E[x~ x~'] (x~ = [x, 1]), the curvature bound."""
        if self.loss == "squared_error":
            d = self.G.shape[0]
            A = np.empty((d + 1, d + 1))
            A[:d, :d] = self.G + np.outer(self.mx, self.mx)
            A[:d, d] = A[d, :d] = self.mx
            A[d, d] = 1.0
            return float(np.linalg.eigvalsh(A)[-1])
        X = self.X
        v = np.ones(X.shape[1] + 1) / np.sqrt(X.shape[1] + 1)
        lam = 0.0
        for _ in range(50):
            u = X @ v[:-1] + v[-1]
            w = np.append(X.T @ u, u.sum()) / X.shape[0]
            lam = np.linalg.norm(w)
            v = w / lam
        return float(lam)
