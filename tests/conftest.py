import os

# sklearn's array API dispatch needs this before scipy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conformance.table import apply_marks  # noqa: E402


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _xdist_workers(config) -> int:
    """The number of pytest-xdist workers this run starts (1: none)."""
    n = getattr(config.option, "numprocesses", None)
    if n in (None, 0):
        return 1
    if n in ("auto", "logical"):
        return _cores()
    return int(n)


def pytest_configure(config):
    """Under pytest-xdist (the README's ``-n auto``) the workers share the
    cores: each gets its share of threads for torch and the BLAS libraries,
    through the environment the workers start with (a library loaded later
    in a worker, as scipy's OpenBLAS, reads it then; a limit set at run time
    misses it, and its spinning threads made two workers on two cores take
    the suite from 395 s to 1050 s). A worker also narrows torch itself.
    No test's tolerance depends on the thread count: the suite passes with
    one thread and with two."""
    worker = getattr(config, "workerinput", None)
    workers = worker["workercount"] if worker else _xdist_workers(config)
    if workers <= 1:
        return
    threads = max(1, _cores() // workers)
    if worker:  # torch itself, as the controller's environment says
        torch.set_num_threads(threads)
    else:  # the controller, before it starts the workers
        for name in _THREAD_VARIABLES:
            os.environ.setdefault(name, str(threads))


@pytest.fixture
def regression_data():
    """Standardized synthetic data with a known linear signal (n=200, d=5)."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 5)
    X = (X - X.mean(0)) / X.std(0)
    coef = np.array([1.5, -2.0, 0.0, 0.7, 3.0])
    y = X @ coef + 0.5 + 0.3 * rng.randn(200)
    return X, y


def _torch_devices(check):
    """The torch devices one of sklearn's array API checks puts data on."""
    keywords = getattr(check, "keywords", {})
    if keywords.get("array_namespace") == "torch":
        yield keywords.get("device_name")
    for value in keywords.values():
        if getattr(value, "xp", None) == "torch":
            yield value.device


def _device_usable(name) -> bool:
    if name in (None, "cpu"):
        return True
    backend = torch.backends.mps if name == "mps" else getattr(torch, name, None)
    return backend is not None and bool(backend.is_available())


def _unusable_device(item):
    """A torch device the test's sklearn check needs but this machine cannot
    use, or None.

    sklearn skips its torch device checks only when torch was built without
    that backend; a CUDA build on a machine without a driver would run them
    and fail in CUDA's initialisation, not in the estimator.
    """
    check = getattr(item, "callspec", None) and item.callspec.params.get("check")
    for name in _torch_devices(check):
        if not _device_usable(name):
            return name
    return None


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="CUDA is not available"))
        device = _unusable_device(item)
        if device is not None:
            reason = f"torch device {device!r} is not usable on this machine"
            item.add_marker(pytest.mark.skip(reason=reason))
    # scikit-learn's own SGD tests (test_sklearn_sgd.py): those that cannot
    # apply to ours, from one table
    apply_marks(items)


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
