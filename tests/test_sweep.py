"""The generated sweep of default fits: the permanent safety net (issue 26).

Every test here fits a default estimator on a case drawn from an integer
seed by :func:`_sweep.make_case` and checks it against float64 reference
solvers of the same objective (see ``tests/_sweep.py`` for the generator,
the references and the tolerances):

* ``test_default_sweep``: seeds ``0 .. len(COMBOS) - 1``, one case for each
  loss x penalty x ``fit_intercept`` x estimator (x multinomial), in the
  default suite (about a minute on 2 cores);
* the long mode, the next ``10 * len(COMBOS)`` seeds (``LONG_SEEDS``), is
  ``python benchmarks/sweep.py 128 1408``: 1280 fits against their
  references take longer than a test suite should;
* ``test_regression_seed``: every seed of the long range that ever failed,
  ``REGRESSION_SEEDS``, kept when fixed (``-m slow``; the default range runs
  anyway); one still open is a strict expected failure naming its defect
  (``OPEN``), so that its fix turns the test red until the entry goes;
* the repros of issue 26, as named tests.

``python benchmarks/sweep.py START STOP`` runs any seed range and prints the
counts and every failure.
"""

import warnings

import numpy as np
import pytest
from _objective import classifier_objective, estimator_objective, objective
from _sweep import (
    COMBOS,
    GAP_FALSE_WARNING,
    GAP_OK,
    case_from_arrays,
    failures,
    gap_of,
    make_case,
    run_case,
)
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import QuantileRegressor

from sklearn_gd import TorchSGDRegressor

DEFAULT_SEEDS = range(len(COMBOS))
LONG_SEEDS = range(len(COMBOS), 11 * len(COMBOS))
# the long range's seeds that ever failed (at 5a7853b, seeds 128..306:
# benchmarks/results/SWEEP_FINDINGS_5a7853b.md; since, the whole range
# 128..1407): append, never remove, so that a fixed defect stays fixed
REGRESSION_SEEDS = [
    129,
    131,
    137,
    141,
    142,
    143,
    144,
    146,
    151,
    153,
    154,
    155,
    163,
    166,
    168,
    169,
    171,
    173,
    174,
    175,
    177,
    180,
    181,
    186,
    188,
    190,
    191,
    192,
    193,
    194,
    195,
    200,
    201,
    202,
    203,
    204,
    207,
    208,
    209,
    210,
    211,
    212,
    213,
    214,
    215,
    216,
    218,
    224,
    226,
    229,
    231,
    232,
    233,
    235,
    236,
    242,
    243,
    246,
    249,
    250,
    251,
    253,
    254,
    257,
    258,
    262,
    263,
    264,
    265,
    266,
    267,
    268,
    274,
    276,
    278,
    280,
    282,
    283,
    285,
    286,
    290,
    291,
    292,
    294,
    299,
    302,
    303,
    305,
    306,
    356,
    397,
    442,
    579,
    587,
    635,
    671,
    699,
    712,
    739,
    777,
    832,
    835,
    838,
    839,
    891,
    941,
    961,
    972,
    974,
    994,
    1085,
    1102,
    1141,
    1165,
    1196,
    1217,
    1274,
    1300,
    1350,
    1402,
    1250,
    1284,
]

# the open defects, from the long mode (benchmarks/sweep.py 0 1408): none
# is left. Fixed since: the multinomial L1 fits that stopped silently on
# the gradient mapping (635, 891, 1274, 1402) are certified, and on float64
# data solved by proximal Newton; the non-smooth losses with elasticnet
# (420, 941, 1196, 1300) get, at the fit's last check, the kink set's point
# of least gap with the L2 part's miss priced in (the exact equalities could
# not be met, or only far from the kinks); coordinate descent on duplicated
# columns (1284) polishes by an active-set search, where the solve on its
# support had a wrong sign; the guarded solve judges each Cholesky pivot on
# its own diagonal, not the largest, where a column of mean -7e4 beside the
# intercept had every Newton system ridged (994 and 1250, huber + L1 in
# float32: a certificate 2% off its equalities; 254, multinomial without a
# penalty: Newton's ridged steps crawled). The tables stay, for the next.
SILENT_STOPS: dict[int, str] = {}
FALSE_WARNINGS: dict[int, str] = {}
OPEN = {
    **{k: f"open: silent stop, {v}" for k, v in SILENT_STOPS.items()},
    **{k: f"open: false ConvergenceWarning, {v}" for k, v in FALSE_WARNINGS.items()},
}
# within rounding of a threshold: another CPU may pass them (not strict)
BORDERLINE = {202, 1141}

