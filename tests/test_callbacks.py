"""Progress reporting: verbose lines and scikit-learn's callback API."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_gd import TorchSGDRegressor

callback = pytest.importorskip("sklearn.callback")


def test_verbose_prints_one_block_per_epoch(regression_data, capsys):
    X, y = regression_data
    # gradient descent: the default's Newton step solves the squared loss at once
    TorchSGDRegressor(optimizer="sgd", max_iter=3, tol=None, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("-- Epoch") == 3
    assert "Norm:" in out and "Bias:" in out and "Avg. loss:" in out
    assert "Total training time:" in out
    TorchSGDRegressor(max_iter=3, tol=None, early_stopping=True, verbose=1).fit(X, y)
    assert "Validation score:" in capsys.readouterr().out
    TorchSGDRegressor(max_iter=3, tol=None).fit(X, y)
    assert capsys.readouterr().out == ""


class EpochRecorder:
    """A minimal FitCallback: records each epoch's loss, stops at ``stop_at``."""

    def __init__(self, stop_at=None):
        self.stop_at = stop_at
        self.losses = []
        self.coefs = []

    def setup(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None):
        pass

    def on_fit_task_end(
        self, estimator, context, *, metadata=None, fitted_estimator=None
    ):
        if metadata is None or "epoch" not in metadata:
            return False  # the root fit task
        self.losses.append(metadata["loss"])
        self.coefs.append(fitted_estimator.coef_.copy())
        return self.stop_at is not None and metadata["epoch"] >= self.stop_at

    def teardown(self, estimator, context):
        pass


def test_callback_sees_every_epoch_and_can_stop(regression_data):
    X, y = regression_data
    rec = EpochRecorder()
    reg = TorchSGDRegressor(optimizer="sgd", max_iter=6, tol=None)
    reg.set_callbacks(rec).fit(X, y)
    assert rec.losses == reg.loss_curve_
    # the fitted_estimator handed over at the last epoch is the final model
    np.testing.assert_array_equal(rec.coefs[-1], reg.coef_)

    stopper = EpochRecorder(stop_at=2)
    reg = TorchSGDRegressor(optimizer="sgd", max_iter=50, tol=None)
    reg.set_callbacks(stopper).fit(X, y)
    assert reg.n_iter_ == 2 and len(stopper.losses) == 2


def test_progress_bar_in_fit_and_grid_search(regression_data):
    pytest.importorskip("rich")
    X, y = regression_data
    reg = TorchSGDRegressor(optimizer="sgd", max_iter=5, tol=None)
    reg.set_callbacks(callback.ProgressBar()).fit(X, y)
    assert reg.n_iter_ == 5
    search = GridSearchCV(
        TorchSGDRegressor(optimizer="sgd", max_iter=5, tol=None),
        {"alpha": [1e-4, 1e-2]},
        cv=2,
    )
    search.set_callbacks(callback.ProgressBar()).fit(X, y)
    assert search.best_estimator_.n_iter_ == 5
