"""Golden results (``tests/_golden.py``): a refactoring changes no fit.

Each case is refitted and compared with the fixture recorded before the
engine's layout changed. A case reproduces its golden when its coefficients
and intercepts agree within 1e-10 relative to their largest magnitude: float64
fits through the same operations agree to rounding (about 1e-15 a step; the
golden fits take at most a few hundred steps, each a contraction), float32
fits likewise at their own precision since the golden was taken from the same
computation. A case whose computation changed on purpose is listed in
``CHANGED`` with the reason, and must then reach the same optimum within its
own test's tolerance instead (:func:`_same_optimum`).
"""

from __future__ import annotations

import copy
import functools
import warnings

import numpy as np
import pytest
from _golden import FAMILIES, fit_case, load, record
from _objective import classifier_objective, estimator_objective, objective
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

GOLDEN, COMMIT = load()
# relative agreement of a reproduced golden (see the module's docstring)
RTOL = 1e-10
# a changed default fit ends within the defaults' promise of its golden's
# objective: the relative gap 1e-4 (tests/_sweep.py's GAP_OK) up to which a
# fit may stop without a warning (Smoothing's certificate, for one, stops at
# a relative duality gap of 1e-4)
OPTIMUM_RTOL = 1e-4
# a changed CV search scores what GridSearchCV over the default base
# estimator scores, within test_cv's 1e-6 (the same fits, up to rounding)
SCORE_ATOL = 1e-6

# case -> why its computation changed since the golden was recorded
_HALVING = (
    "Newton's backtracking halves its step (it took the quadratic's "
    "minimiser, down to a hundredth, which stalls on piecewise-quadratic "
    "curvature): Smoothing's inner Newton steps differ"
)
_EACH = (
    "the search fits each configuration with the base estimator's default "
    "solver (Smoothing, FISTA, Newton with its certificate), as GridSearchCV "
    "does, where it trained SGD columns to SGD's tol, or Newton columns"
)
_CD = (
    "the squared loss with an L1 part on its moments takes the search's "
    "coordinate descent to a duality gap of 1e-12 (it took FISTA, stopped at "
    "a gradient mapping 1e-5 of its first: 0.4% off in a coefficient)"
)
_PRODUCTS = (
    "a dense single-output epoch is torch's two products where it was the "
    "compiled kernel's one pass: sums in another order, moved by 1e-11 to "
    "4e-9 of the largest coefficient after 15 epochs of adagrad or L-BFGS"
)
_ONE_LBFGS = (
    'optimizer="lbfgs" is the package\'s one L-BFGS (QuasiNewton: the '
    "preconditioned metric, Armijo backtracking) where it was torch.optim.LBFGS "
    "with its strong-Wolfe search. After the combination's 15 iterations the "
    "smooth losses' objectives agree to 1e-10; on the kinked losses "
    "(absolute_error, epsilon_insensitive, quantile), where neither converges "
    "in 15, they differ by -1.4e-3 to +4.9e-4 relative, lower in 4 of 6"
)
CHANGED: dict[str, str] = {
    **{
        f"combo {loss} {penalty} lbfgs": _ONE_LBFGS
        for loss in [
            "absolute_error",
            "epsilon_insensitive",
            "huber",
            "quantile",
            "squared_epsilon_insensitive",
            "squared_error",
        ]
        for penalty in [None, "l2"]
    },
    **{
        f"combo {loss} {penalty} {optimizer}": _PRODUCTS
        for loss, penalty, optimizer in [
            ("huber", None, "adagrad"),
            ("huber", "elasticnet", "adagrad"),
            ("huber", "l1", "adagrad"),
            ("huber", "l2", "adagrad"),
        ]
    },
    "default diabetes std penalty=elasticnet": _CD,
    "cv reg squared_error l1": _CD,
    "default breast_cancer std loss=hinge": _HALVING,
    "default digits raw": _HALVING,
    "default regression loss=epsilon_insensitive": _HALVING,
    **{
        f"cv {kind} {loss} {penalty}": _EACH
        for kind, loss, penalty in [
            ("clf", "hinge", "l1"),
            ("clf", "hinge", "l2"),
            ("clf", "log_loss", "l1"),
            ("clf", "modified_huber", "l1"),
            ("clf", "squared_hinge", "l1"),
            ("reg", "absolute_error", "l1"),
            ("reg", "absolute_error", "l2"),
            ("reg", "epsilon_insensitive", "l1"),
            ("reg", "epsilon_insensitive", "l2"),
            ("reg", "huber", "l1"),
            ("reg", "huber", "l2"),
            ("reg", "quantile", "l1"),
            ("reg", "quantile", "l2"),
            ("reg", "squared_epsilon_insensitive", "l1"),
        ]
    },
}