# a second fit checks determinism; in the default suite only where the first
# took under a quarter second (the slow fits are those that run to max_iter,
# and would cost most of the minute), every case in the long mode
FAST_FIT_S = 0.25


def _check(seed, determinism):
    res = run_case(seed, determinism=determinism)
    problems = failures(res)
    assert not problems, (
        f"{res.case}\n  " + "\n  ".join(problems) + f"\n  f_ours={res.f_ours!r} "
        f"f_ref={res.f_ref!r} solvers={res.solvers} warnings={res.messages}"
    )


@pytest.mark.parametrize("seed", DEFAULT_SEEDS)
def test_default_sweep(seed):
    _check(seed, FAST_FIT_S)


def _regression_param(seed):
    if seed not in OPEN:
        return seed
    strict = seed not in BORDERLINE
    mark = pytest.mark.xfail(reason=OPEN[seed], strict=strict)
    return pytest.param(seed, marks=mark)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [_regression_param(s) for s in REGRESSION_SEEDS])
def test_regression_seed(seed):
    _check(seed, np.inf)


# ------------------------------------------------------ the harness itself
@pytest.mark.parametrize("seed", [0, 1, 14, 48, 57, 60, 72, 121])
def test_sweep_objective_is_the_suites_objective(seed):
    # the sweep's column objectives add up to tests/_objective.py's formula
    # (which has no sample weights for the classifier: unweighted cases only)
    case = make_case(seed)
    est = case.estimator().fit(case.X, case.y, sample_weight=case.sample_weight)
    from _sweep import _model, column_objectives

    total = column_objectives(case, *_model(est, case.X64.shape[1])).sum()
    if case.kind == "regressor":
        ref = estimator_objective(est, case.X64, case.y64, case.s64)
    else:
        assert case.sample_weight is None
        ref = classifier_objective(est, case.X64, case.y64)
    np.testing.assert_allclose(total, ref, rtol=1e-12)


@pytest.mark.parametrize("penalty", ["l1", None])
@pytest.mark.parametrize("loss, quantile", [("quantile", 0.3), ("absolute_error", 0.5)])
def test_lp_reference_is_quantile_regressors_optimum(loss, quantile, penalty):
    # the sweep's own LP (centred, scaled columns; sample weights) reaches
    # scikit-learn's QuantileRegressor(solver="highs") optimum: both are exact
    # LP solutions, so they agree to HiGHS's feasibility tolerance (1e-10 on
    # the slacks, the loss itself), far below the sweep's 1e-6
    rng = np.random.RandomState(0)
    X, y = make_regression(150, 4, noise=5, random_state=1)
    X = X * np.logspace(-2, 2, 4) + 30.0
    sw = rng.lognormal(size=150)
    alpha = 1e-3 if penalty else 0.0
    params = dict(loss=loss, penalty=penalty, alpha=alpha or 1e-4, quantile=quantile)
    case = case_from_arrays("regressor", params, X, y, sw)
    zero = np.zeros((1, 4)), np.zeros(1)
    from _sweep import reference

    ref = reference(case, *zero)
    qr_alpha = alpha / 2 if loss == "absolute_error" else alpha
    qr = QuantileRegressor(quantile=quantile, alpha=qr_alpha, solver="highs")
    qr.fit(X, y, sample_weight=sw)
    kw = dict(loss=loss, penalty_name=penalty, alpha=params["alpha"], quantile=quantile)
    f_qr = objective(qr.coef_, qr.intercept_, X, y, sample_weight=sw, **kw)
    np.testing.assert_allclose(ref.solvers["lp"], f_qr, rtol=1e-8)


def test_case_generator_is_stable():
    # these seeds are regression cases: the same seed must give the same
    # case on every machine and forever (append to COMBOS, never reorder)
    case = make_case(16)
    assert case.describe().startswith(
        "seed=16 regressor loss=epsilon_insensitive penalty=l2 fit_intercept=True"
    )
    assert case.X64.shape == (209, 15) and case.layout == "csr"
    assert case.dtype == "float64" and case.y64.shape == (209,)
    case = make_case(59)
    assert case.kind == "classifier" and case.params["loss"] == "log_loss"
    assert case.X64.shape == (217, 13) and case.layout == "torch"
    assert make_case(59).describe() == case.describe()
    np.testing.assert_array_equal(make_case(59).X64, case.X64)


def test_unsorted_csr_is_unsorted():
    case = make_case(0)  # a CSR case
    assert case.layout == "csr" and not case.X.has_sorted_indices
    assert any(
        np.any(np.diff(case.X.indices[a:b]) < 0)
        for a, b in zip(case.X.indptr[:-1], case.X.indptr[1:])
    )


