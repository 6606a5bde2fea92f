"""Plots of a fitted model's training: loss curves and the descent itself.

The displays follow scikit-learn's visualisation API
(:class:`sklearn.metrics.PredictionErrorDisplay` and friends): build one with
``from_estimator`` (or the constructor, from plain arrays), draw it with
``plot(ax=...)``, and find the matplotlib artists afterwards in attributes
ending in an underscore (``figure_``, ``ax_``, ``line_``, ...).

matplotlib is an optional dependency: it is imported inside the methods that
draw, so ``import sklearn_gd.plotting`` works without it.
"""

from ._descent import DescentDisplay
from ._loss_curve import LossCurveDisplay

__all__ = ["DescentDisplay", "LossCurveDisplay"]
