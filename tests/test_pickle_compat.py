"""Pickles written by an earlier release still load and predict the same.

``fixtures/pickles_0.1.0.pkl`` holds fitted estimators pickled by the 0.1.0
code (commit 5a7853b) with the predictions they made then, on the data they
were fitted on (diabetes for regressors, iris for classifiers).
"""

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

FIXTURE = Path(__file__).parent / "fixtures" / "pickles_0.1.0.pkl"


def _load():
    with FIXTURE.open("rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("name", sorted(_load()["models"]))
def test_old_pickle_predicts_as_it_did(name):
    saved = _load()
    model, expected = saved["models"][name], saved["expected"][name]
    X = load_diabetes(return_X_y=True)[0] if "regressor" in name else None
    if X is None:
        X = load_iris(return_X_y=True)[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = model.predict(X)
    if name == "regressor_device_cuda" and not _cuda():
        # pickled with device="cuda" set after a CPU fit: the release then
        # predicted on the CPU with a warning, and a pickle that does not say
        # where it was fitted keeps that fallback
        assert any("predicting on the CPU" in str(w.message) for w in caught)
    # the same coefficients and the same arithmetic (numpy on the host):
    # only the summation order of the product may differ, a few ulps of the
    # float64 predictions' scale
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
