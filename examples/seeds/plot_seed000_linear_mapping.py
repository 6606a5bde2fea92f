"""
Seed 000: a 16 -> 4 linear mapping learned by five gradient steps
=================================================================

The first seed tutorial learns a linear map from a 16-vector to a 4-vector
(no intercept, float64, weights starting at zero) with ``torch.optim.SGD`` at
``lr = 0.0005`` on ``torch.nn.MSELoss``, for five full-batch steps on a single
sample. Here :class:`~sklearn_gd.TorchSGDRegressor` does the same as a
multi-output regression with ``y`` of shape (1, 4).

Conventions: our squared loss is ``(y - p)^2 / 2`` per output, averaged over
the outputs in ``loss_curve_``, while ``MSELoss`` averages ``(y - p)^2`` over
the 4 outputs. So the seed's loss is ``2 * loss_curve_`` and its learning rate
``lr`` is our ``eta0 = 2 * lr / 4 = lr / 2``. The seed's matrix ``W2`` has
shape (16, 4); our ``coef_`` is its transpose, (4, 16).
"""

# %%
import os
from pathlib import Path

import numpy as np

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


# %%
# The data of the seed: x = -16, -14, ..., 14 and y = the first four primes.
x = np.arange(-16, 16, 2, dtype=np.float64).reshape(1, -1)  # one sample
y = np.array([[2.0, 3.0, 5.0, 7.0]])
lr_seed, n_outputs = 0.0005, y.shape[1]

reg = TorchSGDRegressor(
    fit_intercept=False,
    penalty=None,
    learning_rate="constant",
    eta0=2 * lr_seed / n_outputs,
    max_iter=5,
    tol=None,
    record_history=True,
).fit(x, y)

# %%
# The loss before each step (``loss_curve_`` is the objective at the start of
# each full-batch epoch), in the seed's convention.
seed_losses = ["21.75", "9.359808", "4.027862335488", "1.733334166004564"]
seed_losses.append("0.7459160916617404")
for step, (ours, seed) in enumerate(zip(reg.loss_curve_, seed_losses)):
    report(f"step {step} loss", repr(2 * ours), seed)

# %%
# The weight matrix after step 4, as the seed prints it (4 decimals).
SEED_W2_STEP4 = np.array(
    [
        [-0.0204, -0.0306, -0.0511, -0.0715],
        [-0.0179, -0.0268, -0.0447, -0.0626],
        [-0.0153, -0.0230, -0.0383, -0.0536],
        [-0.0128, -0.0192, -0.0319, -0.0447],
        [-0.0102, -0.0153, -0.0255, -0.0358],
        [-0.0077, -0.0115, -0.0192, -0.0268],
        [-0.0051, -0.0077, -0.0128, -0.0179],
        [-0.0026, -0.0038, -0.0064, -0.0089],
        [0.0000, 0.0000, 0.0000, 0.0000],
        [0.0026, 0.0038, 0.0064, 0.0089],
        [0.0051, 0.0077, 0.0128, 0.0179],
        [0.0077, 0.0115, 0.0192, 0.0268],
        [0.0102, 0.0153, 0.0255, 0.0358],
        [0.0128, 0.0192, 0.0319, 0.0447],
        [0.0153, 0.0230, 0.0383, 0.0536],
        [0.0179, 0.0268, 0.0447, 0.0626],
    ]
)
W2 = reg.coef_.T  # (16, 4), the seed's layout
print("W2 after step 4 (ours, coef_.T rounded to 4 decimals):")
print(np.array2string(W2, precision=4, suppress_small=True, floatmode="fixed"))
diff = np.abs(np.round(W2, 4) - SEED_W2_STEP4).max()
report("W2 max |diff| (4 dec.)", f"{diff:.1e}", "0 (printed to 4 decimals)")
report("prediction x @ W2", np.array2string(x[0] @ W2, precision=4), "-> y=[2 3 5 7]")

# %%
# Figures: the loss per step, and the learned matrix next to the seed's.
if plt is not None:
    from sklearn_gd.plotting import LossCurveDisplay

    OUT.mkdir(parents=True, exist_ok=True)
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(12, 4))
    LossCurveDisplay(
        loss_curve=2 * np.asarray(reg.loss_curve_), estimator_name="TorchSGDRegressor"
    ).plot(ax=ax0, log_scale=True)
    ax0.plot(
        np.arange(1, 6), [float(s) for s in seed_losses], "k+", ms=12, label="seed"
    )
    ax0.set_ylabel("MSELoss (seed convention)")
    ax0.legend()
    lim = np.abs(SEED_W2_STEP4).max()
    for ax, W, title in ((ax1, W2, "ours: coef_.T"), (ax2, SEED_W2_STEP4, "seed: W2")):
        im = ax.imshow(W, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_title(f"{title} after step 4")
        ax.set_xlabel("output")
        ax.set_ylabel("input")
    fig.colorbar(im, ax=[ax1, ax2])
    fig.savefig(OUT / "seed000_linear_mapping.png", dpi=80)
    print(f"saved {OUT / 'seed000_linear_mapping.png'}")
