"""What the generated ``test_sklearn_sgd.py`` imports to test our estimators.

scikit-learn's test file builds every estimator through ``linear_model``
(its factory functions, its sparse wrappers, and a few tests directly). The
generated file rebinds that name to :data:`linear_model`, a view of
:mod:`sklearn.linear_model` whose ``SGDClassifier`` and ``SGDRegressor`` are
ours, so every test and wrapper builds our estimators without an edit to its
body. Its factory functions pass their arguments through :func:`per_sample`,
which adds scikit-learn's per-sample SGD settings for the tests that
:mod:`table` lists as asserting scikit-learn's exact iterates.
"""

from __future__ import annotations

import contextvars
import os

import pytest
import sklearn.linear_model

from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor

from .table import PER_SAMPLE, category_of

__all__ = [
    "conformance_settings",
    "global_random_seed",
    "linear_model",
    "per_sample",
]


class _LinearModel:
    """:mod:`sklearn.linear_model` with our SGD estimators in place of its own
    (SGDOneClassSVM, which we do not implement, stays scikit-learn's: its
    tests are skipped by the table)."""

    SGDClassifier = TorchSGDClassifier
    SGDRegressor = TorchSGDRegressor

    def __getattr__(self, name):
        return getattr(sklearn.linear_model, name)


linear_model = _LinearModel()

# whether the running test asserts scikit-learn's per-sample iterates (set by
# the conformance_settings fixture from the table, read by the factories)
_per_sample_test = contextvars.ContextVar("per_sample_test", default=False)


def _sklearn_schedule(cls) -> dict:
    """scikit-learn's own schedule defaults for the peer of ``cls``, read from
    the installed version rather than copied (SGDClassifier: "optimal",
    power_t 0.5; SGDRegressor: "invscaling", power_t 0.25; eta0 0.01)."""
    peer = (
        sklearn.linear_model.SGDClassifier
        if issubclass(cls, TorchSGDClassifier)
        else sklearn.linear_model.SGDRegressor
    )
    params = peer().get_params()
    return {name: params[name] for name in ("learning_rate", "eta0", "power_t")}


def per_sample(cls, kwargs: dict) -> dict:
    """``kwargs`` for ``cls``, with scikit-learn's algorithm where the running
    test asserts its per-sample iterates.

    That algorithm is plain SGD over one sample at a time
    (``optimizer="sgd", batch_size=1``) with scikit-learn's schedule defaults;
    our defaults (the full batch, "adaptive") reach the same optimum by
    another path, so iterate-level assertions need the same path. A setting
    the test passes itself wins.
    """
    if not _per_sample_test.get() or not issubclass(
        cls, (TorchSGDClassifier, TorchSGDRegressor)
    ):
        return kwargs
    settings = {"optimizer": "sgd", "batch_size": 1, **_sklearn_schedule(cls)}
    return {**settings, **kwargs}


@pytest.fixture(autouse=True)
def conformance_settings(request):
    """Marks the running test as a per-sample one when the table says so."""
    entry = category_of(request.node.name, request.node.originalname)
    token = _per_sample_test.set(entry is not None and entry[0] == PER_SAMPLE)
    yield
    _per_sample_test.reset(token)


@pytest.fixture
def global_random_seed():
    """scikit-learn's seed fixture (its conftest is not ours): 42, the seed it
    uses unless SKLEARN_TESTS_GLOBAL_RANDOM_SEED asks for others, or the one
    seed that variable names."""
    seed = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42")
    return int(seed) if seed.isdigit() else 42
