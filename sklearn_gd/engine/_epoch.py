"""One epoch of solver steps over the batches, and its one read on the host."""

from __future__ import annotations

import torch

from ._iterate import Iterate
from ._problem import Problem

__all__ = ["read_epoch", "run_epoch"]


def run_epoch(problem: Problem, solver, schedule, it: Iterate):
    """One epoch of solver steps; returns the epoch's mean objective (a
    0-dim tensor) and the last learning rate."""
    oracle = problem.oracle
    if solver.full_batch:
        return _run_batches(problem, solver, schedule, it, (oracle.full_batch(),))
    with oracle.batch_threads():
        return _run_batches(problem, solver, schedule, it, oracle.batches())


def _run_batches(problem: Problem, solver, schedule, it: Iterate, batches):
    penalty = problem.penalty
    # the L1 step and the running average read the coefficients after each
    # step; without them a step may leave them lazily scaled
    if penalty.has_prox or it.averager is not None:
        return _steps(problem, solver, schedule, it, batches)
    with problem.lazily(it.theta):
        return _steps(problem, solver, schedule, it, batches)


def _steps(problem: Problem, solver, schedule, it: Iterate, batches):
    penalty = problem.penalty
    acc, wsum, lr = 0.0, 0.0, schedule.rate(it.t)
    W = problem.coef(it.theta)
    for idx in batches:
        lr = schedule.rate(it.t)
        objective, weight = solver.step(problem, idx, lr)
        acc = acc + objective * weight
        wsum = wsum + weight
        scale = solver.prox_step(lr) if penalty.has_prox else None
        if scale is not None:  # None: the solver took its proximal step
            if isinstance(scale, torch.Tensor):
                scale = scale[: problem.d]
            penalty.prox_(W, scale)
        if it.averager is not None:
            it.averager.update(it.theta, it.t)
        it.t += 1
    return acc / wsum, lr


def read_epoch(mean, it: Iterate) -> tuple[float, float]:
    """The epoch's objective and the parameters' sum (finite iff every
    parameter is): the one host synchronisation of the epoch."""
    if isinstance(mean, float):  # a full-batch solver's objective, already read
        return mean, float(it.finite_check())
    loss = torch.as_tensor(mean, dtype=torch.float64, device=it.theta.device)
    both = torch.stack([loss.reshape(()), it.finite_check().to(torch.float64)])
    loss, param_sum = both.tolist()
    return loss, param_sum
