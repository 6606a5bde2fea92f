"""Gradient-descent linear models for scikit-learn, trained by PyTorch."""

from ._engine import DivergenceError
from ._regressor import TorchSGDRegressor

__all__ = ["DivergenceError", "TorchSGDRegressor", "__version__"]

__version__ = "0.1.0"
