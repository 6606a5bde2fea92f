"""scikit-learn's common estimator checks, over every public estimator.

The default configuration (full-batch, deterministic) passes every check,
including the sample-weight equivalence checks that sklearn lists as expected
failures for its own SGDRegressor. Minibatch configurations see a different
sequence of batches when rows are repeated instead of weighted, so they take
exactly that one entry of sklearn's own list, for the same reason.
"""

import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_gd import TorchSGDRegressor

# Minibatch configurations get max_iter=50 (sklearn tests its own
# SGDRegressor with max_iter=5): their Python-level step per batch makes
# 1000 epochs over the checks' data slow, and none of the checks needs them.
ESTIMATORS = [
    TorchSGDRegressor(),
    # L-BFGS's line search branches on comparisons of objective values, so
    # rounding differences (weights vs repeated rows) can change its path;
    # run to convergence, where the solution is unique, not to tol=1e-3.
    TorchSGDRegressor(optimizer="lbfgs", tol=1e-12),
    TorchSGDRegressor(
        loss="huber",
        penalty="elasticnet",
        batch_size=16,
        random_state=0,
        average=True,
        max_iter=50,
    ),
    TorchSGDRegressor(
        optimizer="adam", eta0=0.05, batch_size=8, random_state=0, max_iter=50
    ),
]


def expected_failed_checks(estimator):
    if estimator.batch_size is None:
        return {}
    # The entry sklearn lists for SGDRegressor in
    # sklearn/utils/_test_common/instance_generator.py (PER_ESTIMATOR_XFAIL_CHECKS):
    # with minibatches, repeating a row changes which rows share a batch, so
    # weighting is equivalent to repeating only in expectation.
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "sample_weight is not equivalent to removing/repeating samples "
            "with minibatches."
        ),
        "check_sample_weight_equivalence_on_sparse_data": (
            "sample_weight is not equivalent to removing/repeating samples "
            "with minibatches."
        ),
    }


def _torch_devices(check):
    """The torch devices an array API check puts data on."""
    keywords = getattr(check, "keywords", {})
    if keywords.get("array_namespace") == "torch":
        yield keywords.get("device_name")
    for value in keywords.values():
        if getattr(value, "xp", None) == "torch":
            yield value.device


def _device_usable(name) -> bool:
    if name in (None, "cpu"):
        return True
    backend = getattr(torch, name, None) if name != "mps" else torch.backends.mps
    return backend is not None and bool(backend.is_available())


def unusable_device(check):
    """A torch device the check needs but this machine cannot use, or None.

    sklearn skips its torch device checks only when torch was built without
    that backend; a CUDA build on a machine without a driver would run them
    and fail in CUDA's initialisation, not in the estimator.
    """
    for name in _torch_devices(check):
        if not _device_usable(name):
            return name
    return None


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    device = unusable_device(check)
    if device is not None:
        pytest.skip(f"torch device {device!r} is not usable on this machine")
    check(estimator)
