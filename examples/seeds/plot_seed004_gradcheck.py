"""
Seed 004: checking gradients, then a two-parameter fit
======================================================

The fifth seed tutorial differentiates ``g(f(x))`` with
``f(x1, x2) = (log(x1 x2), sin(x2))`` and ``g(u, v) = u v`` at
``x = (0.5, 0.75)`` three ways (autograd, the hand-derived formula, forward
finite differences with step 1e-3), then fits ``y = 2 + x + noise`` with an
intercept and a slope by ``torch.optim.SGD`` at ``lr = 0.1`` for 500 epochs.

We redo the check with :func:`sklearn_gd.gradcheck.finite_difference_gradient`
(forward differences as the seed, and central ones, whose error is
``O(h^2)`` instead of ``O(h)``), apply the same lesson to the package's own
losses with :func:`sklearn_gd.gradcheck.check_loss_gradients`, and fit the
line with :class:`~sklearn_gd.TorchSGDRegressor`.

The seed's regression data and starting point came from torch's unseeded
global generator; we draw them from a seeded ``torch.Generator``, so those
numbers are close to the seed's, not equal (the final MSE estimates the noise
variance, 1).
"""

# %%
import os
from pathlib import Path

import numpy as np
import torch

from sklearn_gd import TorchSGDRegressor
from sklearn_gd.gradcheck import check_loss_gradients, finite_difference_gradient
from sklearn_gd.model._losses import LOSSES

FAST = os.environ.get("SKLEARN_GD_FAST", "0") not in ("", "0")
# where the figures are saved (the gallery build sets it: no __file__ there)
OUT = os.environ.get("SKLEARN_GD_EXAMPLES_OUT")
OUT = Path(OUT) if OUT else Path(__file__).parent / "output"
try:
    import matplotlib

    if "MPLBACKEND" not in os.environ and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")  # headless: write files, open no window
    import matplotlib.pyplot as plt
except ImportError:  # the numbers are still printed
    plt = None


def report(label, ours, seed):
    print(f"{label:<24} ours {ours:<24} seed {seed}")


def fmt(v):
    return "(" + ", ".join(f"{float(a):.4f}" for a in v) + ")"


# %%
# The composite function and its gradient at (0.5, 0.75).
def composite(x):
    u, v = torch.log(x[0] * x[1]), torch.sin(x[1])
    return u * v


x0 = torch.tensor([0.5, 0.75], requires_grad=True)  # float32, as the seed
composite(x0).backward()
hand = (
    torch.sin(x0[1]) / x0[0],
    torch.sin(x0[1]) / x0[1] + torch.log(x0[0] * x0[1]) * torch.cos(x0[1]),
)
report("autograd", fmt(x0.grad), "(1.3633, 0.1912)")
report("hand-derived", fmt(t.item() for t in hand), "(1.3633, 0.1912)")
fwd = finite_difference_gradient(composite, x0.detach(), 1e-3, method="forward")
report("forward diff. h=1e-3", fmt(fwd), "(1.3619, 0.1919)")
central = finite_difference_gradient(composite, x0.detach().double(), 1e-6)
report("central diff. h=1e-6", fmt(central), "- (not in the seed)")
err = np.abs(central - x0.grad.double().numpy()).max()
print(f"central vs autograd: max |diff| = {err:.1e} (float32 autograd)")

# %%
# The same lesson applied to the package: every loss's closed-form derivative
# against autograd and central differences (float64, step 1e-6).
for name in LOSSES:
    res = check_loss_gradients(name, n_points=100 if FAST else 1000)
    print(
        f"loss {name:<28} autograd {res.autograd_error:.1e}  "
        f"finite diff. {res.finite_difference_error:.1e}  "
        f"({res.n_points} points) {'ok' if res.passed(1e-6) else 'FAILED'}"
    )

# %%
# y = 2 + x + noise, fitted from a random start (seed lr 0.1 = our eta0 0.2).
n = 100
gen = torch.Generator().manual_seed(4)
x = torch.randn(n, generator=gen)
y = 2 + x + torch.randn(n, generator=gen)
b0, b1 = torch.randn(2, generator=gen)
X, y = x.numpy().reshape(-1, 1), y.numpy()
reg = TorchSGDRegressor(
    penalty=None,
    learning_rate="constant",
    eta0=2 * 0.1,
    max_iter=500,
    tol=None,
).fit(X, y, coef_init=[b1.item()], intercept_init=[b0.item()])
print("data and start re-drawn (the seed's were unseeded): close, not equal")
seed_losses = ["4.7735", "1.0073", "1.0073", "1.0073", "1.0073"]
for epoch, seed in zip(range(0, 500, 100), seed_losses):
    report(f"epoch {epoch} MSE", f"{2 * reg.loss_curve_[epoch]:.4f}", seed)
report("(b0, b1)", fmt((reg.intercept_[0], reg.coef_[0])), "(1.8190, 1.0083)")
A = np.column_stack([np.ones(n), X[:, 0]]).astype(np.float64)
ols = np.linalg.lstsq(A, y.astype(np.float64), rcond=None)[0]
report("OLS (b0, b1)", fmt(ols), "- (truth (2, 1))")

# %%
# Figure: the data and the fitted line.
if plt is not None:
    from sklearn_gd.plotting import DescentDisplay

    OUT.mkdir(parents=True, exist_ok=True)
    display = DescentDisplay.from_estimator(reg, X, y)
    display.ax_.plot(X[:, 0], 2 + X[:, 0], "k:", lw=1, label="truth y = 2 + x")
    display.ax_.legend()
    display.figure_.savefig(OUT / "seed004_two_parameter_fit.png", dpi=80)
    print(f"saved {OUT / 'seed004_two_parameter_fit.png'}")
