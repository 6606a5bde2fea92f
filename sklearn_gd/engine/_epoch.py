"""One epoch of solver steps over the batches, and its one read on the host."""

from __future__ import annotations

import numpy as np
import torch

from ..objective._problem import Problem
from ._iterate import Iterate

__all__ = ["read_epoch", "run_epoch"]


def run_epoch(problem: Problem, solver, schedule, it: Iterate, active=None):
    """One epoch of solver steps; returns the epoch's mean objective (a
    0-dim tensor, or one per column for a batch of problems) and the last
    learning rate. ``active``: for a batch, 1 on the columns of the
    problems still training and 0 elsewhere (their rate)."""
    oracle = problem.oracle
    if solver.full_batch:
        batches = (oracle.full_batch(),)
        return _run_batches(problem, solver, schedule, it, batches, active)
    with oracle.batch_threads():
        return _run_batches(problem, solver, schedule, it, oracle.batches(), active)


def _run_batches(problem: Problem, solver, schedule, it: Iterate, batches, active):
    penalty = problem.penalty
    # the L1 step and the running average read the coefficients after each
    # step; without them a step may leave them lazily scaled
    if penalty.has_prox or it.averager is not None:
        return _steps(problem, solver, schedule, it, batches, active)
    with problem.lazily(it.theta):
        return _steps(problem, solver, schedule, it, batches, active)


def _steps(problem: Problem, solver, schedule, it: Iterate, batches, active):
    penalty = problem.penalty
    acc, wsum, lr = 0.0, 0.0, schedule.rate(it.t)
    W = problem.coef(it.theta)
    for idx in batches:
        lr = schedule.rate(it.t)
        if active is not None:  # a rate per column
            lr = lr.to(it.theta.dtype) * active
        objective, weight = solver.step(problem, idx, lr)
        acc = acc + objective * weight
        wsum = wsum + weight
        scale = solver.prox_step(lr) if penalty.has_prox else None
        if scale is not None:  # None: the solver took its proximal step
            if isinstance(scale, torch.Tensor):
                scale = scale[: problem.d]
            penalty.prox_(W, scale)
        it.advance(None if active is None else solver.moved)
    if isinstance(wsum, torch.Tensor) and wsum.dim():  # a column may have no rows
        wsum = wsum.clamp_min(torch.finfo(wsum.dtype).tiny)
    return acc / wsum, lr


def read_epoch(mean, it: Iterate, problem: Problem):
    """Every problem's objective and whether a parameter of it is not
    finite (host arrays): the one host synchronisation of the epoch."""
    device = it.theta.device
    if isinstance(mean, float) and problem.n_units == 1:
        # a full-batch solver's objective, already read
        return np.array([mean]), ~np.isfinite([float(it.finite_check())])
    mean = torch.as_tensor(mean, dtype=torch.float64, device=device)
    loss = problem.unit_values(mean)
    sums = problem.unit_sums(it.column_sums().to(torch.float64))
    loss, sums = torch.stack([loss, sums]).cpu().numpy()
    return loss, ~np.isfinite(sums)