def _cases(family):
    return [pytest.param(name, id=name) for name in sorted(FAMILIES[family]())]


@functools.cache
def _built(family):
    return FAMILIES[family]()


def _agrees(new, old, rtol=RTOL) -> bool:
    scale = max(float(np.max(np.abs(old), initial=0.0)), 1e-300)
    return bool(np.all(np.abs(np.asarray(new) - old) <= rtol * scale))


def _objective_of(est, X, y) -> float:
    if hasattr(est, "classes_"):
        return classifier_objective(est, X, y)
    return estimator_objective(est, X, y)


def _golden_objective(est, X, y, golden) -> float:
    """The objective of the golden's parameters, in the fitted model's
    settings (a copy of it holding the golden coefficients)."""
    old = copy.deepcopy(est)
    old.coef_ = golden["coef"].astype(est.coef_.dtype).reshape(est.coef_.shape)
    old.intercept_ = (
        golden["intercept"].astype(est.coef_.dtype).reshape(np.shape(est.intercept_))
    )
    return _objective_of(old, X, y)


def _same_optimum(family, est, X, y, golden):
    if family == "combo":
        # test_every_combination's tolerance: a finite fit below the zero model
        f_zero = objective(
            np.zeros(X.shape[1]),
            0.0,
            X,
            y,
            loss=est.loss,
            penalty_name=est.penalty,
            alpha=est.alpha,
        )
        assert np.all(np.isfinite(est.coef_))
        assert _objective_of(est, X, y) <= f_zero
        return
    if family == "default":
        f_new, f_old = _objective_of(est, X, y), _golden_objective(est, X, y, golden)
        assert f_new <= f_old + OPTIMUM_RTOL * abs(f_old), (f_new, f_old)
        return
    # cv: GridSearchCV's scores and choice over the same grid and splits
    search = GridSearchCV(
        est._base_estimator(1.0, est.l1_ratio_),
        {"alpha": list(np.ravel(est.alphas_))},
        cv=est.cv,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    np.testing.assert_allclose(
        est.cv_results_["mean_test_score"],
        search.cv_results_["mean_test_score"],
        rtol=0,
        atol=SCORE_ATOL,
    )
    assert est.alpha_ == search.best_params_["alpha"]


def _check(family, name):
    est, X, y = _built(family)[name]
    est = fit_case(est, X, y)
    golden = GOLDEN[name]
    new = record(est)
    if name in CHANGED:
        _same_optimum(family, est, X, y, golden)
        return
    for key, old in golden.items():
        assert new[key].shape == old.shape, key
        assert _agrees(new[key], old), (
            f"{name}: {key} moved from the golden of {COMMIT} by "
            f"{np.max(np.abs(new[key] - old)):.3g} (largest |value| "
            f"{np.max(np.abs(old)):.3g}); if on purpose, list it in CHANGED"
        )


def test_every_case_has_a_golden():
    names = {n for make in FAMILIES.values() for n in make()}
    assert names == set(GOLDEN)
    assert set(CHANGED) <= names


@pytest.mark.parametrize("name", _cases("combo"))
def test_every_combination_golden(name):
    _check("combo", name)


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases("default"))
def test_default_fit_golden(name):
    _check("default", name)


@pytest.mark.slow
@pytest.mark.parametrize("name", _cases("cv"))
def test_cv_golden(name):
    _check("cv", name)
