import os

# sklearn's array API dispatch needs this before scipy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def regression_data():
    """Standardized synthetic data with a known linear signal (n=200, d=5)."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    X = (X - X.mean(0)) / X.std(0)
    coef = np.array([1.5, -2.0, 0.0, 0.7, 3.0])
    y = X @ coef + 0.5 + 0.3 * rng.randn(200)
    return X, y


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA is not available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Hypothesis profiles (tests/test_robustness.py): "ci" runs a few derandomized
# examples per property so the suite stays fast and reproducible;
# SKLEARN_GD_HYPOTHESIS_PROFILE=thorough runs many more, randomly.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test extra (pyproject [test])
    pass
else:
    _slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile(
        "ci",
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=_slow_ok,
    )
    settings.register_profile(
        "thorough", max_examples=1000, deadline=None, suppress_health_check=_slow_ok
    )
    settings.load_profile(os.environ.get("SKLEARN_GD_HYPOTHESIS_PROFILE", "ci"))