# ------------------------------------------------- the repros of issue 26
def _fit_recording(est, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return any(issubclass(w.category, ConvergenceWarning) for w in caught)


def test_issue26_huber_float32_is_not_a_constant_model():
    # make_regression(300, 6, noise=1, random_state=0) on float32: R^2 was
    # -0.0015 after 1 iteration ("no step decreases the objective"); float32
    # must reach the float64 optimum to float32's precision (gap <= 1e-4)
    X, y = make_regression(300, 6, noise=1, random_state=0)
    X32 = X.astype(np.float32)
    est = TorchSGDRegressor(loss="huber")
    _fit_recording(est, X32, y)
    assert est.score(X, y) > 0.99
    case = case_from_arrays("regressor", est.get_params(), X32, y)
    gap, _ = gap_of(case, est)
    assert gap <= GAP_OK


PIECEWISE = ["absolute_error", "quantile", "epsilon_insensitive"]


@pytest.mark.parametrize("loss", PIECEWISE)
@pytest.mark.parametrize("n_targets", [1, 2])
def test_issue26_unpenalised_piecewise_linear_does_not_crash(loss, n_targets):
    # make_regression(300, 5, noise=10, random_state=3): LinAlgError
    # "Singular matrix" from newton_solve's unguarded np.linalg.solve, also
    # with a 2-D y; the fit must end at the LP's optimum or warn
    X, y = make_regression(300, 5, noise=10, n_targets=n_targets, random_state=3)
    est = TorchSGDRegressor(loss=loss, penalty=None)
    warned = _fit_recording(est, X, y)
    gap, _ = gap_of(case_from_arrays("regressor", est.get_params(), X, y), est)
    assert gap <= GAP_OK or warned


@pytest.mark.parametrize(
    "loss, quantile, shape, random_state",
    [
        ("quantile", 0.8, (300, 6, 1.0), 0),
        ("quantile", 0.8, (300, 6, 1.0), 2),
        ("absolute_error", 0.5, (2000, 20, 10.0), 1),
    ],
)
def test_issue26_unpenalised_singular_newton_datasets(
    loss, quantile, shape, random_state
):
    # more datasets next to the benchmark's on which the same LinAlgError
    # was raised at 5a7853b
    n, d, noise = shape
    X, y = make_regression(n, d, noise=noise, random_state=random_state)
    est = TorchSGDRegressor(loss=loss, penalty=None, quantile=quantile)
    warned = _fit_recording(est, X, y)
    gap, _ = gap_of(case_from_arrays("regressor", est.get_params(), X, y), est)
    assert gap <= GAP_OK or warned


@pytest.mark.parametrize("quantile", [0.5, 0.8])
def test_issue26_no_false_warning_on_unpenalised_quantile(quantile):
    # within 1e-10 of QuantileRegressor(alpha=0) and still a
    # ConvergenceWarning suggesting float64 for float64 data
    X, y = make_regression(300, 5, noise=10, random_state=0)
    est = TorchSGDRegressor(loss="quantile", penalty=None, quantile=quantile)
    warned = _fit_recording(est, X, y)
    gap, _ = gap_of(case_from_arrays("regressor", est.get_params(), X, y), est)
    assert gap <= GAP_OK
    assert not (warned and gap <= GAP_FALSE_WARNING), f"false warning at gap {gap:.2e}"


@pytest.mark.parametrize(
    "loss, quantile, random_state",
    [("quantile", 0.8, 3), ("quantile", 0.8, 1), ("absolute_error", 0.5, 2)],
)
def test_issue26_l1_piecewise_linear_within_1e4_of_quantile_regressor(
    loss, quantile, random_state
):
    # penalty="l1": fits ended 1.7e-4 to 4.8e-4 above QuantileRegressor(alpha)
    # (highs, exact) on make_regression(300, 6, noise=1), against the
    # README's "all within 1e-4"; a warning does not excuse a benchmark case
    X, y = make_regression(300, 6, noise=1.0, random_state=random_state)
    alpha = 1e-4
    est = TorchSGDRegressor(loss=loss, penalty="l1", alpha=alpha, quantile=quantile)
    _fit_recording(est, X, y)
    # QuantileRegressor's pinball loss at 0.5 is half the absolute error
    qr_alpha = alpha / 2 if loss == "absolute_error" else alpha
    qr = QuantileRegressor(quantile=quantile, alpha=qr_alpha, solver="highs").fit(X, y)
    kw = dict(loss=loss, penalty_name="l1", alpha=alpha, quantile=quantile)
    ours = objective(est.coef_, est.intercept_, X, y, **kw)
    ref = objective(qr.coef_, qr.intercept_, X, y, **kw)
    best = min(ours, ref)
    assert (ours - best) / best <= GAP_OK
