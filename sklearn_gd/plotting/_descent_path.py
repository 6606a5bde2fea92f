"""The descent's replay: the line after each epoch, and the epochs a replay shows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data._array_api import to_numpy_any

__all__ = ["animation_epochs", "epoch_path", "prediction_path"]


def prediction_path(estimator, final, grid) -> np.ndarray | None:
    """The predictions on ``grid`` after each recorded epoch, or None.

    Parameters
    ----------
    estimator : estimator or Pipeline
        The fitted model (a Pipeline's transformers map ``grid`` to the
        features of its last step).

    final : estimator
        ``estimator``'s last step, whose ``coef_path_`` and
        ``intercept_path_`` hold the parameters after each epoch (None when
        it was fitted without ``record_history``).

    grid : array-like of shape (n_grid, 1)
        Where the lines are evaluated.

    Returns
    -------
    path : ndarray of shape (n_epochs, n_grid) or (n_epochs, n_grid, n_outputs)
        None without a recorded history.
    """
    coef_path = getattr(final, "coef_path_", None)
    if coef_path is None:
        return None
    Z = grid if final is estimator else estimator[:-1].transform(grid)
    Z = np.asarray(Z, dtype=np.float64)
    coef_path = to_numpy_any(coef_path).astype(np.float64)
    icpt_path = to_numpy_any(final.intercept_path_).astype(np.float64)
    if coef_path.ndim == 2:  # (n_epochs, n_features): one output
        return coef_path @ Z.T + icpt_path[:, :1]
    # (n_epochs, n_outputs, n_features)
    return np.einsum("gd,ekd->egk", Z, coef_path) + icpt_path[:, None]


def epoch_path(path) -> np.ndarray:
    """A display's ``path`` as an array of shape (n_epochs, n_grid, n_outputs),
    with the errors of a missing or empty one."""
    if path is None:
        raise ValueError(
            "DescentDisplay.animate needs the training path: fit the model "
            "with record_history=True (or pass path=...)."
        )
    path = np.asarray(path, dtype=np.float64)
    if path.ndim == 2:
        path = path[:, :, None]
    if path.shape[0] == 0:
        raise ValueError("The training path is empty: nothing to animate.")
    return path


def animation_epochs(frames: int | Sequence[int] | None, n_epochs: int) -> np.ndarray:
    """The epochs (0-based) that ``animate(frames=...)`` shows, one a frame.

    None: every epoch. An int ``m``: ``m`` epochs evenly spaced from the
    first to the last. A sequence: those epochs (negative ones counted from
    the end).
    """
    if frames is None:
        return np.arange(n_epochs)
    if isinstance(frames, int | np.integer):
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}.")
        return np.unique(
            np.linspace(0, n_epochs - 1, min(frames, n_epochs)).round()
        ).astype(int)
    epochs = np.asarray(frames, dtype=int)
    if epochs.size and (epochs.min() < -n_epochs or epochs.max() >= n_epochs):
        raise ValueError(
            f"frames must index the {n_epochs} recorded epochs; got "
            f"{epochs.min()}..{epochs.max()}."
        )
    return epochs % n_epochs
