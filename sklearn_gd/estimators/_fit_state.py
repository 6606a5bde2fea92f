"""The state a fit starts from (resumed, warm-started or given parameters)
and the state it leaves: the SolverState, the fitted arrays' values, and
what of them a pickle holds."""

from __future__ import annotations

import numpy as np
import torch

from ..data._array_api import is_foreign, to_numpy_any
from ..data._data import to_numpy, to_tensor
from ..engine._records import TrainState
from ..engine._state import (
    SolverState,
    optimizer_state_to_numpy,
    optimizer_state_to_torch,
)

__all__ = [
    "check_inits",
    "fitted_arrays",
    "initial_state",
    "picklable",
    "solver_state",
]


def initial_state(data, mode, coef_init, intercept_init, t) -> TrainState:
    """The parameters (and optimizer state) training on ``data`` (FitData)
    starts from: the state a ``partial_fit`` resumes whole (its update
    count ``t``), else the warm start's parameters or zeros, replaced by
    ``coef_init`` and ``intercept_init`` where given."""
    _, d, k = data.shape
    device, tdtype, dtype = data.device, data.tdtype, data.dtype
    state = mode.resume
    if state is not None:  # partial_fit goes on with everything
        return TrainState(
            coef=to_tensor(state.coef, device, tdtype),
            intercept=to_tensor(state.intercept, device, tdtype),
            t=int(t),
            avg_coef=to_tensor(state.average_coef, device, tdtype),
            avg_intercept=to_tensor(state.average_intercept, device, tdtype),
            optimizer_state=optimizer_state_to_torch(state.optimizer_state),
        )
    coef0 = np.zeros((d, k), dtype=dtype)
    icpt0 = np.zeros(k, dtype=dtype)
    if mode.warm is not None:
        if mode.warm.coef.shape != (d, k):
            raise ValueError(
                "warm_start needs the same number of features and outputs "
                f"as the previous fit: {mode.warm.coef.shape[::-1]}"
                f" (outputs, features), got {(k, d)}."
            )
        coef0 = mode.warm.coef.astype(dtype)
        icpt0 = mode.warm.intercept.astype(dtype)
    coef0, icpt0 = check_inits(coef_init, intercept_init, coef0, icpt0, d, k, dtype)
    return TrainState(
        coef=to_tensor(coef0, device, tdtype),
        intercept=to_tensor(icpt0, device, tdtype),
    )


def check_inits(coef_init, intercept_init, coef0, icpt0, d, k, dtype):
    """``coef_init`` as (d, k) and ``intercept_init`` as (k,), checked, in
    place of ``coef0`` and ``icpt0`` where given."""
    if coef_init is not None:
        c = np.asarray(coef_init, dtype=dtype)
        if c.shape == (d,) and k == 1:
            c = c[:, None]
        elif c.shape == (k, d):
            c = c.T
        else:
            # scikit-learn's words first, which its users look for
            raise ValueError(
                f"Provided coef_init does not match dataset: it has shape "
                f"{c.shape}; expected {(d,) if k == 1 else (k, d)} for {d} "
                f"features and {k} output(s)."
            )
        if not np.isfinite(c).all():
            raise ValueError("coef_init contains NaN or infinity.")
        coef0 = np.ascontiguousarray(c)
    if intercept_init is not None:
        i = np.atleast_1d(np.asarray(intercept_init, dtype=dtype))
        if i.shape != (k,):
            raise ValueError(
                "Provided intercept_init does not match dataset: it has "
                f"shape {i.shape}; expected ({k},)."
            )
        if not np.isfinite(i).all():
            raise ValueError("intercept_init contains NaN or infinity.")
        icpt0 = i.copy()
    return coef0, icpt0


def solver_state(result, data, mode, eta0, schedule, fit_device) -> SolverState:
    """What ``partial_fit`` and ``warm_start`` go on from after the run
    ``result`` on ``data``, fitted on ``fit_device``."""
    averaged = result.avg_coef is not None
    return SolverState(
        dtype=data.dtype,
        n_outputs=data.shape[2],
        y_ndim=data.y_ndim,
        eta0=eta0,
        # the rate "adaptive" reached in partial_fit (a fit restarts at eta0)
        rate=schedule.eta0 if mode.partial else eta0,
        coef=to_numpy(result.standard_coef),
        intercept=to_numpy(result.standard_intercept),
        average_coef=to_numpy(result.avg_coef) if averaged else None,
        average_intercept=to_numpy(result.avg_intercept) if averaged else None,
        optimizer_state=optimizer_state_to_numpy(result.optimizer_state),
        fit_device=fit_device,
    )


def fitted_arrays(result, history, space, to_public, previous=None) -> dict:
    """``coef_`` and ``intercept_`` of the run ``result`` (and, with a
    ``history``, ``coef_path_`` and ``intercept_path_``, after the
    ``previous`` paths a fit goes on from), in the public shapes
    ``to_public(coef, intercept)`` gives and in ``space`` (None: numpy)."""
    coef, intercept = to_public(to_numpy(result.coef), to_numpy(result.intercept))
    arrays = {"coef_": coef, "intercept_": intercept}
    if history is not None:
        paths = [to_public(c, i) for c, i in history]
        coef_path = [c for c, _ in paths]
        icpt_path = [i for _, i in paths]
        if previous is not None:
            coef_path = [to_numpy_any(c) for c in previous[0]] + coef_path
            icpt_path = [to_numpy_any(i) for i in previous[1]] + icpt_path
        arrays["coef_path_"] = np.stack(coef_path)
        arrays["intercept_path_"] = np.stack(icpt_path)
    if space is not None:
        # array API dispatch: fitted arrays live with the input data
        arrays = {name: space.put(v) for name, v in arrays.items()}
    return arrays


def picklable(state: dict) -> dict:
    """A copy of an estimator's pickled ``state`` with numpy for the arrays
    fitted under array API dispatch, and its SolverState without the device
    cache."""
    state = state.copy()
    for key, value in state.items():
        # fitted under array API dispatch: numpy in the pickle
        if isinstance(value, torch.Tensor) or is_foreign(value):
            state[key] = to_numpy_any(value)
    if isinstance(state.get("_solver_state"), SolverState):
        state["_solver_state"] = state["_solver_state"].without_cache()
    return state
