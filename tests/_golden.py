"""Golden results: fits whose outcome a refactoring of the engine must keep.

Three families, each a dict ``{case name: (estimator, X, y)}`` built here and
recorded by ``python tests/_golden.py --write`` into
``tests/fixtures/golden.npz`` (with the commit they were taken at):

* ``EVERY_COMBINATION``: the grid of ``test_reference.test_every_combination``
  (every loss x penalty x optimizer, 15 epochs of minibatches of 32, fixed
  seed), whose coefficients depend on every step of every solver;
* ``DEFAULT_FITS``: the default fits of ``benchmarks/defaults.py`` (bundled
  data sets, raw and standardised, a tf-idf corpus);
* ``CV_FITS``: default cross-validated searches over every loss family,
  their choice (``alpha_``, ``l1_ratio_``) and mean test scores.

``tests/test_golden.py`` refits each case and compares.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "golden.npz"
sys.path.insert(0, str(ROOT / "tests"))

from _objective import LOSS_NAMES, PENALTY_NAMES  # noqa: E402

from sklearn_gd import (  # noqa: E402
    TorchSGDClassifier,
    TorchSGDClassifierCV,
    TorchSGDRegressor,
    TorchSGDRegressorCV,
)
from sklearn_gd.solvers._optimizers import OPTIMIZERS  # noqa: E402


# ------------------------------------------------------ every combination
@functools.cache
def sparse_problem():
    """``test_reference.sparse_problem``: 120 x 8, three true coefficients."""
    rng = np.random.RandomState(1)
    X = rng.randn(120, 8)
    w = np.r_[1.5, -2.0, 1.0, np.zeros(5)]
    return X, X @ w + 0.3 + 0.1 * rng.randn(120)


def every_combination() -> dict:
    X, y = sparse_problem()
    cases = {}
    for loss, penalty, optimizer in itertools.product(
        LOSS_NAMES, PENALTY_NAMES, sorted(OPTIMIZERS)
    ):
        if not OPTIMIZERS[optimizer].supports_prox and penalty in ("l1", "elasticnet"):
            continue
        est = TorchSGDRegressor(
            loss=loss,
            penalty=penalty,
            optimizer=optimizer,
            alpha=0.2,
            batch_size=32,
            max_iter=15,
            tol=None,
            random_state=0,
        )
        cases[f"combo {loss} {penalty} {optimizer}"] = (est, X, y)
    return cases


# ----------------------------------------------------------- default fits
def default_fits() -> dict:
    # benchmarks/defaults.py, loaded from its file: the benchmarks folder
    # stays off sys.path, where its modules (_data, run, ...) would shadow
    # others' of the same name in every process that inherits the path (a
    # Dask cluster's spawned workers died on it)
    spec = importlib.util.spec_from_file_location(
        "_golden_defaults", ROOT / "benchmarks" / "defaults.py"
    )
    defaults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(defaults)

    cases = {}
    for data, kind, params, _ in defaults.CASES:
        X, y = defaults.load(data)
        cls = TorchSGDClassifier if kind == "clf" else TorchSGDRegressor
        name = " ".join(["default", data] + [f"{k}={v}" for k, v in params.items()])
        cases[name] = (cls(random_state=0, **params), X, y)
    return cases


# ---------------------------------------------------------------- CV fits
@functools.cache
def _cv_data():
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.preprocessing import StandardScaler

    def std(X):
        return StandardScaler().fit_transform(X)

    Xr, yr = load_diabetes(return_X_y=True)
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xi, yi = load_iris(return_X_y=True)
    return (std(Xr), yr), (std(Xb), yb), (std(Xi), yi)


REGRESSION_LOSSES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
    "absolute_error",
    "quantile",
)
CLASSIFICATION_LOSSES = (
    "hinge",
    "log_loss",
    "modified_huber",
    "squared_hinge",
)


def cv_fits() -> dict:
    """Every loss with its default penalty and with "l1", on 5 alphas and 3
    folds (small enough for the test suite's slow mode)."""
    (Xr, yr), (Xb, yb), (Xi, yi) = _cv_data()
    cases = {}
    common = dict(alphas=5, cv=3, random_state=0)
    for loss, penalty in itertools.product(REGRESSION_LOSSES, ("l2", "l1")):
        est = TorchSGDRegressorCV(loss=loss, penalty=penalty, **common)
        cases[f"cv reg {loss} {penalty}"] = (est, Xr, yr)
    for loss, penalty in itertools.product(CLASSIFICATION_LOSSES, ("l2", "l1")):
        est = TorchSGDClassifierCV(loss=loss, penalty=penalty, **common)
        cases[f"cv clf {loss} {penalty}"] = (est, Xb, yb)
    est = TorchSGDClassifierCV(loss="log_loss", multi_class="multinomial", **common)
    cases["cv clf iris multinomial"] = (est, Xi, yi)
    return cases


FAMILIES = {
    "combo": every_combination,
    "default": default_fits,
    "cv": cv_fits,
}


def record(est) -> dict:
    """What a fitted case is compared on."""
    out = {
        "coef": np.asarray(est.coef_, dtype=np.float64),
        "intercept": np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64)),
    }
    if hasattr(est, "cv_results_"):
        out["choice"] = np.array([est.alpha_, est.l1_ratio_], dtype=np.float64)
        out["scores"] = np.asarray(est.cv_results_["mean_test_score"], np.float64)
    return out


def fit_case(est, X, y):
    """Fit ``est`` (its warnings are the suite's business elsewhere)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def write(path: Path = FIXTURE) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    arrays = {"commit": np.array(commit)}
    for family, make in FAMILIES.items():
        for name, (est, X, y) in make().items():
            for key, value in record(fit_case(est, X, y)).items():
                arrays[f"{name}|{key}"] = value
            print(name, flush=True)
    np.savez_compressed(path, **arrays)


def load(path: Path = FIXTURE) -> dict:
    """``{case name: {key: array}}`` and the commit, from the fixture."""
    with np.load(path) as f:
        cases: dict = {}
        for key in f.files:
            if key == "commit":
                continue
            name, field = key.split("|")
            cases.setdefault(name, {})[field] = f[key]
        return cases, str(f["commit"])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/_golden.py --write")
    write()
