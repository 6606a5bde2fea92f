"""The training loop: epochs of optimizer steps over a gradient oracle.

The engine never sees an estimator. It takes an oracle (the data term), the
components (penalty, schedule, optimizer name) and plain settings, runs
epochs until a stopping rule fires, and returns a :class:`TrainResult`. The
stopping rules are scikit-learn's SGD ones:

* without early stopping, an epoch makes no progress when its mean objective
  is above ``best - tol``;
* with early stopping, when the validation R^2 is below ``best + tol``;
* after ``n_iter_no_change`` such epochs in a row the schedule is told; the
  "adaptive" schedule divides its rate by 5 and training goes on, the others
  stop.

Within an epoch nothing waits on the device: losses are accumulated as
tensors and read once per epoch, where divergence is also checked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ._optimizers import build_optimizer, prox_scale, set_lr

__all__ = ["DivergenceError", "TrainResult", "TrainState", "Validation", "train"]


class DivergenceError(ValueError):
    """The objective or the parameters became inf or NaN during training."""


@dataclass
class TrainState:
    """Parameters the training starts from (and that partial_fit carries)."""

    coef: torch.Tensor  # (n_features, n_outputs)
    intercept: torch.Tensor  # (n_outputs,)
    t: int = 1  # weight updates so far, plus one (sklearn's t_)
    avg_coef: torch.Tensor | None = None
    avg_intercept: torch.Tensor | None = None
    optimizer_state: dict | None = None


@dataclass
class Validation:
    """Held-out data for early stopping, scored by R^2 (sklearn's ``score``)."""

    X: torch.Tensor
    Y: torch.Tensor
    sample_weight: torch.Tensor | None

    def __post_init__(self):
        sw = self.sample_weight
        w = (
            torch.ones(self.Y.shape[0], dtype=self.Y.dtype, device=self.Y.device)
            if sw is None
            else sw
        )
        self._w = w[:, None]
        mean = (self.Y * self._w).sum(0) / self._w.sum()
        self._sst = (((self.Y - mean) ** 2) * self._w).sum(0)

    def score(self, W, b) -> torch.Tensor:
        """R^2 averaged uniformly over outputs (a 0-dim tensor)."""
        P = self.X @ W + b
        sse = (((self.Y - P) ** 2) * self._w).sum(0)
        # sklearn's r2_score: a constant target scores 1 if fitted exactly, else 0
        r2 = torch.where(
            self._sst > 0,
            1 - sse / self._sst.clamp_min(1e-300),
            (sse == 0).to(sse.dtype),
        )
        return r2.mean()


@dataclass
class TrainResult:
    """What one call of :func:`train` produced."""

    coef: torch.Tensor
    intercept: torch.Tensor
    n_iter: int
    t: int
    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_loss: float = math.inf
    best_validation_score: float | None = None
    avg_coef: torch.Tensor | None = None
    avg_intercept: torch.Tensor | None = None
    standard_coef: torch.Tensor | None = None  # last iterate, before averaging
    standard_intercept: torch.Tensor | None = None
    optimizer_state: dict | None = None
    converged: bool = False
    lr: float = 0.0


@dataclass
class EpochInfo:
    """Handed to the per-epoch callback."""

    epoch: int  # 1-based
    loss: float
    validation_score: float | None
    coef: torch.Tensor
    intercept: torch.Tensor
    t: int
    lr: float
    elapsed: float


def _divergence_message(epoch, loss_value, lr):
    return (
        f"Training diverged at epoch {epoch}: the objective became {loss_value} "
        f"(learning rate {lr:.3g}). Try a smaller eta0, scale the features "
        "(e.g. StandardScaler), or learning_rate='adaptive'."
    )


def train(
    oracle,
    *,
    penalty,
    schedule,
    optimizer="sgd",
    momentum=0.0,
    nesterov=False,
    max_iter=1000,
    tol=1e-3,
    n_iter_no_change=5,
    fit_intercept=True,
    average=0,
    init: TrainState,
    validation: Validation | None = None,
    on_epoch=None,
) -> TrainResult:
    """Minimise ``oracle`` data term + ``penalty`` from ``init``.

    Parameters
    ----------
    oracle : DirectOracle or GramOracle
    penalty : Penalty
    schedule : Schedule
    optimizer : {"sgd", "adam", "adamw", "lbfgs"}
    momentum, nesterov : float, bool
        For "sgd".
    max_iter : int
        Epochs (passes over the data) at most.
    tol : float or None
        None disables the progress test (training runs ``max_iter`` epochs).
    n_iter_no_change : int
    fit_intercept : bool
    average : int
        0 for no averaging; else the update number from which the iterates
        are averaged (averaged SGD).
    init : TrainState
    validation : Validation or None
        Early stopping on the validation R^2 when given; the best parameters
        seen are restored at the end.
    on_epoch : callable or None
        Called with an :class:`EpochInfo` after each epoch; returning True
        stops the training.

    Raises
    ------
    DivergenceError
        When the objective or parameters become non-finite and the schedule
        cannot shrink its rate any further.
    """
    W = init.coef.detach().clone()
    b = init.intercept.detach().clone()
    params = [W, b] if fit_intercept else [W]
    t = int(init.t)
    use_lbfgs = optimizer == "lbfgs"
    decoupled = optimizer == "adamw"
    lr0 = schedule.rate(t)

    def make_opt():
        return build_optimizer(
            optimizer,
            params,
            lr=lr0,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=penalty.l2 if decoupled else 0.0,
        )

    opt = make_opt()
    if init.optimizer_state is not None:
        opt.load_state_dict(init.optimizer_state)

    avg_W = init.avg_coef.clone() if init.avg_coef is not None else None
    avg_b = init.avg_intercept.clone() if init.avg_intercept is not None else None
    if average and avg_W is None:
        avg_W, avg_b = torch.zeros_like(W), torch.zeros_like(b)

    tol_ = -math.inf if tol is None else tol
    best_loss, best_score = math.inf, -math.inf
    best_params = None
    no_improvement = 0
    loss_curve, scores = [], ([] if validation is not None else None)
    n_iter = 0
    converged = False
    lr = lr0
    start = time.perf_counter()
    snapshot = epoch_start = best_start = (W.clone(), b.clone(), t)

    def penalised(values, Wc):
        # mean over outputs of data term + penalty
        return (values + penalty.value(Wc)).mean()

    def closure():
        values, _, gW, gb = oracle.loss_grad(W, b, oracle.full_batch())
        gW = gW.clone()
        penalty.add_gradient_(gW, W)
        W.grad = gW
        if fit_intercept:
            b.grad = gb.clone()
        # the k outputs are k independent problems: minimise their sum
        return (values + penalty.value(W)).sum()

    with torch.no_grad():
        epoch = 0
        while epoch < max_iter:
            acc = torch.zeros((), dtype=torch.float64, device=W.device)
            wsum = 0.0
            if use_lbfgs:
                lr = schedule.rate(t)
                set_lr(opt, lr)
                first = opt.step(closure)
                acc = acc + first.to(torch.float64) / W.shape[1]
                wsum = 1.0
                t += 1
            else:
                for idx in oracle.batches():
                    lr = schedule.rate(t)
                    set_lr(opt, lr)
                    values, weight, gW, gb = oracle.loss_grad(W, b, idx)
                    acc = acc + penalised(values, W).to(torch.float64) * weight
                    wsum = wsum + weight
                    if not decoupled:
                        penalty.add_gradient_(gW, W)
                    W.grad = gW
                    if fit_intercept:
                        b.grad = gb
                    opt.step()
                    if penalty.has_prox:
                        penalty.prox_(W, prox_scale(optimizer, opt, W, lr))
                    if average and t >= average:
                        k = t - average + 1
                        avg_W.add_(W - avg_W, alpha=1.0 / k)
                        avg_b.add_(b - avg_b, alpha=1.0 / k)
                    t += 1
            epoch += 1
            epoch_loss = float(acc / wsum)  # the one host sync of the epoch
            finite = math.isfinite(epoch_loss) and bool(
                torch.isfinite(W).all() and torch.isfinite(b).all()
            )
            if not finite:
                if schedule.on_stall():
                    # shrink the step and redo from the last good epoch
                    W.copy_(snapshot[0])
                    b.copy_(snapshot[1])
                    t = snapshot[2]
                    opt = make_opt()
                    epoch -= 1
                    continue
                raise DivergenceError(_divergence_message(epoch, epoch_loss, lr))
            if epoch_loss < best_loss:
                # the parameters this epoch's loss was measured at (exactly so
                # for the full batch): where "adaptive" restarts after a stall
                best_start = epoch_start
            epoch_start = snapshot = (W.clone(), b.clone(), t)
            n_iter = epoch
            loss_curve.append(epoch_loss)

            cur_W, cur_b = (avg_W, avg_b) if average and t - 1 >= average else (W, b)
            score = None
            if validation is not None:
                score = float(validation.score(cur_W, cur_b))
                scores.append(score)
                if score < best_score + tol_:
                    no_improvement += 1
                else:
                    no_improvement = 0
                if score > best_score:
                    best_score = score
                    best_params = (cur_W.clone(), cur_b.clone())
            else:
                if epoch_loss > best_loss - tol_:
                    no_improvement += 1
                else:
                    no_improvement = 0
            best_loss = min(best_loss, epoch_loss)

            stop = False
            if on_epoch is not None:
                stop = bool(
                    on_epoch(
                        EpochInfo(
                            epoch=epoch,
                            loss=epoch_loss,
                            validation_score=score,
                            coef=cur_W,
                            intercept=cur_b,
                            t=t,
                            lr=lr,
                            elapsed=time.perf_counter() - start,
                        )
                    )
                )
            if no_improvement >= n_iter_no_change:
                if schedule.on_stall():
                    no_improvement = 0
                    if validation is None and epoch_loss > best_loss:
                        # the objective grew: restart from the best point with
                        # the smaller step instead of from wherever it went
                        W.copy_(best_start[0])
                        b.copy_(best_start[1])
                        opt = make_opt()
                else:
                    converged = True
                    stop = True
            if stop:
                break

    if average and t - 1 >= average:
        out_W, out_b = avg_W.clone(), avg_b.clone()
    else:
        out_W, out_b = W, b
    if validation is not None and best_params is not None:
        out_W, out_b = best_params
    return TrainResult(
        coef=out_W,
        intercept=out_b,
        n_iter=n_iter,
        t=t,
        loss_curve=loss_curve,
        validation_scores=scores,
        best_loss=best_loss,
        best_validation_score=None if validation is None else best_score,
        avg_coef=avg_W,
        avg_intercept=avg_b,
        standard_coef=W,
        standard_intercept=b,
        optimizer_state=opt.state_dict(),
        converged=converged,
        lr=lr,
    )
