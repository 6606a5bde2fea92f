"""The validated training data of a fit, and what the fit is built from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._array_api import OutputSpace

__all__ = ["FitData"]


@dataclass
class FitData:
    """The validated training data and what the fit is built from."""

    X: object  # numpy, scipy CSR or a tensor (see _validation.Inputs)
    Y: object
    sample_weight: object
    kind: str
    dtype: np.dtype
    y_ndim: int
    device: torch.device
    tdtype: torch.dtype
    generator: object  # the objective's LazyGenerator: the fit's random stream
    loss: object
    penalty: object
    space: OutputSpace | None  # where fitted arrays go (None: numpy)
    partial: bool = False  # a partial_fit call (online SGD)
    x_checked: bool = True  # False: X's check for NaN and inf is left to come

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_samples, n_features, n_outputs)."""
        return (*self.X.shape, self.Y.shape[1])
