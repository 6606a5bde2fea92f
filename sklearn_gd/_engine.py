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
from ._schedules import Adaptive

__all__ = [
    "AccuracyValidation",
    "DivergenceError",
    "TrainResult",
    "TrainState",
    "Validation",
    "train",
]


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


class AccuracyValidation(Validation):
    """Held-out data for early stopping, scored by (weighted) accuracy.

    ``Y`` holds one column per class (+1 for the sample's class, -1 or 0
    elsewhere), or a single {-1, +1} column for a binary problem; the
    predicted class is the largest column, or the sign of the single one.
    """

    def score(self, W, b) -> torch.Tensor:
        P = self.X @ W + b
        if P.shape[1] == 1:
            hit = (P > 0) == (self.Y > 0)
        else:
            hit = (P.argmax(1) == self.Y.argmax(1))[:, None]
        w = self._w
        return (hit.to(w.dtype) * w).sum() / w.sum()


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
    interrupted: bool = False
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


def _divergence_message(epoch, loss_value, lr, adaptive=False):
    hint = (
        "learning_rate='adaptive' already shrank the step to its floor; try a "
        "smaller eta0 or scale the features (e.g. StandardScaler)."
        if adaptive
        else "Try a smaller eta0, scale the features (e.g. StandardScaler), or "
        "learning_rate='adaptive'."
    )
    return (
        f"Training diverged at epoch {epoch}: the objective became {loss_value:.6g} "
        f"(learning rate {lr:.3g}), non-finite or over 1000 times that of the "
        f"all-zero model. {hint}"
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
    joint_outputs=False,
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
        Early stopping on the validation score (R^2, or accuracy for
        :class:`AccuracyValidation`) when given; the best parameters seen are
        restored at the end.
    on_epoch : callable or None
        Called with an :class:`EpochInfo` after each epoch; returning True
        stops the training.
    joint_outputs : bool
        False: the outputs are independent problems, and the reported
        objective is their mean. True: they form one problem (a joint loss
        such as softmax cross-entropy), and the reported objective is the sum
        of the data terms plus the penalty of the whole matrix.

    Raises
    ------
    DivergenceError
        When the objective or parameters become non-finite and the schedule
        cannot shrink its rate any further.
    """
    d, k = init.coef.shape
    # one parameter matrix: coefficients on top, the intercept as last row
    if fit_intercept:
        theta = torch.cat([init.coef.detach(), init.intercept.detach()[None, :]], 0)
    else:
        theta = init.coef.detach().clone()
    W = theta[:d]
    zero_b = torch.zeros(k, dtype=theta.dtype, device=theta.device)

    def bias(th):
        return th[d] if fit_intercept else zero_b

    t = int(init.t)
    use_lbfgs = optimizer == "lbfgs"
    decoupled = optimizer == "adamw"
    plain_sgd = optimizer == "sgd" and momentum == 0
    lr = schedule.rate(t)
    # An epoch whose mean objective is 1e3 times that of the all-zero model
    # has diverged even when it is still finite (float32 reaches 3e38).
    zero_loss = float(oracle.zero_model_loss().mean())
    blowup = 1e3 * zero_loss if zero_loss > 0 else math.inf
    # every schedule starts at its largest rate: check it fits the data's dtype
    if not lr <= torch.finfo(theta.dtype).max:
        raise ValueError(
            f"The learning rate {lr:.3g} overflows {theta.dtype} (the data's "
            "dtype): choose a smaller eta0 (or a larger alpha with "
            "learning_rate='optimal')."
        )

    def make_opt():
        if plain_sgd:
            return None  # the update is one in-place axpy; torch.optim adds overhead
        name = "adam" if decoupled else optimizer
        return build_optimizer(
            name, [theta], lr=lr, momentum=momentum, nesterov=nesterov
        )

    opt = make_opt()
    if opt is not None and init.optimizer_state is not None:
        try:
            opt.load_state_dict(init.optimizer_state)
        except (ValueError, KeyError):
            pass  # a state from another optimizer: start afresh

    avg = None
    if average:
        if init.avg_coef is not None:
            avg = torch.cat([init.avg_coef, init.avg_intercept[None, :]], 0)
            avg = avg if fit_intercept else avg[:d].clone()
        else:
            avg = torch.zeros_like(theta)

    tol_ = -math.inf if tol is None else tol
    best_loss, best_score = math.inf, -math.inf
    best_params = None
    no_improvement = 0
    loss_curve, scores = [], ([] if validation is not None else None)
    n_iter = 0
    converged = False
    start = time.perf_counter()
    epoch_start = best_start = (theta.clone(), t)

    # the reported objective times sum_scale is the sum L-BFGS minimises
    sum_scale = 1 if joint_outputs else k

    def objective(values):
        # mean over outputs of data term + penalty (times k for a joint loss)
        obj = values.mean() + penalty.total(W) / k
        return obj * k if joint_outputs else obj

    def closure():
        values, _, g = oracle.loss_grad(theta, oracle.full_batch())
        penalty.add_gradient_(g[:d], W)
        theta.grad = g
        # k independent problems or one joint one: minimise the sum
        return objective(values) * sum_scale

    interrupted = False
    epoch = 0
    with torch.no_grad():
        try:
            while epoch < max_iter:
                if use_lbfgs:
                    lr = schedule.rate(t)
                    set_lr(opt, lr)
                    acc = opt.step(closure) / sum_scale
                    wsum = 1.0
                    t += 1
                else:
                    acc = 0.0
                    wsum = 0.0
                    for idx in oracle.batches():
                        lr = schedule.rate(t)
                        values, weight, g = oracle.loss_grad(theta, idx)
                        acc = acc + objective(values) * weight
                        wsum = wsum + weight
                        if decoupled:
                            W.mul_(1.0 - lr * penalty.l2)
                        else:
                            penalty.add_gradient_(g[:d], W)
                        if plain_sgd:
                            theta.sub_(g, alpha=lr)
                        else:
                            set_lr(opt, lr)
                            theta.grad = g
                            opt.step()
                        if penalty.has_prox:
                            scale = prox_scale(optimizer, opt, theta, lr)
                            if isinstance(scale, torch.Tensor):
                                scale = scale[:d]
                            penalty.prox_(W, scale)
                        if average and t >= average:
                            avg.add_(theta - avg, alpha=1.0 / (t - average + 1))
                        t += 1
                epoch += 1
                # the one host synchronisation of the epoch: the mean objective,
                # with the parameters' sum riding along to catch inf/NaN in them
                check = torch.stack(
                    [
                        torch.as_tensor(
                            acc / wsum, dtype=torch.float64, device=theta.device
                        ).reshape(()),
                        theta.sum().to(torch.float64),
                    ]
                ).tolist()
                epoch_loss = check[0]
                if not (
                    math.isfinite(epoch_loss)
                    and math.isfinite(check[1])
                    and epoch_loss <= blowup
                ):
                    if schedule.on_stall():
                        # shrink the step and go back to the best point seen: the
                        # start of this epoch may already be far off after a
                        # minibatch epoch that blew up only at its end
                        theta.copy_(best_start[0])
                        t = best_start[1]
                        opt = make_opt()
                        epoch -= 1
                        continue
                    raise DivergenceError(
                        _divergence_message(
                            epoch, epoch_loss, lr, isinstance(schedule, Adaptive)
                        )
                    )
                if epoch_loss < best_loss:
                    # the parameters this epoch's loss was measured at (exactly so
                    # for the full batch): where "adaptive" restarts after a stall
                    best_start = epoch_start
                epoch_start = (theta.clone(), t)
                n_iter = epoch
                loss_curve.append(epoch_loss)

                cur = avg if average and t - 1 >= average else theta
                score = None
                if validation is not None:
                    score = float(validation.score(cur[:d], bias(cur)))
                    scores.append(score)
                    if score < best_score + tol_:
                        no_improvement += 1
                    else:
                        no_improvement = 0
                    if score > best_score:
                        best_score = score
                        best_params = cur.clone()
                elif epoch_loss > best_loss - tol_:
                    no_improvement += 1
                else:
                    no_improvement = 0
                best_loss = min(best_loss, epoch_loss)

                stop = False
                if on_epoch is not None:
                    info = EpochInfo(
                        epoch=epoch,
                        loss=epoch_loss,
                        validation_score=score,
                        coef=cur[:d],
                        intercept=bias(cur),
                        t=t,
                        lr=lr,
                        elapsed=time.perf_counter() - start,
                    )
                    stop = bool(on_epoch(info))
                if no_improvement >= n_iter_no_change:
                    if schedule.on_stall():
                        no_improvement = 0
                        if validation is None and epoch_loss > best_loss:
                            # the objective grew: restart from the best point with
                            # the smaller step instead of from wherever it went
                            theta.copy_(best_start[0])
                            opt = make_opt()
                    else:
                        converged = True
                        stop = True
                if stop:
                    break
        except KeyboardInterrupt:
            # keep the best parameters reached so far; the caller warns
            interrupted = True
            if validation is None:
                # the end of the last complete epoch if that epoch was the best
                # so far (its minibatch loss was measured along the way to it),
                # else the start of the best epoch
                last_best = bool(loss_curve) and loss_curve[-1] <= best_loss
                theta.copy_(epoch_start[0] if last_best else best_start[0])
            average = 0  # the running average may be mid-update: drop it

    out = avg if average and t - 1 >= average else theta
    if validation is not None and best_params is not None:
        out = best_params
    return TrainResult(
        coef=out[:d].clone(),
        intercept=bias(out).clone(),
        n_iter=n_iter,
        t=t,
        loss_curve=loss_curve,
        validation_scores=scores,
        best_loss=best_loss,
        best_validation_score=None if validation is None else best_score,
        avg_coef=None if avg is None else avg[:d].clone(),
        avg_intercept=None if avg is None else bias(avg).clone(),
        standard_coef=W.clone(),
        standard_intercept=bias(theta).clone(),
        optimizer_state=None if opt is None else opt.state_dict(),
        converged=converged,
        interrupted=interrupted,
        lr=lr,
    )
