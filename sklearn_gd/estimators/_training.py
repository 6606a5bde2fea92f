"""From a fit's validated data to the engine's result: the data term (the
oracle), the early-stopping set held out of it, and the engine's run."""

from __future__ import annotations

import numpy as np
import torch

from ..data._data import to_tensor
from ..data._fit_data import FitData
from ..data._validation import check_finite_host
from ..engine._engine import train
from ..objective._oracles import choose_oracle, prefers_gram
from ..objective._sparse import csr_to_torch
from ..objective._streaming import should_stream, streaming_oracle

__all__ = ["make_oracle", "run_engine", "split_rows"]


def make_oracle(data: FitData, split, validation_class, *, estimator, **params):
    """The gradient oracle of ``data``, and the early-stopping set.

    ``split(Y, sample_weight)`` gives the training and validation rows when
    ``params["early_stopping"]``, ``validation_class`` holds the validation
    rows; ``params`` are the estimator's ``out_of_core``,
    ``early_stopping``, ``batch_size``, ``fit_intercept`` and ``shuffle``;
    ``estimator`` is named in the error for NaN or infinity in X. An
    out-of-core X stays a host array (see _streaming.py); under early
    stopping its training rows are indexed, never copied.
    """
    X, Y, sw, kind = data.X, data.Y, data.sample_weight, data.kind
    device, tdtype = data.device, data.tdtype
    stream = kind == "numpy" and should_stream(X, device, params["out_of_core"])
    gram_checks = check_rows(data, stream, params, estimator)
    train_rows = validation = None
    if params["early_stopping"]:
        idx_train, idx_val = split(Y, sw)
        X, Y, sw, validation = hold_out(
            data, idx_train, idx_val, validation_class, keep_x=stream
        )
        train_rows = idx_train if stream else None
    options = dict(
        fit_intercept=params["fit_intercept"],
        batch_size=params["batch_size"],
        shuffle=params["shuffle"],
        generator=data.generator,
        device=device,
        dtype=tdtype,
    )
    if stream:
        oracle = streaming_oracle(X, Y, sw, data.loss, rows=train_rows, **options)
        return oracle, validation
    try:
        oracle = choose_oracle(
            X if kind == "sparse" else to_tensor(X, device, tdtype),
            to_tensor(Y, device, tdtype),
            to_tensor(sw, device, tdtype),
            data.loss,
            **options,
        )
    except ValueError:  # statistics overflow: NaN or inf in X first
        if gram_checks:
            check_finite_host(X, "X", estimator)
        raise
    return oracle, validation


def check_rows(data: FitData, stream: bool, params, estimator) -> bool:
    """Check a dense numpy X for NaN and infinity where its validation left
    the check to come, unless the Gram path of the whole X does it: one
    pass for its statistics, which are finite iff X is, or overflow, checks
    what it computes instead of reading X once more (a tenth of its fit).
    Returns whether that path is left to check."""
    X = data.X
    unchecked = not data.x_checked
    gram_checks = (
        unchecked
        and not stream
        and not params["early_stopping"]
        and data.sample_weight is None
        and prefers_gram(*X.shape, data.loss, params["batch_size"])
    )
    if unchecked and not gram_checks:
        check_finite_host(X, "X", estimator)
    return gram_checks


def hold_out(data: FitData, idx_train, idx_val, validation_class, keep_x=False):
    """The training rows of ``data`` (X, Y, sample weights) and the
    validation set of the rows ``idx_val``, on the data's device;
    ``keep_x``: X whole (a streamed X's training rows are indexed)."""
    X, Y, sw, kind = data.X, data.Y, data.sample_weight, data.kind
    device, tdtype = data.device, data.tdtype

    def take(a, i):
        if a is None:
            return None
        if kind == "torch":
            return a[torch.as_tensor(i, device=a.device)]
        return a[i]

    Xv = take(X, idx_val)
    validation = validation_class(
        (
            csr_to_torch(Xv, device, tdtype)
            if kind == "sparse"
            else to_tensor(Xv, device, tdtype)
        ),
        to_tensor(take(Y, idx_val), device, tdtype),
        to_tensor(take(sw, idx_val), device, tdtype),
    )
    if not keep_x:
        X = take(X, idx_train)
    return X, take(Y, idx_train), take(sw, idx_train), validation


def split_rows(Y, sw, splitter, validation_fraction):
    """The training and validation rows of the early-stopping split of
    ``splitter`` (scikit-learn's errors where a set is empty or weighs
    nothing); the training rows in the data's order."""
    n = Y.shape[0]
    message = (
        f"Splitting {n} samples into a train set and a validation set with "
        f"validation_fraction={validation_fraction} led to an empty set. "
        "Please either change validation_fraction, increase number of "
        "samples, or disable early_stopping."
    )
    try:
        idx_train, idx_val = next(splitter.split(np.zeros((n, 1)), Y))
    except ValueError as exc:  # the splitter's own message names test_size
        raise ValueError(message) from exc
    if idx_train.shape[0] == 0 or idx_val.shape[0] == 0:
        raise ValueError(message)
    # the training rows in the data's order, as scikit-learn's SGD visits
    # them (it masks the validation rows out): with shuffle=False the
    # fit then sees the rows in the order given, as without early stopping
    idx_train = np.sort(idx_train)
    # bool(... .any()): sw may be a tensor
    if sw is not None and not bool((sw[idx_val] > 0).any()):
        raise ValueError(
            "The sample weights for validation set are all zero, consider "
            "using a different random state."
        )
    if sw is not None and not bool((sw[idx_train] > 0).any()):
        raise ValueError(
            "The sample weights for the training set are all zero, consider "
            "using a different random state."
        )
    return idx_train, idx_val


def run_engine(
    oracle,
    validation,
    schedule,
    init,
    data: FitData,
    mode,
    planner,
    *,
    fit_intercept,
    on_epoch,
):
    """The engine's run on ``oracle`` from ``init``, as ``planner`` plans
    it for the fit ``mode`` (a FitMode)."""
    return train(
        oracle,
        penalty=data.penalty,
        schedule=schedule,
        solver=planner.make_solver(oracle, data.partial),
        stopping=planner.stopping(mode.tol, mode.partial),
        max_iter=mode.max_iter,
        fit_intercept=fit_intercept,
        average=planner.average_start(),
        init=init,
        validation=validation,
        on_epoch=on_epoch,
        joint_outputs=data.loss.joint,
        intercept_decay=planner.intercept_decay(data.kind),
    )
