"""A fit's progress as it runs: verbose lines, the recorded parameters and
scikit-learn's callbacks (the fit one task, each epoch one of its subtasks)."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from ..data._data import to_numpy

__all__ = ["epoch_hook", "fit_task"]


@contextmanager
def fit_task(estimator, init_context, max_iter, X, y):
    """The callback context of the fit of ``estimator`` on ``X, y`` (None
    where scikit-learn has no callback API: ``init_context`` is None), its
    task begun on entry and ended on a normal exit."""
    if init_context is None:
        yield None
        return
    context = init_context(max_subtasks=max_iter)
    context.call_on_fit_task_begin(estimator=estimator, X=X, y=y)
    yield context
    context.call_on_fit_task_end(
        estimator=estimator, X=X, y=y, reconstruction_attributes={}
    )


def epoch_hook(*, printer, history, context, estimator, X, y, to_public):
    """The engine's per-epoch callback, or None where nothing asks for one:
    ``printer(info, start)`` called on each epoch (None: verbose is off;
    :func:`print_epoch` prints a block of lines), the parameters appended to
    ``history`` (a list, or None), and the epoch as a subtask of the
    callback ``context`` (None: no callbacks), whose callbacks may stop the
    fit. ``to_public(coef, intercept)`` gives the public ``coef_`` and
    ``intercept_`` of numpy parameters."""
    if printer is None and history is None and context is None:
        return None
    start = time.perf_counter()

    def hook(info):
        stop = False
        if history is not None:
            history.append((to_numpy(info.coef), to_numpy(info.intercept)))
        if printer is not None:
            printer(info, start)
        if context is not None:
            sub = context.subcontext(task_name="epoch")
            sub.call_on_fit_task_begin(estimator=estimator, X=X, y=y)
            coef_t, icpt_t = info.coef, info.intercept

            def reconstruction():
                # evaluated lazily by sklearn, only if a callback asks
                coef, icpt = to_public(to_numpy(coef_t), to_numpy(icpt_t))
                return {"coef_": coef, "intercept_": icpt, "n_iter_": info.epoch}

            stop = bool(
                sub.call_on_fit_task_end(
                    estimator=estimator,
                    X=X,
                    y=y,
                    metadata={"epoch": info.epoch, "loss": info.loss},
                    reconstruction_attributes=reconstruction,
                )
            )
        return stop

    return hook


def print_epoch(info, start) -> None:
    """SGDClassifier's verbose block for the epoch ``info``, with the time
    since ``start``."""
    W, b = info.coef, info.intercept
    msg = (
        f"-- Epoch {info.epoch}\n"
        f"Norm: {float(torch.linalg.vector_norm(W)):.2f}, "
        f"NNZs: {int((W != 0).sum())}, "
        f"Bias: {float(b.mean()) if b.numel() else 0.0:.6f}, "
        f"T: {info.t - 1}, Avg. loss: {info.loss:.6f}"
    )
    if info.validation_score is not None:
        msg += f", Validation score: {info.validation_score:.6f}"
    print(msg)
    print(f"Total training time: {time.perf_counter() - start:.2f} seconds.")
