"""
Seed 001: y = 2x fitted by hand, by autograd and by the estimator
=================================================================

The second seed tutorial fits ``y = 2x`` on ``x = 1, 2, 3, 4`` (float32, no
intercept, ``w`` starting at 0) three ways: numpy with a hand-written
gradient, torch autograd, and ``torch.optim.SGD``, all at ``lr = 0.01``.
We rerun the first two as the seed wrote them, then reproduce both traces
with :class:`~sklearn_gd.TorchSGDRegressor`.

Conventions: our loss is ``(y - p)^2 / 2``, so the seed's MSE is
``2 * loss_curve_`` and its ``lr`` is our ``eta0 = 2 * lr``. The seed's numpy
"gradient" ``np.dot(2x, p - y).mean()`` takes the mean of a scalar: it is the
sum over the 4 samples, not the mean, so that trace ran at an effective rate
4 times larger (our ``eta0 = 2 * 4 * lr``). Its third part (``nn.Linear``)
starts from random weights and is not reproduced.
"""

# %%
import os
from pathlib import Path

import numpy as np
import torch

from sklearn_gd import TorchSGDRegressor

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


x = np.array([1, 2, 3, 4], dtype=np.float32)
y = 2 * x
X = x.reshape(-1, 1)
lr = 0.01

# %%
# 1. numpy, with the seed's hand-written gradient (a sum, see above).
w = 0.0
numpy_trace = []
for _ in range(10):
    p = w * x
    loss = ((p - y) ** 2).mean()
    w -= lr * np.dot(2 * x, p - y).mean()
    numpy_trace.append((w, loss))

# 2. torch autograd, as in the seed.
wt = torch.tensor(0.0, requires_grad=True)
xt, yt = torch.from_numpy(x), torch.from_numpy(y)
autograd_trace = []
for _ in range(20):
    loss = ((wt * xt - yt) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        wt -= lr * wt.grad
    wt.grad.zero_()
    autograd_trace.append((wt.item(), loss.item()))


# %%
# 3. The estimator: plain full-batch gradient descent at a constant rate.
def gd(eta0, epochs):
    return TorchSGDRegressor(
        fit_intercept=False,
        penalty=None,
        learning_rate="constant",
        eta0=eta0,
        max_iter=epochs,
        tol=None,
        record_history=True,
    ).fit(X, y)


reg_numpy = gd(2 * 4 * lr, 10)  # the numpy trace (gradient summed over 4 rows)
reg = gd(2 * lr, 20)  # the autograd / torch.optim.SGD trace

SEED_NUMPY = [
    ("1.200", "30.00000000"), ("1.680", "4.79999924"), ("1.872", "0.76800019"),
    ("1.949", "0.12288000"), ("1.980", "0.01966083"), ("1.992", "0.00314574"),
    ("1.997", "0.00050331"), ("1.999", "0.00008053"), ("1.999", "0.00001288"),
    ("2.000", "0.00000206"),
]  # fmt: skip
SEED_TORCH = [
    ("0.300", "30.00000000"), ("0.772", "15.66018772"), ("1.113", "8.17471695"),
    ("1.359", "4.26725292"), ("1.537", "2.22753215"), ("1.665", "1.16278565"),
    ("1.758", "0.60698116"), ("1.825", "0.31684780"), ("1.874", "0.16539653"),
    ("1.909", "0.08633806"),
]  # fmt: skip

print("numpy by hand (lr 0.01, gradient summed), epochs 1..10:")
for e, (seed_w, seed_l) in enumerate(SEED_NUMPY):
    w_ours = reg_numpy.coef_path_[e, 0]
    l_ours = 2 * reg_numpy.loss_curve_[e]
    report(
        f"  epoch {e + 1} w, loss", f"{w_ours:.3f}, {l_ours:.8f}", f"{seed_w}, {seed_l}"
    )
    assert abs(numpy_trace[e][0] - w_ours) < 1e-5  # the by-hand loop agrees
report("  numpy f(5)", f"{reg_numpy.predict([[5.0]])[0]:.5f}", "9.99895")

print("torch autograd / torch.optim.SGD (lr 0.01), epochs 1, 3, ..., 19:")
for i, (seed_w, seed_l) in enumerate(SEED_TORCH):
    e = 2 * i
    w_ours = reg.coef_path_[e, 0]
    l_ours = 2 * reg.loss_curve_[e]
    report(
        f"  epoch {e + 1} w, loss", f"{w_ours:.3f}, {l_ours:.8f}", f"{seed_w}, {seed_l}"
    )
    assert abs(autograd_trace[e][0] - w_ours) < 1e-5
report("  torch f(5)", f"{reg.predict([[5.0]])[0]:.5f}", "9.61241")

# %%
# Figures: the two loss traces (seed convention) and the fitted line's
# approach to y = 2x.
if plt is not None:
    from sklearn_gd.plotting import DescentDisplay, LossCurveDisplay

    OUT.mkdir(parents=True, exist_ok=True)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
    for r, name in ((reg_numpy, "numpy trace"), (reg, "autograd trace")):
        LossCurveDisplay(loss_curve=2 * np.asarray(r.loss_curve_)).plot(
            ax=ax0, log_scale=True, name=name
        )
    seed_l = [float(s) for _, s in SEED_TORCH]
    ax0.plot(np.arange(1, 21, 2), seed_l, "k+", ms=10, label="seed (autograd)")
    ax0.legend()
    ax0.set_ylabel("MSE (seed convention)")
    disp = DescentDisplay.from_estimator(reg, X, y, ax=ax1, name="after 20 epochs")
    ax1.plot(X[:, 0], 2 * X[:, 0], "k:", label="y = 2x")
    ax1.legend()
    fig.savefig(OUT / "seed001_y_equals_2x.png", dpi=80)
    print(f"saved {OUT / 'seed001_y_equals_2x.png'}")
