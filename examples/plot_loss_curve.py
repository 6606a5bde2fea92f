"""
Loss curves and the descent, animated
=====================================

:class:`~sklearn_gd.TorchSGDRegressor` records its objective at every epoch
(``loss_curve_``), the validation R^2 when ``early_stopping=True``
(``validation_scores_``), and with ``record_history=True`` the parameters
after every epoch (``coef_path_``, ``intercept_path_``).
:mod:`sklearn_gd.plotting` turns them into figures in scikit-learn's display
style: :class:`~sklearn_gd.plotting.LossCurveDisplay` and
:class:`~sklearn_gd.plotting.DescentDisplay`, whose ``animate()`` gives a
matplotlib animation to save as a GIF or show in a notebook.

This script writes the README's figures, ``loss_curve.png`` and
``descent.gif``.
"""

# %%
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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

# %%
# A loss curve with early stopping: the objective on the training part, the
# validation R^2 on a twin axis. A small constant rate makes the descent
# visible over many epochs.
X, y = make_regression(
    n_samples=500 if FAST else 5000, n_features=20, noise=10.0, random_state=0
)
model = make_pipeline(
    StandardScaler(),
    TorchSGDRegressor(
        learning_rate="constant",
        eta0=0.05,
        early_stopping=True,
        max_iter=300,
        random_state=0,
    ),
)
model.fit(X, y)
reg = model[-1]
print(
    f"early stopping after {reg.n_iter_} epochs: objective {reg.loss_curve_[0]:.1f}"
    f" -> {reg.loss_curve_[-1]:.2f}, best validation R^2 "
    f"{reg.best_validation_score_:.4f}"
)

# %%
# The descent on one feature: the line after every epoch.
rng = np.random.RandomState(0)
x1 = rng.uniform(-1, 1, size=(100, 1))
y1 = 3 * x1[:, 0] + 2 + rng.uniform(0, 1, size=100)
line = TorchSGDRegressor(
    penalty=None,
    learning_rate="constant",
    eta0=0.1,
    max_iter=60,
    tol=None,
    record_history=True,
).fit(x1, y1, coef_init=[-1.0], intercept_init=[1.0])
ls_slope, ls_intercept = np.polyfit(x1[:, 0], y1, 1)
print(
    f"line after {line.n_iter_} epochs: slope {line.coef_[0]:.3f}, "
    f"intercept {line.intercept_[0]:.3f}; the least-squares line is slope "
    f"{ls_slope:.3f}, intercept {ls_intercept:.3f} (the data's truth: 3, 2.5)"
)
print(
    "  (60 small constant steps from slope -1 cover most of the way; the "
    "animation shows the line closing in)"
)

# %%
if plt is not None:
    from matplotlib.animation import PillowWriter

    from sklearn_gd.plotting import DescentDisplay, LossCurveDisplay

    OUT.mkdir(parents=True, exist_ok=True)
    display = LossCurveDisplay.from_estimator(model, log_scale=True)
    display.ax_.set_title("TorchSGDRegressor, early stopping")
    display.figure_.tight_layout()
    display.figure_.savefig(OUT / "loss_curve.png", dpi=90)
    print(f"saved {OUT / 'loss_curve.png'}")

    descent = DescentDisplay.from_estimator(line, x1, y1)
    n_frames = 5 if FAST else 60
    anim = descent.animate(frames=n_frames, interval=80)
    anim.save(OUT / "descent.gif", writer=PillowWriter(fps=12), dpi=60)
    print(f"saved {OUT / 'descent.gif'} ({n_frames} frames)")
