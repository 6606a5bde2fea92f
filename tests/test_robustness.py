"""Trustworthy under bad input, divergence, interruption and load (issue 8).

Property-based tests (hypothesis) over shapes, dtypes, values, sample weights
and every parameter constraint's boundary, plus targeted tests of divergence,
KeyboardInterrupt, thread-parallel predict, thread-count independence, peak
memory and the threads of parallel GridSearchCV workers.

The hypothesis profiles are registered in ``conftest.py``: "ci" (the default,
few derandomized examples so the file stays fast) and "thorough" (select with
``SKLEARN_GD_HYPOTHESIS_PROFILE=thorough``). Run with
``pytest tests/test_robustness.py --hypothesis-show-statistics`` to see how
many cases each property ran.

Measured on the 2-core development machine (float32 X of 200,000 x 50 =
38.1 MiB): the peak extra resident memory of ``fit`` is 3.3-4.4 MiB (about
0.1 x X) for the Gram path, the direct full-batch path, shuffled minibatches
and L-BFGS; 42-44 MiB (1.1-1.15 x X) where ``fit`` must copy X once
(early stopping's train/validation split, an F-ordered X). GridSearchCV with
``n_jobs=2`` runs each loky worker with ``torch.get_num_threads() == 1`` (2 in
the parent): joblib caps the workers' OpenMP threads at ``cpu_count //
n_jobs``, so the workers do not oversubscribe. ``fit`` gives bit-identical
``coef_`` with 1 and 2 torch threads on every path tried; the tests allow
float rounding only (see ``test_results_do_not_depend_on_torch_threads``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import sklearn_gd.estimators._training as base_module
from sklearn_gd import DivergenceError, TorchSGDRegressor

# ----------------------------------------------------------------- helpers

# Wall-clock bound on one fit of a few rows: a hang fails the test instead of
# stalling CI (hypothesis' deadline only reports slowness after the fact).
HANG_SECONDS = 30


class Hang(Exception):
    """Raised by the alarm when one example runs past HANG_SECONDS."""


@contextlib.contextmanager
def no_hang(seconds=HANG_SECONDS):
    if not hasattr(signal, "setitimer"):  # Windows: no alarm, no guard
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _quiet_fit(reg, method, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        with no_hang():
            return getattr(reg, method)(*args, **kwargs)


def _assert_finite_model(reg):
    assert np.all(np.isfinite(reg.coef_)), reg.coef_
    assert np.all(np.isfinite(reg.intercept_)), reg.intercept_


def _data(n=100, d=3, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    y = X @ rng.uniform(-3, 3, d) + 1.0 + 0.1 * rng.randn(n)
    return X.astype(dtype), y.astype(dtype)


def _objective(reg, X, y):
    """squared_error + l2 objective of the fitted (coef_, intercept_)."""
    r = y - X @ reg.coef_ - reg.intercept_
    return 0.5 * np.mean(r**2) + 0.5 * reg.alpha * np.sum(reg.coef_**2)


# ===================================================== 1. divergence


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("learning_rate", ["constant", "invscaling", "optimal"])
@pytest.mark.parametrize(
    "solver",
    [
        dict(),
        dict(batch_size=10),
        dict(momentum=0.9),
        dict(momentum=0.5, nesterov=True, batch_size=7),
    ],
    ids=["full", "minibatch", "momentum", "nesterov"],
)
def test_divergence_raises_clear_error_and_keeps_previous_model(
    dtype, learning_rate, solver
):
    X, y = _data(dtype=dtype)
    reg = _quiet_fit(TorchSGDRegressor(random_state=0, max_iter=20), "fit", X, y)
    before = pickle.dumps(reg)
    reg.set_params(
        learning_rate=learning_rate, eta0=1e3, tol=None, max_iter=200, **solver
    )
    with pytest.raises(DivergenceError) as info:
        _quiet_fit(reg, "fit", X * 1e3, y)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    # the epoch, the value the objective took, and the three hints
    # (non-finite, or finite but 1e3 times the zero model's objective)
    assert re.search(
        r"at epoch \d+: the objective became (inf|-inf|nan|[0-9.e+]+)", msg
    ), msg
    assert "smaller eta0" in msg, msg
    assert re.search("scale the features|Scaling input data", msg), msg
    assert "learning_rate" in msg, msg
    # the previous fitted state is untouched, parameters included
    reg.set_params(
        learning_rate="adaptive",
        eta0="auto",
        tol="auto",
        max_iter=20,
        batch_size=None,
        momentum=0.0,
        nesterov=False,
    )
    assert pickle.dumps(reg) == before


@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "new_shape"])
def test_divergence_in_continued_fits_keeps_state(how):
    X, y = _data()
    reg = TorchSGDRegressor(random_state=0, learning_rate="constant", tol=None)
    if how == "partial_fit":
        # partial_fit keeps its first eta0: a step that is fine for small
        # features (and for the intercept, whose curvature is 1), then
        # features 1e6 times larger (one epoch, 100 steps)
        reg.set_params(eta0=1.0, batch_size=1)
        reg.partial_fit(X * 1e-3, y)
    else:
        _quiet_fit(reg, "fit", X, y)
    coef, icpt, t, n_in = reg.coef_.copy(), reg.intercept_.copy(), reg.t_, 3
    Xbad = X * 1e3 if how == "partial_fit" else X * 1e4
    if how == "new_shape":
        Xbad = np.hstack([Xbad, Xbad])  # a new fit with 6 features fails
    if how != "partial_fit":
        reg.set_params(eta0=1e4, warm_start=how == "warm_start", max_iter=100)
    with pytest.raises(DivergenceError, match="diverged at epoch"):
        _quiet_fit(reg, "partial_fit" if how == "partial_fit" else "fit", Xbad, y)
    np.testing.assert_array_equal(reg.coef_, coef)
    np.testing.assert_array_equal(reg.intercept_, icpt)
    assert reg.t_ == t and reg.n_features_in_ == n_in
    reg.predict(X)  # still usable


@pytest.mark.parametrize(
    "batch_size, dtype",
    [
        (None, np.float32),
        (None, np.float64),
        (10, np.float32),
        (10, np.float64),
    ],
)
def test_adaptive_shrinks_step_before_giving_up(batch_size, dtype):
    # a step 100x too large: "constant" diverges, "adaptive" divides the step
    # by 5 after each diverging epoch and ends with a good fit
    X, y = _data(dtype=dtype)
    kw = dict(eta0=50.0, batch_size=batch_size, random_state=0, max_iter=300)
    with pytest.raises(DivergenceError):
        _quiet_fit(
            TorchSGDRegressor(learning_rate="constant", tol=None, **kw), "fit", X, y
        )
    reg = TorchSGDRegressor(learning_rate="adaptive", tol=1e-6, **kw)
    _quiet_fit(reg, "fit", X, y)
    _assert_finite_model(reg)
    assert reg.eta0_ == 50.0
    assert np.all(np.isfinite(reg.loss_curve_))
    assert reg.score(X, y) > 0.99


def test_divergence_hint_does_not_suggest_the_schedule_in_use():
    X, y = _data()
    # curvature ~1e12: no step above the adaptive floor (1e-6) is stable, so
    # the schedule shrinks to its floor and gives up
    reg = TorchSGDRegressor(learning_rate="adaptive", eta0=1e3, tol=None, max_iter=200)
    with pytest.raises(DivergenceError) as info:
        _quiet_fit(reg, "fit", X * 1e6, y)
    msg = str(info.value)
    assert "or learning_rate='adaptive'" not in msg and "already shrank" in msg, msg


# ===================================================== 2. interruption


def _interrupt_at(epoch):
    """A stand-in for the verbose printer that presses Ctrl-C at ``epoch``."""

    def print_epoch(self, info, start):
        if info.epoch == epoch:
            raise KeyboardInterrupt

    return print_epoch


@pytest.mark.parametrize(
    "params",
    [
        # the squared loss's default solves the normal equations in one step:
        # with an L1 part it takes FISTA's many full-batch epochs
        dict(penalty="elasticnet"),
        dict(loss="huber"),
        dict(batch_size=10),
        dict(batch_size=10, average=True),
        dict(early_stopping=True),
        dict(optimizer="lbfgs"),
        dict(optimizer="adam", batch_size=16),
        dict(momentum=0.9, batch_size=10),
        dict(penalty="l1", batch_size=10),
    ],
    ids=repr,
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keyboard_interrupt_keeps_best_parameters(monkeypatch, params, dtype):
    X, y = _data(dtype=dtype)
    monkeypatch.setattr(TorchSGDRegressor, "_print_epoch", _interrupt_at(3))
    reg = TorchSGDRegressor(verbose=1, max_iter=50, tol=None, random_state=0, **params)
    with pytest.warns(UserWarning, match=r"interrupted.*after 3 complete epoch"):
        with no_hang():
            reg.fit(X, y)
    assert reg.n_iter_ == 3 and len(reg.loss_curve_) == 3
    _assert_finite_model(reg)
    assert reg.coef_.dtype == dtype
    pred = reg.predict(X)
    assert pred.shape == y.shape and np.all(np.isfinite(pred))
    X64, y64 = X.astype(float), y.astype(float)
    start = 0.5 * np.mean(y64**2)  # the objective at the zero start
    if params.get("loss", "squared_error") == "squared_error":
        # never worse than where the fit started
        assert _objective(reg, X64, y64) <= start * (1 + 1e-6)
    if params in (dict(penalty="elasticnet"), dict(optimizer="lbfgs")):
        # full batch: the parameters kept are at least as good as the best
        # recorded objective (the end of the last epoch when that epoch was the
        # best: one more descent step). float32: the Gram statistics come from
        # float32 products, and the objective near the optimum is a difference
        # of terms of the size of `start` (measured error 1.4e-7 * start)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert _objective(reg, X64, y64) <= min(reg.loss_curve_) + tol * start
    # and the estimator fits again normally afterwards: as a fresh one does
    monkeypatch.undo()
    _quiet_fit(reg.set_params(verbose=0), "fit", X, y)
    fresh = _quiet_fit(clone(reg), "fit", X, y)
    assert reg.n_iter_ == fresh.n_iter_
    np.testing.assert_array_equal(reg.coef_, fresh.coef_)


def test_keyboard_interrupt_through_a_sklearn_callback():
    callback = pytest.importorskip("sklearn.callback")  # noqa: F841
    X, y = _data()

    class CtrlC:
        def setup(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context, *, X=None, y=None):
            pass

        def on_fit_task_end(
            self, estimator, context, *, metadata=None, fitted_estimator=None
        ):
            if metadata is not None and metadata.get("epoch") == 3:
                raise KeyboardInterrupt
            return False

        def teardown(self, estimator, context):
            pass

    reg = TorchSGDRegressor(max_iter=50, tol=None, batch_size=10, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        reg.set_callbacks(CtrlC()).fit(X, y)
    assert reg.n_iter_ == 3
    _assert_finite_model(reg)
    assert reg.score(X, y) > 0.9


def test_keyboard_interrupt_before_training_propagates_and_keeps_state(monkeypatch):
    # outside the epoch loop (building the oracle) there is nothing to keep:
    # the interrupt goes through and the previous model is untouched
    X, y = _data()
    reg = TorchSGDRegressor(random_state=0).fit(X, y)
    before = pickle.dumps(reg)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(base_module, "choose_oracle", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        reg.fit(X[:, :2], y)
    assert pickle.dumps(reg) == before


def test_keyboard_interrupt_after_first_minibatch_epoch_keeps_progress(monkeypatch):
    X, y = _data()
    monkeypatch.setattr(TorchSGDRegressor, "_print_epoch", _interrupt_at(1))
    reg = TorchSGDRegressor(verbose=1, max_iter=50, tol=None, batch_size=10)
    with pytest.warns(UserWarning, match="interrupted"):
        reg.fit(X, y)
    assert reg.n_iter_ == 1
    # one epoch of 10 steps of SGD: far better than the zero start
    assert np.any(reg.coef_ != 0)
    assert reg.score(X, y) > 0.5


# ============================================ 3. property-based inputs

# values: ordinary, zero, tiny, subnormal, huge, float32/float16 limits, NaN, inf
SPECIAL = [0.0, 1.0, -1.0, 1e-30, 1e-300, 5e-324, 1e30, 1e300, -1e300]
SPECIAL += [3.4e38, 65504.0, np.nan, np.inf, -np.inf]
VALUES = st.one_of(st.floats(-10, 10, allow_nan=False), st.sampled_from(SPECIAL))
SHAPES = st.one_of(
    st.sampled_from([(1, 1), (1, 4), (4, 1), (2, 40), (3, 25)]),  # 1 row, d >> n
    st.tuples(st.integers(1, 12), st.integers(1, 8)),
)
X_DTYPES = ["bool", "int8", "uint8", "int64", "float16", "float32", "float64"]
X_DTYPES += ["complex128", "object", "object-str"]
WEIGHTS = st.sampled_from([0.0, 1.0, 2.5, 1e-300, -1.0, 1e300, np.nan, np.inf])

PATTERNS = {
    "nonfinite": r"NaN|[Ii]nfinity|too large",
    "negative": r"[Nn]egative",
    "all_zero": r"non-zero|zero",
    "complex": r"[Cc]omplex",
    "strings": r"convert|string|numeric|dtype",
    "length": r"inconsistent|shape|length|number",
}


def _cast(a, dtype):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return a.astype(dtype)


@st.composite
def fit_inputs(draw):
    n, d = draw(SHAPES)
    kind = draw(st.sampled_from(X_DTYPES))
    base = draw(hnp.arrays(np.float64, (n, d), elements=VALUES))
    if draw(st.booleans()):  # constant column
        base[:, 0] = base[0, 0]
    if n > 1 and draw(st.booleans()):  # duplicate rows
        base[n // 2 :] = base[0]
    if kind in ("bool", "int8", "uint8", "int64"):
        X = draw(hnp.arrays(np.dtype(kind), (n, d)))
    elif kind == "complex128":
        imag = draw(hnp.arrays(np.float64, (n, d), elements=VALUES))
        with np.errstate(all="ignore"):
            X = base + 1j * imag
    elif kind == "object":
        X = base.astype(object)
    elif kind == "object-str":
        X = base.astype(object)
        X[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = "a"
    else:
        X = _cast(base, kind)
    k = draw(st.sampled_from([None, 1, 2]))  # None: 1-D y
    y_len = n + draw(st.sampled_from([0] * 15 + [1]))  # rarely a wrong length
    y_shape = (y_len,) if k is None else (y_len, k)
    y_dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool"]))
    if y_dtype in ("int64", "bool"):
        y = draw(hnp.arrays(np.dtype(y_dtype), y_shape))
    else:
        y = _cast(draw(hnp.arrays(np.float64, y_shape, elements=VALUES)), y_dtype)
    sw = None
    if draw(st.booleans()):
        sw = draw(hnp.arrays(np.float64, (n,), elements=WEIGHTS))
    container = draw(st.sampled_from(["numpy", "torch"]))
    if container == "torch" and kind in ("object", "object-str"):
        container = "numpy"
    return X, y, sw, container


def _expected_problems(X, y, sw, train_dtype):
    """What validation must reject, judged on the arrays as given (the sample
    weights in the dtype the fit trains in: 1e300 is inf in float32)."""
    problems = set()
    if X.dtype == object:
        if any(isinstance(v, str) for v in X.ravel()):
            problems.add("strings")
        else:
            X = X.astype(np.float64)
    if np.iscomplexobj(X):
        problems.add("complex")
    elif X.dtype != object and not np.all(np.isfinite(X.astype(np.float64))):
        problems.add("nonfinite")
    if not np.all(np.isfinite(y.astype(np.float64))):
        problems.add("nonfinite")
    if y.shape[0] != X.shape[0]:
        problems.add("length")
    if sw is not None:
        sw = _cast(sw, train_dtype)
        if not np.all(np.isfinite(sw)):
            problems.add("nonfinite")
        elif np.any(sw < 0):
            problems.add("negative")
        elif not np.any(sw > 0):
            problems.add("all_zero")
    return problems


def _huge(*arrays):
    """Whether any value is so large that a squared loss on it may overflow."""
    for a in arrays:
        if a is None or np.iscomplexobj(a):
            continue
        try:
            v = np.abs(a.astype(np.float64))
        except (ValueError, TypeError):  # strings
            continue
        if np.any(v[np.isfinite(v)] > 1e15):
            return True
    return False


def _to_container(X, y, sw, container):
    if container == "numpy":
        return X, y, sw
    # torch tensors go through the package's own validation path
    tX = torch.from_numpy(np.ascontiguousarray(X))
    return tX, torch.from_numpy(np.ascontiguousarray(y)), sw


@given(
    data=fit_inputs(),
    loss=st.sampled_from(["squared_error", "huber", "epsilon_insensitive"]),
    batch_size=st.sampled_from([None, 1, 3]),
    method=st.sampled_from(["fit", "partial_fit"]),
    prefit=st.booleans(),
)
def test_property_bad_input_fits_finite_or_raises_named_error(
    data, loss, batch_size, method, prefit
):
    X, y, sw, container = data
    train_dtype = np.float32 if X.dtype == np.float32 else np.float64
    if prefit and method == "partial_fit":
        train_dtype = np.float64  # partial_fit keeps the first call's dtype
    problems = _expected_problems(X, y, sw, train_dtype)
    reg = TorchSGDRegressor(
        loss=loss, batch_size=batch_size, max_iter=5, tol=None, random_state=0
    )
    if prefit:
        # a fitted model of the same width: a failed fit must leave it as it was
        d, k = X.shape[1], (None if y.ndim == 1 else y.shape[1])
        Xg, yg = _data(n=8, d=d)
        reg.fit(Xg, yg if k is None else np.tile(yg[:, None], (1, k)))
    before = pickle.dumps(reg)
    Xc, yc, swc = _to_container(X, y, sw, container)
    try:
        _quiet_fit(reg, method, Xc, yc, sample_weight=swc)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        if problems:
            wanted = "|".join(PATTERNS[p] for p in problems)
            assert re.search(wanted, msg), (problems, msg)
        else:
            # clean input may only fail by overflowing: the objective during
            # training (DivergenceError), or the data's second moments when
            # the step size is estimated (ValueError); both advise scaling
            assert _huge(X, y, sw), msg
            assert isinstance(exc, DivergenceError) or "too large" in msg, msg
            assert re.search("scal(e|ing) (the|input) (features|data)", msg, re.I)
        assert pickle.dumps(reg) == before, "a failed fit changed the estimator"
        return
    assert not problems, f"accepted input with problems {problems}"
    _assert_finite_model(reg)
    assert reg.coef_.dtype == train_dtype
    pred = reg.predict(Xc)
    # a column vector y is fitted as 1-D (with a warning), as SGDRegressor does
    column = y.ndim == 2 and y.shape[1] == 1
    assert pred.shape == (y.shape[:1] if column else y.shape)
    if not _huge(X, y, sw):
        assert np.all(np.isfinite(pred))


# ======================================== 3. property-based parameters

# (value, valid) at and just beyond every constraint's boundary
BOUNDARIES = {
    "loss": [
        *[(v, True) for v in ["squared_error", "huber", "epsilon_insensitive"]],
        *[(v, True) for v in ["squared_epsilon_insensitive", "absolute_error"]],
        ("quantile", True),
        ("squared_loss", False),
    ],
    "penalty": [("l2", True), ("l1", True), ("elasticnet", True), (None, True)]
    + [("l3", False)],
    "alpha": [(0.0, True), (1e-300, True), (1e10, True), (-1e-300, False)]
    + [(np.nan, False)],
    "l1_ratio": [(0.0, True), (1.0, True), (-1e-9, False), (1 + 1e-9, False)],
    "fit_intercept": [(True, True), (False, True), ("yes", False)],
    "max_iter": [(1, True), (20, True), (0, False), (1.5, False)],
    "tol": [(0.0, True), (None, True), (1e300, True), (-1e-12, False)],
    "shuffle": [(False, True)],
    "epsilon": [(0.0, True), (1e300, True), (-1e-12, False)],
    "quantile": [(1e-12, True), (1 - 1e-12, True), (0.0, False), (1.0, False)],
    "learning_rate": [(v, True) for v in ["constant", "invscaling", "optimal"]]
    + [("adaptive", True), ("Optimal", False)],
    "eta0": [("auto", True), (1e-300, True), (1e300, True), (0.0, False)]
    + [(-1.0, False), ("automatic", False)],
    # negative: accepted with scikit-learn's deprecation warning
    "power_t": [(0.0, True), (1e3, True), (-1e-12, True)],
    "early_stopping": [(True, True)],
    "validation_fraction": [(1e-9, True), (1 - 1e-9, True), (0.0, False)]
    + [(1.0, False)],
    "n_iter_no_change": [(1, True), (0, False)],
    "warm_start": [(True, True)],
    "average": [(True, True), (1, True), (10**9, True), (0, False), (-1, False)],
    "optimizer": [(v, True) for v in ["sgd", "adam", "adamw", "lbfgs"]]
    + [("SGD", False)],
    "momentum": [(0.0, True), (1 - 1e-12, True), (1.0, False), (-1e-12, False)],
    "nesterov": [(True, True)],
    "batch_size": [(1, True), (None, True), (10**9, True), (0, False)],
    "device": [(None, True), ("cpu", True), ("gpu", False)],
    "record_history": [(True, True)],
    "random_state": [(0, True), (-1, False)],
}


@st.composite
def boundary_params(draw):
    names = draw(st.lists(st.sampled_from(sorted(BOUNDARIES)), min_size=1, max_size=6))
    chosen = {name: draw(st.sampled_from(BOUNDARIES[name])) for name in names}
    params = {name: value for name, (value, _) in chosen.items()}
    invalid = sorted(name for name, (_, ok) in chosen.items() if not ok)
    return params, invalid


def _allowed_config_error(params, n, msg):
    """Valid parameters the data or another parameter makes unusable."""
    p = {**TorchSGDRegressor().get_params(), **params}
    if "diverged at epoch" in msg:
        return "smaller eta0" in msg
    if p["early_stopping"] and re.search(r"validation|train set will be empty", msg):
        # too few rows to split (the message is scikit-learn's ShuffleSplit's;
        # see test_early_stopping_split_error_names_our_parameters)
        return True
    if p["optimizer"] == "lbfgs" and p["penalty"] in ("l1", "elasticnet"):
        return "lbfgs" in msg
    if p["learning_rate"] == "optimal" and p["alpha"] == 0:
        return "alpha" in msg
    return False


@given(
    drawn=boundary_params(),
    n=st.sampled_from([1, 2, 5, 30]),
    d=st.sampled_from([1, 3]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_property_parameter_boundaries(drawn, n, d, dtype):
    params, invalid = drawn
    params.setdefault("max_iter", 20)
    eta0 = params.get("eta0")
    if isinstance(eta0, float) and eta0 > np.finfo(np.float32).max:
        dtype = np.float64  # see test_eta0_beyond_float32_range_is_a_value_error
    X, y = _data(n=n, d=d, seed=n, dtype=dtype)
    reg = TorchSGDRegressor(random_state=0).set_params(**params)
    try:
        _quiet_fit(reg, "fit", X, y)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        if invalid:
            names = "|".join(rf"'{name}' parameter|\b{name}=" for name in invalid)
            assert re.search(names, msg), msg
        else:
            assert _allowed_config_error(params, n, msg), (params, msg)
        return
    assert not invalid, f"accepted invalid {invalid}"
    _assert_finite_model(reg)
    assert np.all(np.isfinite(reg.predict(X)))


@pytest.mark.parametrize("n, fraction", [(1, 0.1), (30, 1 - 1e-9)])
def test_early_stopping_split_error_names_our_parameters(n, fraction):
    X, y = _data(n=n)
    reg = TorchSGDRegressor(early_stopping=True, validation_fraction=fraction)
    with pytest.raises(ValueError, match="validation_fraction"):
        reg.fit(X, y)


@pytest.mark.parametrize("params", [dict(), dict(optimizer="adam")], ids=repr)
def test_eta0_beyond_float32_range_is_a_value_error(params):
    X, y = _data(n=5, d=1, dtype=np.float32)
    with pytest.raises(ValueError, match="eta0|learning rate"):
        _quiet_fit(TorchSGDRegressor(eta0=1e300, **params), "fit", X, y)


def test_y_beyond_float32_range_is_named():
    X = np.arange(4.0, dtype=np.float32).reshape(-1, 1)
    y = np.array([0.0, 1.0, 2.0, 1e300])
    with pytest.raises(ValueError, match=r"\by\b.*(float32|too large|infinity)"):
        _quiet_fit(TorchSGDRegressor(), "fit", X, y)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_zero_weight_minibatch_does_not_diverge(batch_size):
    X, y = _data(n=20, d=2)
    sw = np.ones(20)
    sw[:4] = 0.0  # without shuffling, the first batches weigh nothing
    reg = TorchSGDRegressor(
        batch_size=batch_size, shuffle=False, max_iter=5, random_state=0
    )
    _quiet_fit(reg, "fit", X, y, sample_weight=sw)
    _assert_finite_model(reg)


# ============================================== 6. stable results


@given(
    seed=st.integers(0, 2**31 - 2),
    params=st.fixed_dictionaries(
        {},
        optional={
            "batch_size": st.sampled_from([None, 1, 7]),
            "shuffle": st.booleans(),
            "optimizer": st.sampled_from(["sgd", "adam", "lbfgs"]),
            "early_stopping": st.booleans(),
            "average": st.sampled_from([False, True, 5]),
            "loss": st.sampled_from(["squared_error", "huber"]),
            "momentum": st.sampled_from([0.0, 0.9]),
        },
    ),
    rs_kind=st.sampled_from(["int", "RandomState"]),
)
def test_property_same_random_state_same_coef(seed, params, rs_kind):
    X, y = _data(n=40, d=3)
    rs = seed if rs_kind == "int" else np.random.RandomState(seed)
    reg = TorchSGDRegressor(max_iter=8, random_state=rs, **params)
    # copies made before any fit consumes a RandomState instance
    twin, unpickled = clone(reg), pickle.loads(pickle.dumps(reg))
    _quiet_fit(reg, "fit", X, y)
    for other in (twin, unpickled):
        _quiet_fit(other, "fit", X, y)
        np.testing.assert_array_equal(other.coef_, reg.coef_)
        np.testing.assert_array_equal(other.intercept_, reg.intercept_)
        assert other.n_iter_ == reg.n_iter_
    if rs_kind == "int":  # refitting the same estimator repeats itself
        coef = reg.coef_.copy()
        np.testing.assert_array_equal(_quiet_fit(reg, "fit", X, y).coef_, coef)
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(restored.predict(X), reg.predict(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "params",
    [dict(), dict(loss="huber"), dict(batch_size=1024), dict(optimizer="lbfgs")],
    ids=repr,
)
def test_results_do_not_depend_on_torch_threads(dtype, params):
    # Big enough for torch to split its matrix products over threads. Measured:
    # bit-identical coef_ with 1 and 2 threads on every path here with this
    # machine's torch. Allowed: reduction-order rounding, relative 1e-4
    # (float32) / 1e-10 (float64) after 10 epochs. L-BFGS is not yet converged
    # after 10 iterations, and its line search and curvature pairs amplify
    # rounding: torch 2.11 (MKL) on a 16-core CUDA machine gave 8e-8 relative
    # in float64, so its float64 bound is 1e-6.
    X, y = _data(n=8000, d=20, seed=1, dtype=dtype)
    old = torch.get_num_threads()
    fits = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            reg = TorchSGDRegressor(max_iter=10, tol=None, random_state=0, **params)
            fits.append(_quiet_fit(reg, "fit", X, y))
    finally:
        torch.set_num_threads(old)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    if params.get("optimizer") == "lbfgs":
        rtol = max(rtol, 1e-6)
    scale = np.abs(fits[0].coef_).max()
    np.testing.assert_allclose(fits[1].coef_, fits[0].coef_, rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(
        fits[1].intercept_, fits[0].intercept_, rtol=0, atol=rtol * scale
    )


# =================================================== 4. concurrency


@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("multi_output", [False, True])
def test_threaded_predict_matches_serial(container, multi_output):
    X, y = _data(n=3000, d=30, dtype=np.float32)
    if multi_output:
        y = np.stack([y, -y, 2 * y], 1)
    reg = TorchSGDRegressor(random_state=0, max_iter=20, device="cpu")
    _quiet_fit(reg, "fit", X, y)
    chunks = np.array_split(X, 16)
    if container == "torch":
        chunks = [torch.from_numpy(c.copy()) for c in chunks]

    def as_np(p):
        return p.numpy() if isinstance(p, torch.Tensor) else p

    serial = [as_np(reg.predict(c)) for c in chunks]
    # an unpickled copy has no device cache yet: the threads race to build it
    fresh = pickle.loads(pickle.dumps(reg))
    # every thread predicts every chunk, in a different order
    jobs = [(t, i) for t in range(8) for i in np.roll(np.arange(16), t)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: as_np(fresh.predict(chunks[job[1]])), jobs))
    for (_, i), pred in zip(jobs, results):
        np.testing.assert_array_equal(pred, serial[i])


def _worker_threads(estimator, X, y):
    return torch.get_num_threads()


def _worker_pid(estimator, X, y):
    return os.getpid()


def test_grid_search_workers_do_not_oversubscribe_threads():
    # torch in each loky worker: joblib caps its OpenMP pool at
    # cpu_count // n_jobs (measured: 1 thread per worker on 2 cores, 2 in the
    # parent), so n_jobs workers together use at most the machine's cores
    X, y = _data(n=200, d=4)
    search = GridSearchCV(
        TorchSGDRegressor(max_iter=5, tol=None),
        {"alpha": [1e-4, 1e-3]},
        cv=2,
        n_jobs=2,
        scoring={"threads": _worker_threads, "pid": _worker_pid},
        refit=False,
    )
    with no_hang(240):
        search.fit(X, y)
    res = search.cv_results_
    threads = np.concatenate([res[f"split{i}_test_threads"] for i in range(2)])
    pids = np.concatenate([res[f"split{i}_test_pid"] for i in range(2)])
    assert os.getpid() not in pids  # the fits really ran in worker processes
    cores = os.cpu_count() or 1
    assert np.all(threads >= 1)
    assert np.all(threads <= max(1, cores // 2)), (threads, cores)


# ====================================================== 5. resources

_MEMORY_CHILD = r"""
import json, resource, sys, warnings
import numpy as np
from sklearn_gd import TorchSGDRegressor

