"""
Quickstart: TorchSGDRegressor next to SGDRegressor and Ridge
=============================================================

Fits scikit-learn's diabetes data set three ways inside the same
``StandardScaler`` pipeline and prints the test R^2, the fit time and the
number of epochs side by side. ``TorchSGDRegressor`` takes the same parameter
names as ``SGDRegressor`` and minimises the same objective; with
``penalty="l2"`` its optimum is Ridge's (with Ridge's ``alpha = alpha * n``).
"""

import time

from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge, SGDRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gd import TorchSGDRegressor

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
alpha = 1e-4

models = {
    "TorchSGDRegressor": TorchSGDRegressor(alpha=alpha, random_state=0),
    "SGDRegressor": SGDRegressor(alpha=alpha, random_state=0),
    "Ridge": Ridge(alpha=alpha * len(X_train)),
}

print(f"diabetes: {X_train.shape[0]} training rows, {X.shape[1]} features\n")
print(f"{'model':<20}{'test R^2':>10}{'fit time (ms)':>16}{'epochs':>8}")
for name, model in models.items():
    pipe = make_pipeline(StandardScaler(), model)
    start = time.perf_counter()
    pipe.fit(X_train, y_train)
    elapsed = 1e3 * (time.perf_counter() - start)
    n_iter = getattr(pipe[-1], "n_iter_", None)
    epochs = "-" if n_iter is None else str(int(n_iter))
    r2 = pipe.score(X_test, y_test)
    print(f"{name:<20}{r2:>10.4f}{elapsed:>16.1f}{epochs:>8}")
