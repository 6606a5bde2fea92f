"""The training objective per epoch, drawn as a loss curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._common import check_matplotlib, class_name, final_estimator, new_axes

__all__ = ["LossCurveDisplay"]


class LossCurveDisplay:
    """The training objective per epoch, with validation scores if any.

    The loss curve is drawn against the epoch number (1-based) on the left
    axis; the validation R^2 of early stopping, when present, on a twin axis
    at the right (the two have unrelated scales).

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        The objective of each epoch, e.g. ``TorchSGDRegressor.loss_curve_``.

    validation_scores : array-like of shape (n_epochs,) or None, default=None
        A score per epoch, e.g. ``validation_scores_`` (None when the model
        was fitted without ``early_stopping``).

    estimator_name : str or None, default=None
        Used in the legend.

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
        The loss curve.

    validation_line_ : matplotlib.lines.Line2D or None
        The validation scores, None without them.

    ax_ : matplotlib.axes.Axes
        The axes of the loss curve.

    validation_ax_ : matplotlib.axes.Axes or None
        The twin axes of the validation scores, None without them.

    figure_ : matplotlib.figure.Figure
        The figure holding the axes.

    See Also
    --------
    DescentDisplay : The fitted line over the data, and its animation.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gd import TorchSGDRegressor
    >>> from sklearn_gd.plotting import LossCurveDisplay
    >>> X = np.arange(20.0).reshape(-1, 1) / 20
    >>> y = 3 * X[:, 0] + 1
    >>> reg = TorchSGDRegressor(max_iter=50, tol=None).fit(X, y)
    >>> display = LossCurveDisplay.from_estimator(reg, log_scale=True)
    >>> display.line_.get_xdata()[:3]
    array([1, 2, 3])
    """

    def __init__(
        self,
        *,
        loss_curve: Sequence[float] | np.ndarray,
        validation_scores: Sequence[float] | np.ndarray | None = None,
        estimator_name: str | None = None,
    ) -> None:
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name

    def plot(
        self,
        ax=None,
        *,
        log_scale: bool = False,
        name: str | None = None,
        line_kwargs: dict[str, Any] | None = None,
        validation_line_kwargs: dict[str, Any] | None = None,
    ) -> LossCurveDisplay:
        """Draw the curve(s).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axes to draw on; a new figure when None. Several models can share
            one axes by passing the same ``ax``.

        log_scale : bool, default=False
            Use a logarithmic y axis for the loss (useful when the objective
            falls over orders of magnitude).

        name : str or None, default=None
            Legend label; defaults to ``estimator_name``.

        line_kwargs : dict, default=None
            Passed to ``ax.plot`` for the loss curve.

        validation_line_kwargs : dict, default=None
            Passed to ``plot`` for the validation scores.

        Returns
        -------
        display : LossCurveDisplay
            ``self``, with the artists stored.
        """
        check_matplotlib(f"{type(self).__name__}.plot")
        ax = new_axes(ax)
        name = self.estimator_name if name is None else name
        loss = np.asarray(self.loss_curve, dtype=np.float64).ravel()
        epochs = np.arange(1, loss.shape[0] + 1)

        kwargs = {"label": f"{name} training loss" if name else "training loss"}
        kwargs.update(line_kwargs or {})
        (self.line_,) = ax.plot(epochs, loss, **kwargs)
        ax.set_xlabel("epoch")
        ax.set_ylabel("objective (loss + penalty)")
        if log_scale:
            ax.set_yscale("log")

        self.validation_line_ = None
        self.validation_ax_ = None
        handles = [self.line_]
        if self.validation_scores is not None:
            scores = np.asarray(self.validation_scores, dtype=np.float64).ravel()
            vax = ax.twinx()
            vkwargs = {
                "color": "tab:orange",
                "linestyle": "--",
                "label": f"{name} validation score" if name else "validation score",
            }
            vkwargs.update(validation_line_kwargs or {})
            (self.validation_line_,) = vax.plot(
                np.arange(1, scores.shape[0] + 1), scores, **vkwargs
            )
            vax.set_ylabel("validation score (R$^2$)")
            self.validation_ax_ = vax
            handles.append(self.validation_line_)
        ax.legend(handles=handles, loc="best")

        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        ax=None,
        log_scale: bool = False,
        name: str | None = None,
        line_kwargs: dict[str, Any] | None = None,
        validation_line_kwargs: dict[str, Any] | None = None,
    ) -> LossCurveDisplay:
        """Plot the loss curve of a fitted estimator.

        Parameters
        ----------
        estimator : estimator or Pipeline
            Fitted, with a ``loss_curve_`` attribute (a Pipeline's last step is
            used).

        ax : matplotlib.axes.Axes, default=None
            Axes to draw on; a new figure when None.

        log_scale : bool, default=False
            Logarithmic y axis for the loss.

        name : str or None, default=None
            Legend label; the estimator's class name when None.

        line_kwargs, validation_line_kwargs : dict, default=None
            Passed to matplotlib's ``plot``.

        Returns
        -------
        display : LossCurveDisplay
        """
        check_matplotlib(f"{cls.__name__}.from_estimator")
        final = final_estimator(estimator)
        check_is_fitted(final)
        if getattr(final, "loss_curve_", None) is None:
            raise ValueError(
                f"{type(final).__name__} has no loss_curve_; LossCurveDisplay "
                "needs a model that records its objective per epoch."
            )
        display = cls(
            loss_curve=final.loss_curve_,
            validation_scores=getattr(final, "validation_scores_", None),
            estimator_name=class_name(estimator) if name is None else name,
        )
        return display.plot(
            ax=ax,
            log_scale=log_scale,
            line_kwargs=line_kwargs,
            validation_line_kwargs=validation_line_kwargs,
        )
