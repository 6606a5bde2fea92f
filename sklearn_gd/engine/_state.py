"""The fitted solver state: what ``partial_fit`` and ``warm_start`` go on from.

Everything here is numpy, so that a fitted estimator pickles without torch
objects or devices: optimizer states (nested dicts and lists of tensors, as
``torch.optim`` keeps them) are converted by one tree map, and made tensors
again when training resumes; ``torch.optim``'s ``load_state_dict`` then moves
them to the parameters' device.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

__all__ = [
    "FitMode",
    "SolverState",
    "optimizer_state_to_numpy",
    "optimizer_state_to_torch",
]


class HostArray:
    """A tensor's values held as numpy, to be made a tensor again on load."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __getstate__(self):
        return self.array

    def __setstate__(self, array):
        self.array = array


def tree_map(fn, tree):
    """``fn`` applied to every leaf of nested dicts, lists and tuples."""
    if isinstance(tree, dict):
        return {key: tree_map(fn, value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(tree_map(fn, value) for value in tree)
    return fn(tree)


def _to_host(leaf):
    if isinstance(leaf, torch.Tensor):
        return HostArray(leaf.detach().cpu().numpy().copy())
    return leaf


def _to_tensor(leaf):
    if isinstance(leaf, HostArray):
        return torch.from_numpy(leaf.array.copy())
    return leaf


def optimizer_state_to_numpy(state: dict | None) -> dict | None:
    """A ``torch.optim`` state dict with every tensor held as numpy."""
    return None if state is None else tree_map(_to_host, state)


def optimizer_state_to_torch(state: dict | None) -> dict | None:
    """The inverse of :func:`optimizer_state_to_numpy` (tensors on the CPU)."""
    return None if state is None else tree_map(_to_tensor, state)


UNRECORDED = "<unrecorded>"  # fit_device of a state pickled without one


@dataclass(eq=False)
class SolverState:
    """What a fit leaves for the next ``partial_fit`` or warm start.

    Attributes
    ----------
    dtype : numpy dtype
        The training dtype; ``partial_fit`` keeps it.
    n_outputs : int
        Columns of the parameter matrix.
    y_ndim : int
        Dimensions of the ``y`` of the first fit (1 or 2).
    eta0 : float
        The resolved initial learning rate.
    rate : float
        The rate ``partial_fit`` goes on at (what "adaptive" had shrunk to).
    coef, intercept : ndarray of shape (n_features, n_outputs), (n_outputs,)
        The last iterate (before averaging).
    average_coef, average_intercept : ndarray or None
        The running average, when ``average`` is on.
    optimizer_state : dict or None
        The optimizer's state, tensors held as numpy.
    fit_device : str or None
        The estimator's ``device`` parameter in the fit that made the state:
        while ``device`` keeps that value, a machine without that device
        predicts on the CPU (a model fitted on a GPU, loaded elsewhere).
        ``UNRECORDED`` in a state pickled before it was kept.
    device_cache : dict
        ``coef_`` and ``intercept_`` as tensors per (device, dtype), with the
        arrays they were made from; never pickled.
    """

    dtype: np.dtype
    n_outputs: int
    y_ndim: int
    eta0: float
    rate: float
    coef: np.ndarray
    intercept: np.ndarray
    average_coef: np.ndarray | None = None
    average_intercept: np.ndarray | None = None
    optimizer_state: dict | None = None
    # a state unpickled from a release that did not keep it reads the class
    # default: UNRECORDED, where None is the default device
    fit_device: str | None = UNRECORDED
    device_cache: dict = field(default_factory=dict, repr=False)

    def without_cache(self) -> SolverState:
        """A copy without the device cache (for pickling)."""
        return replace(self, device_cache={})


@dataclass(frozen=True)
class FitMode:
    """What kind of fit this is, decided once at its start.

    ``partial``: a ``partial_fit`` (one epoch, no stopping rule, no early
    stopping), else a ``fit`` with the estimator's settings. ``resume``: the
    state a ``partial_fit`` continues whole (parameters, update count, rate,
    optimizer state, average), or None on a first call. ``warm``: the state
    whose parameters a ``warm_start`` fit starts from.
    """

    partial: bool
    max_iter: int
    tol: float | None
    early_stopping: bool
    resume: SolverState | None = None
    warm: SolverState | None = None

    @classmethod
    def of(cls, partial: bool, state: SolverState | None, params: dict) -> FitMode:
        """The mode of a ``partial_fit`` (``partial``) or ``fit`` call, from
        the state the last fit left (None if none) and the estimator's
        parameters (``max_iter``, ``tol``, ``early_stopping``,
        ``warm_start``)."""
        if partial:
            return cls(True, 1, None, False, resume=state)
        return cls(
            False,
            params["max_iter"],
            params["tol"],
            params["early_stopping"],
            warm=state if params["warm_start"] else None,
        )

    @property
    def first_call(self) -> bool:
        """Whether the data's layout (features, outputs, dtype) is new."""
        return self.resume is None

    @property
    def keeps_history(self) -> bool:
        """Whether the loss curve and paths go on from the previous fit."""
        return self.resume is not None or self.warm is not None
