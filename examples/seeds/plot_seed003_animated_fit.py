"""
Seed 003: watching a line being fitted
======================================

The fourth seed tutorial (from fastai's lesson 2) draws 100 points
``x ~ U(-1, 1)``, targets ``y = 3x + 2 + U(0, 1)`` (the intercept through a
column of ones), starts from ``a = (1, 1)``, runs gradient descent at
``lr = 0.1`` for 100 steps printing the MSE every 10 steps, and then animates
the line as it is fitted from ``a = (-1, 1)``.

The seed's data came from torch's global generator without a seed, so we
draw new data from a seeded ``torch.Generator``: the printed losses are close
to the seed's, not equal (for this model the starting MSE is 3.67 in
expectation, and the final one the variance of the noise, 1/12 = 0.083, in
expectation). :class:`~sklearn_gd.plotting.DescentDisplay` replays the
descent from the parameters recorded by ``record_history=True``.

Conventions: the seed's ``lr`` is our ``eta0 = 2 * lr`` and its MSE is
``2 * loss_curve_``.
"""

# %%
import os
from pathlib import Path

import numpy as np
import torch

from sklearn_gd import TorchSGDRegressor

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


# %%
n = 100
gen = torch.Generator().manual_seed(0)
x = torch.empty(n).uniform_(-1.0, 1.0, generator=gen)
y = 3 * x + 2 + torch.rand(n, generator=gen)
X, y = x.numpy().reshape(-1, 1), y.numpy()


def gd(coef, intercept, record=False):
    reg = TorchSGDRegressor(
        penalty=None,
        learning_rate="constant",
        eta0=2 * 0.1,
        max_iter=100,
        tol=None,
        record_history=record,
    )
    return reg.fit(X, y, coef_init=[coef], intercept_init=[intercept])


# %%
# From a = (1, 1): the MSE before steps 0, 10, ..., 90.
reg = gd(1.0, 1.0)
seed_losses = ["3.8033", "0.4544", "0.1692", "0.1089", "0.0950"]
seed_losses += ["0.0918", "0.0911", "0.0909", "0.0908", "0.0908"]
print("data re-drawn (the seed's was unseeded): values are close, not equal")
for t, seed in zip(range(0, 100, 10), seed_losses):
    report(f"step {t} MSE", f"{2 * reg.loss_curve_[t]:.4f}", seed)
fitted = f"({reg.coef_[0]:.4f}, {reg.intercept_[0]:.4f})"
report("(slope, intercept)", fitted, "not printed; truth (3, 2.5) = (3, 2 + E[noise])")

# %%
# The animation, from a = (-1, 1), one frame per recorded epoch.
reg_anim = gd(-1.0, 1.0, record=True)
if plt is not None:
    from matplotlib.animation import PillowWriter

    from sklearn_gd.plotting import DescentDisplay, LossCurveDisplay

    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 4))
    LossCurveDisplay(loss_curve=2 * np.asarray(reg.loss_curve_)).plot(
        ax=ax, log_scale=True, name="from a = (1, 1)"
    )
    ax.plot(np.arange(1, 101, 10), [float(s) for s in seed_losses], "k+", label="seed")
    ax.set_ylabel("MSE (seed convention)")
    ax.legend()
    fig.savefig(OUT / "seed003_loss_curve.png", dpi=80)
    print(f"saved {OUT / 'seed003_loss_curve.png'}")

    display = DescentDisplay.from_estimator(reg_anim, X, y)
    n_frames = 4 if FAST else reg_anim.coef_path_.shape[0]  # 100 epochs
    anim = display.animate(frames=n_frames, interval=20)
    anim.save(OUT / "seed003_animated_fit.gif", writer=PillowWriter(fps=25), dpi=60)
    print(f"saved {OUT / 'seed003_animated_fit.gif'} ({n_frames} frames)")
    # in a notebook: from IPython.display import HTML; HTML(anim.to_jshtml())
