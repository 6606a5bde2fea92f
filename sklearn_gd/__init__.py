"""Gradient-descent linear models for scikit-learn, trained by PyTorch.

The package is built in layers, each a subpackage that imports only the
layers below it (``CONTRIBUTING.md`` draws them): ``estimators`` (the
scikit-learn faces), ``search`` (cross-validation), ``engine`` (the training
loops), ``solvers``, ``objective`` (the data terms), ``data`` and ``model``
(losses, penalties, schedules).
"""

from ._compat import register_old_paths
from .engine._iterate import DivergenceError
from .estimators._classifier import TorchSGDClassifier
from .estimators._cv import TorchSGDClassifierCV, TorchSGDRegressorCV
from .estimators._regressor import TorchSGDRegressor

register_old_paths()

__all__ = [
    "DivergenceError",
    "TorchSGDClassifier",
    "TorchSGDClassifierCV",
    "TorchSGDRegressor",
    "TorchSGDRegressorCV",
    "__version__",
]

__version__ = "0.1.0"
