"""Gradient-descent linear models for scikit-learn, trained by PyTorch."""

from ._classifier import TorchSGDClassifier
from ._cv import TorchSGDClassifierCV, TorchSGDRegressorCV
from ._engine import DivergenceError
from ._regressor import TorchSGDRegressor

__all__ = [
    "DivergenceError",
    "TorchSGDClassifier",
    "TorchSGDClassifierCV",
    "TorchSGDRegressor",
    "TorchSGDRegressorCV",
    "__version__",
]

__version__ = "0.1.0"
