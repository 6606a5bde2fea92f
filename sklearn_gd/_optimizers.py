"""Update rules, built on ``torch.optim``.

The engine computes gradients in closed form and hands them to a
``torch.optim`` optimizer through ``param.grad``. Each registry entry builds
the optimizer and knows its per-coordinate step, which the proximal (L1)
step needs so that sparse solutions are exact fixed points.

Which estimator parameters each optimizer reads:

=========  ==============================================================
"sgd"      ``eta0`` and ``learning_rate`` (with ``power_t``), ``momentum``,
           ``nesterov``
"adam"     ``eta0`` and ``learning_rate`` (with ``power_t``); torch's default
           betas (0.9, 0.999) and eps (1e-8)
"adamw"    as "adam"; the L2 part of the penalty is applied as decoupled
           weight decay (``alpha * (1 - l1_ratio)``), not as a gradient term
"lbfgs"    ``eta0`` (the initial step of each line search, default 1) and
           ``max_iter``; full batch, strong-Wolfe line search; no L1 part
=========  ==============================================================
"""

from __future__ import annotations

import torch

__all__ = ["OPTIMIZERS", "build_optimizer", "prox_scale"]

OPTIMIZERS = ("sgd", "adam", "adamw", "lbfgs")

# default initial learning rate when eta0="auto" and no curvature estimate
# applies (adaptive methods normalise the gradient, so its scale is moot)
AUTO_ETA0 = {"adam": 1e-3, "adamw": 1e-3, "lbfgs": 1.0}


def build_optimizer(
    name,
    params,
    *,
    lr,
    momentum=0.0,
    nesterov=False,
    betas=(0.9, 0.999),
    eps=1e-8,
    history_size=10,
):
    """A ``torch.optim`` optimizer over ``params`` for "sgd", "adam" or "lbfgs".

    "adamw" is "adam" here: the engine applies the decoupled weight decay
    itself (``w *= 1 - lr * l2`` before each step, as ``torch.optim.AdamW``
    does), to the coefficient rows of ``theta`` only, never the intercept.
    """
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    if name == "lbfgs":
        return torch.optim.LBFGS(
            params,
            lr=lr,
            max_iter=1,
            # one iteration per call, but a full strong-Wolfe search: torch's
            # default max_eval (max_iter * 5 // 4 = 1) would leave it none
            max_eval=25,
            history_size=history_size,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    raise ValueError(f"unknown optimizer {name!r}")


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def prox_scale(name, optimizer, param, lr):
    """The step that multiplied ``param``'s gradient in the last update.

    Plain SGD takes the scalar ``lr``; SGD with momentum ``m`` (heavy-ball or
    Nesterov) moves ``lr / (1 - m)`` times the gradient at a fixed point, so
    its L1 step must be as long for the fixed point to be the penalised
    optimum; Adam and AdamW take ``lr / (sqrt(v_hat) + eps)`` per coordinate.
    """
    if name == "sgd" and optimizer is not None:
        momentum = optimizer.param_groups[0].get("momentum", 0.0)
        return lr / (1.0 - momentum)
    if name in ("adam", "adamw"):
        state = optimizer.state.get(param)
        if state and "exp_avg_sq" in state:
            group = optimizer.param_groups[0]
            beta2 = group["betas"][1]
            step = float(state["step"])
            v_hat = state["exp_avg_sq"] / (1.0 - beta2**step)
            return lr / (v_hat.sqrt() + group["eps"])
    return lr