warnings.simplefilter("ignore")
PAGE = resource.getpagesize()


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def reset_peak():
    try:  # Linux >= 4.0: reset the high-water mark to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024


rng = np.random.default_rng(0)
out = []
for params, layout in json.loads(sys.argv[1]):
    # warm up torch's lazily initialised kernels on a small problem first
    TorchSGDRegressor(max_iter=2, **params).fit(
        rng.standard_normal((300, 50), dtype=np.float32),
        rng.standard_normal(300, dtype=np.float32),
    )
    X = np.empty((200_000, 50), dtype=np.float32, order=layout)
    for j in range(50):  # column by column: no temporary as large as X
        X[:, j] = rng.standard_normal(200_000, dtype=np.float32)
    y = rng.standard_normal(200_000, dtype=np.float32)
    before = rss()
    reset = reset_peak()
    if not reset and len(out):
        break  # without a reset the peak of an earlier fit would mask this one
    TorchSGDRegressor(max_iter=3, tol=None, random_state=0, **params).fit(X, y)
    out.append(dict(params=params, layout=layout, extra=peak() - before,
                    x_bytes=X.nbytes, reset=reset))
    del X, y
print(json.dumps(out))
"""

# (params, layout, bound on the peak extra memory in units of X.nbytes)
_MEMORY_CASES = [
    (dict(), "C", 0.25),  # Gram statistics in row chunks
    (dict(loss="huber"), "C", 0.25),  # direct full batch
    (dict(batch_size=4096), "C", 0.25),  # shuffled minibatches
    (dict(optimizer="lbfgs"), "C", 0.25),
    (dict(early_stopping=True), "C", 1.3),  # one copy: train/validation split
    (dict(), "F", 1.3),  # one copy: to C order
]


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc for the RSS"
)
def test_fit_copies_X_at_most_once():
    # RSS, not tracemalloc: torch's allocations are invisible to tracemalloc.
    # A fixed mmap threshold makes glibc return freed buffers at once, so the
    # high-water mark shows the live peak rather than allocator caching.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    cases = [[p, layout] for p, layout, _ in _MEMORY_CASES]

    def run(batch):
        proc = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, json.dumps(batch)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
        return json.loads(proc.stdout.strip().splitlines()[-1])

    results = run(cases)
    if len(results) < len(cases):  # no high-water reset: one process per case
        results = results + [run([c])[0] for c in cases[len(results) :]]
    for (params, layout, bound), res in zip(_MEMORY_CASES, results):
        ratio = res["extra"] / res["x_bytes"]
        assert ratio < bound, (params, layout, f"{res['extra'] / 2**20:.1f} MiB")


def test_out_of_memory_is_reraised_with_sizes_and_advice(monkeypatch):
    # a CUDA OOM simulated on the CPU: the engine raising torch's OOM error
    X, y = _data(n=123, d=7)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(base_module, "train", oom)
    reg = TorchSGDRegressor()
    with pytest.raises((RuntimeError, MemoryError)) as info:
        reg.fit(X, y)
    msg = str(info.value)
    assert "123" in msg and "7" in msg and "batch_size" in msg, msg
    assert not hasattr(reg, "coef_")


# a hypothesis-free sanity check that the profile machinery is wired up
def test_hypothesis_profile_is_selected_by_environment():
    from hypothesis import settings

    wanted = settings.get_profile(os.environ.get("SKLEARN_GD_HYPOTHESIS_PROFILE", "ci"))
    assert settings.default.max_examples == wanted.max_examples
