"""How a fit that did not end well says so: its convergence warnings and
the error that replaces the device's out-of-memory error."""

from __future__ import annotations

import traceback
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

__all__ = ["MAX_ITER_MESSAGE", "OUT_OF_MEMORY", "out_of_memory_error", "warn_on_ending"]

# scikit-learn's SGD warning when max_iter ends a fit, word for word: code
# written for SGDClassifier/SGDRegressor filters or matches it
MAX_ITER_MESSAGE = (
    "Maximum number of iteration reached before convergence. Consider "
    "increasing max_iter to improve the fit."
)

# torch >= 2.5 has torch.OutOfMemoryError; torch.cuda's alias is older
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def warn_on_ending(result, mode, dtype) -> None:
    """The warning a fit's ``result`` deserves (none where it converged, or
    for a ``partial_fit``): an interruption, an unmet ``tol`` with the
    measure, or scikit-learn's max_iter warning. ``mode`` is the fit's
    FitMode, ``dtype`` the data's."""
    if result.interrupted:
        warnings.warn(
            f"Fit interrupted by KeyboardInterrupt after {result.n_iter} "
            "complete epoch(s); keeping the best parameters reached so far "
            f"(objective {result.best_loss:.6g}).",
            UserWarning,
        )
    elif result.converged or mode.partial:
        return
    elif mode.tol is None:
        warn_early_stop(result, mode, dtype)
    elif result.optimality is not None:
        measure = (
            f"the {result.measure} is {result.optimality:.3g}, above tol={result.tol:g}"
        )
        if result.n_iter == mode.max_iter:
            # scikit-learn's sentence first (it already says max_iter)
            message = (
                f"{MAX_ITER_MESSAGE} At the end {measure}; scaling the "
                "features may also help."
            )
        else:
            why = (
                "No step decreases the objective at this precision"
                if result.solver_stuck
                else "The step size reached the schedule's floor"
            )
            message = f"{why} before convergence: {measure}. {advice(result, dtype)}"
        warnings.warn(message, ConvergenceWarning)
    elif result.n_iter == mode.max_iter:
        warnings.warn(MAX_ITER_MESSAGE, ConvergenceWarning)


def warn_early_stop(result, mode, dtype) -> None:
    """tol=None asks for no criterion but max_iter, and gets no warning
    there, as from scikit-learn; a full-batch solver that can make no
    more progress idles for the epochs left, converged at an optimum it
    certifies to the data's precision; where rounding alone stopped it,
    that is said, with the measure."""
    if not result.solver_stuck:
        return
    measure = (
        ""
        if result.optimality is None
        else f": the {result.measure} is {result.optimality:.3g}"
    )
    warnings.warn(
        "No step decreases the objective at this precision before a "
        f"certified optimum (the epochs left to max_iter={mode.max_iter} "
        f"change nothing){measure}. {advice(result, dtype)}",
        ConvergenceWarning,
    )


def advice(result, dtype) -> str:
    """What may help this fit: more iterations where it ran out of them;
    float64 only for float32 data that rounding stopped; scaling always
    (it conditions every solver)."""
    hints = ["scaling the features"]
    if not result.solver_stuck:
        hints.insert(0, "increasing max_iter")
    elif np.dtype(dtype) != np.float64:
        hints.append("using float64 data")
    return "Consider " + " or ".join(hints) + "."


def out_of_memory_error(X, exc, batch_size, device) -> MemoryError:
    """The MemoryError that replaces the device's out-of-memory ``exc``
    while fitting ``X``: its sizes and what to change. What the failed fit
    held is freed first."""
    shape = tuple(getattr(X, "shape", ()))
    itemsize = getattr(getattr(X, "dtype", None), "itemsize", 8)
    size = float(np.prod(shape)) * itemsize / 2**20 if shape else float("nan")
    message = (
        f"Out of memory while fitting X of shape {shape} (about {size:.0f} MiB) "
        f"with batch_size={batch_size} on device {device!r}: {exc}. "
        "Lower batch_size, or stream X from host memory (out_of_core=True, "
        "or pass a numpy memmap)."
    )
    release(exc)
    return MemoryError(message)


def release(exc: BaseException) -> None:
    """Free what a failed fit held: the locals of its frames (tensors on the
    device, kept alive by the traceback for as long as anyone holds the
    exception) and the allocator's cached blocks."""
    traceback.clear_frames(exc.__traceback__)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
