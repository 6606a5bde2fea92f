"""
Choosing alpha by cross-validation, every fold in one fit
=========================================================

:class:`~sklearn_gd.TorchSGDRegressorCV` searches ``alpha`` as
``GridSearchCV(TorchSGDRegressor(), {"alpha": alphas})`` does, but trains
every alpha x fold together: each configuration has its own penalty strength
and its own sample weights (zero on its fold's held-out rows). For the
squared loss one pass over ``X`` gives every fold's moments, from which every
configuration is solved to its optimum (in closed form for the ridge penalty,
by coordinate descent to a duality-gap certificate with an L1 part) without
reading ``X`` again.

This script draws the validation curve of every fold (R^2 on the held-out
rows against alpha, lasso penalty, diabetes data) from that one fit, next to
the mean curve GridSearchCV computes with one default fit per alpha x fold,
and prints both times. The curves coincide to the base estimator's default
tolerance: the search is the same, only the work is shared. It writes
``cv_path.png``.
"""

# %%
import os
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler

from sklearn_gd import TorchSGDRegressor, TorchSGDRegressorCV

FAST = os.environ.get("SKLEARN_GD_FAST", "0") not in ("", "0")
# where the figures are saved (the gallery build sets it: no __file__ there)
OUT = os.environ.get("SKLEARN_GD_EXAMPLES_OUT")
OUT = Path(OUT) if OUT else Path(__file__).parent / "output"
try:
    import matplotlib

    if "MPLBACKEND" not in os.environ and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")  # headless: write files, open no window
    import matplotlib.pyplot as plt
except ImportError:  # the numbers are still printed
    plt = None

# %%
# The data, standardised once (inside a search, a scaler in a pipeline would
# be fitted per fold by GridSearchCV but once by the CV estimator), and
# fixed splits, so that both searches see the same folds.
X, y = load_diabetes(return_X_y=True)
X = StandardScaler().fit_transform(X)
n_alphas = 8 if FAST else 30
cv = list(KFold(5, shuffle=True, random_state=0).split(X))

# %%
# One fit: every alpha x fold, LassoCV's grid (from the smallest alpha that
# zeros every coefficient down to a thousandth of it).
start = time.perf_counter()
search = TorchSGDRegressorCV(penalty="l1", alphas=n_alphas, cv=cv)
search.fit(X, y)
ours = time.perf_counter() - start
alphas = search.alphas_
folds = np.array([search.cv_results_[f"split{i}_test_score"] for i in range(5)])

# %%
# The same search, one fit per alpha x fold.
start = time.perf_counter()
grid = GridSearchCV(
    TorchSGDRegressor(penalty="l1"),
    {"alpha": list(alphas)},
    cv=cv,
).fit(X, y)
theirs = time.perf_counter() - start
gap = np.abs(
    grid.cv_results_["mean_test_score"] - search.cv_results_["mean_test_score"]
)
print(
    f"{len(alphas)} alphas x 5 folds: TorchSGDRegressorCV {ours:.2f} s, "
    f"GridSearchCV(TorchSGDRegressor) {theirs:.2f} s ({theirs / ours:.0f}x)"
)
print(
    f"chosen alpha: {search.alpha_:.4g} (GridSearchCV: "
    f"{grid.best_params_['alpha']:.4g}); largest difference of the mean R^2 "
    f"curves: {gap.max():.1e}"
)
print(f"refitted model: {np.count_nonzero(search.coef_)} of 10 coefficients non-zero")

# %%
if plt is not None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, scores in enumerate(folds):
        ax.plot(
            alphas, scores, color="0.6", lw=1, label="each fold" if i == 0 else None
        )
    ax.plot(
        alphas,
        search.cv_results_["mean_test_score"],
        color="C0",
        lw=2.5,
        label=f"mean, TorchSGDRegressorCV ({ours:.2f} s)",
    )
    ax.plot(
        alphas,
        grid.cv_results_["mean_test_score"],
        "o",
        color="C1",
        ms=4,
        label=f"mean, GridSearchCV ({theirs:.2f} s)",
    )
    ax.axvline(search.alpha_, color="C0", ls=":", label=f"alpha_ = {search.alpha_:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha (lasso penalty)")
    ax.set_ylabel("held-out R^2")
    ax.set_title("Validation curves of every fold, from one fit")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "cv_path.png", dpi=90)
    print(f"saved {OUT / 'cv_path.png'}")
