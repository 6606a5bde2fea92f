"""Plots of a fitted model's training: loss curves and the descent itself.

The displays follow scikit-learn's visualisation API
(:class:`sklearn.metrics.PredictionErrorDisplay` and friends): build one with
``from_estimator`` (or the constructor, from plain arrays), draw it with
``plot(ax=...)``, and find the matplotlib artists afterwards in attributes
ending in an underscore (``figure_``, ``ax_``, ``line_``, ...).

matplotlib is an optional dependency: it is imported inside the methods that
draw, so ``import sklearn_gd.plotting`` works without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .data._array_api import output_space, to_numpy_any

__all__ = ["DescentDisplay", "LossCurveDisplay"]


def _check_matplotlib(caller: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{caller} requires matplotlib. You can install matplotlib with "
            "`pip install matplotlib` (or `pip install sklearn-gd[examples]`)."
        ) from exc


def _final_estimator(estimator):
    """The last step of a Pipeline (where the fitted attributes live)."""
    if hasattr(estimator, "steps"):
        return estimator.steps[-1][1]
    return estimator


def _estimator_name(estimator) -> str:
    return type(_final_estimator(estimator)).__name__


def _new_axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax


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
        _check_matplotlib(f"{type(self).__name__}.plot")
        ax = _new_axes(ax)
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
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        final = _final_estimator(estimator)
        check_is_fitted(final)
        if getattr(final, "loss_curve_", None) is None:
            raise ValueError(
                f"{type(final).__name__} has no loss_curve_; LossCurveDisplay "
                "needs a model that records its objective per epoch."
            )
        display = cls(
            loss_curve=final.loss_curve_,
            validation_scores=getattr(final, "validation_scores_", None),
            estimator_name=_estimator_name(estimator) if name is None else name,
        )
        return display.plot(
            ax=ax,
            log_scale=log_scale,
            line_kwargs=line_kwargs,
            validation_line_kwargs=validation_line_kwargs,
        )


class DescentDisplay:
    """A one-feature model's fitted line over its data, and the descent to it.

    Draws the data as a scatter and the model's prediction over a grid of the
    feature as a line (one of each per output for multi-output targets). When
    the model was fitted with ``record_history=True``, :meth:`animate` replays
    the training: one frame per epoch, the line moving towards the fit.

    Parameters
    ----------
    x : array-like of shape (n_samples,)
        The feature.

    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The targets.

    x_grid : array-like of shape (n_grid,)
        Where the lines are evaluated.

    y_grid : array-like of shape (n_grid,) or (n_grid, n_outputs)
        The fitted model's predictions on ``x_grid``.

    path : array-like of shape (n_epochs, n_grid) or \
            (n_epochs, n_grid, n_outputs), default=None
        The predictions on ``x_grid`` after each epoch, for :meth:`animate`.

    estimator_name : str or None, default=None
        Used in the legend.

    Attributes
    ----------
    scatter_ : matplotlib.collections.PathCollection
        The data (of the first output).

    scatters_ : list of matplotlib.collections.PathCollection
        The data, one scatter per output.

    line_ : matplotlib.lines.Line2D
        The fitted line (of the first output).

    lines_ : list of matplotlib.lines.Line2D
        The fitted lines, one per output.

    ax_ : matplotlib.axes.Axes
        The axes drawn on.

    figure_ : matplotlib.figure.Figure
        The figure holding the axes.

    animation_ : matplotlib.animation.FuncAnimation
        Set by :meth:`animate`.

    See Also
    --------
    LossCurveDisplay : The objective per epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gd import TorchSGDRegressor
    >>> from sklearn_gd.plotting import DescentDisplay
    >>> X = np.linspace(-1, 1, 30).reshape(-1, 1)
    >>> y = 3 * X[:, 0] + 2
    >>> reg = TorchSGDRegressor(max_iter=20, tol=None, record_history=True)
    >>> display = DescentDisplay.from_estimator(reg.fit(X, y), X, y)
    >>> anim = display.animate(frames=5)
    >>> # anim.save("descent.gif", writer="pillow") or anim.to_jshtml()
    """

    def __init__(
        self,
        *,
        x: np.ndarray,
        y: np.ndarray,
        x_grid: np.ndarray,
        y_grid: np.ndarray,
        path: np.ndarray | None = None,
        estimator_name: str | None = None,
    ) -> None:
        self.x = x
        self.y = y
        self.x_grid = x_grid
        self.y_grid = y_grid
        self.path = path
        self.estimator_name = estimator_name

    @staticmethod
    def _columns(a) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return a[:, None] if a.ndim == 1 else a

    def plot(
        self,
        ax=None,
        *,
        name: str | None = None,
        scatter_kwargs: dict[str, Any] | None = None,
        line_kwargs: dict[str, Any] | None = None,
    ) -> DescentDisplay:
        """Draw the data and the fitted line(s).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axes to draw on; a new figure when None.

        name : str or None, default=None
            Legend label of the line; defaults to ``estimator_name``.

        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter`` (for every output).

        line_kwargs : dict, default=None
            Passed to ``ax.plot`` (for every output).

        Returns
        -------
        display : DescentDisplay
            ``self``, with the artists stored.
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        ax = _new_axes(ax)
        name = self.estimator_name if name is None else name
        x = np.asarray(self.x, dtype=np.float64).ravel()
        Y = self._columns(self.y)
        x_grid = np.asarray(self.x_grid, dtype=np.float64).ravel()
        G = self._columns(self.y_grid)
        multi = Y.shape[1] > 1

        self.scatters_, self.lines_ = [], []
        for j in range(Y.shape[1]):
            # one output: orange data, blue line (as in the seed tutorials);
            # several: one colour per output for its data and its line
            dot, color = (f"C{j}", f"C{j}") if multi else ("C1", "C0")
            suffix = f" (output {j})" if multi else ""
            skw = {"s": 12, "alpha": 0.6, "color": dot, "label": f"data{suffix}"}
            skw.update(scatter_kwargs or {})
            self.scatters_.append(ax.scatter(x, Y[:, j], **skw))
            lkw = {"color": color, "linewidth": 2, "label": f"{name or 'fit'}{suffix}"}
            lkw.update(line_kwargs or {})
            (line,) = ax.plot(x_grid, G[:, j], **lkw)
            self.lines_.append(line)
        self.scatter_ = self.scatters_[0]
        self.line_ = self.lines_[0]
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def animate(
        self,
        *,
        frames: int | Sequence[int] | None = None,
        interval: int = 50,
        repeat: bool = False,
        **kwargs: Any,
    ):
        """Replay the descent: the line(s) after each recorded epoch.

        Draws the display first if :meth:`plot` has not been called.

        Parameters
        ----------
        frames : int, sequence of int or None, default=None
            None: one frame per epoch. An int ``m``: ``m`` epochs evenly
            spaced from the first to the last (fewer frames make a smaller
            GIF). A sequence: those epochs (0-based indices into ``path``).

        interval : int, default=50
            Milliseconds between frames.

        repeat : bool, default=False
            Whether the animation loops when shown interactively.

        **kwargs
            Passed to :class:`matplotlib.animation.FuncAnimation`.

        Returns
        -------
        animation : matplotlib.animation.FuncAnimation
            Save it with ``animation.save("descent.gif", writer="pillow")``
            or embed it in a notebook with ``animation.to_jshtml()``. Keep a
            reference to it while it plays (also stored in ``animation_``).
        """
        _check_matplotlib(f"{type(self).__name__}.animate")
        from matplotlib.animation import FuncAnimation

        if self.path is None:
            raise ValueError(
                "DescentDisplay.animate needs the training path: fit the model "
                "with record_history=True (or pass path=...)."
            )
        path = np.asarray(self.path, dtype=np.float64)
        if path.ndim == 2:
            path = path[:, :, None]
        n_epochs = path.shape[0]
        if n_epochs == 0:
            raise ValueError("The training path is empty: nothing to animate.")
        if frames is None:
            epochs = np.arange(n_epochs)
        elif isinstance(frames, int | np.integer):
            if frames < 1:
                raise ValueError(f"frames must be >= 1, got {frames}.")
            epochs = np.unique(
                np.linspace(0, n_epochs - 1, min(frames, n_epochs)).round()
            ).astype(int)
        else:
            epochs = np.asarray(frames, dtype=int)
            if epochs.size and (epochs.min() < -n_epochs or epochs.max() >= n_epochs):
                raise ValueError(
                    f"frames must index the {n_epochs} recorded epochs; got "
                    f"{epochs.min()}..{epochs.max()}."
                )
            epochs = epochs % n_epochs
        if not hasattr(self, "lines_"):
            self.plot()
        ax = self.ax_
        # the lines sweep through values the final fit does not cover
        lo = min(path.min(), np.asarray(self.y, dtype=np.float64).min())
        hi = max(path.max(), np.asarray(self.y, dtype=np.float64).max())
        pad = 0.05 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)

        def update(epoch):
            for j, line in enumerate(self.lines_):
                line.set_ydata(path[epoch, :, j])
            ax.set_title(f"epoch {epoch + 1} of {n_epochs}")
            return tuple(self.lines_)

        self.animation_ = FuncAnimation(
            self.figure_,
            update,
            frames=list(epochs),
            interval=interval,
            repeat=repeat,
            **kwargs,
        )
        return self.animation_

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        grid_resolution: int = 100,
        ax=None,
        name: str | None = None,
        scatter_kwargs: dict[str, Any] | None = None,
        line_kwargs: dict[str, Any] | None = None,
    ) -> DescentDisplay:
        """Plot a fitted one-feature model over its data.

        Parameters
        ----------
        estimator : estimator or Pipeline
            Fitted regressor on one input feature. A Pipeline works too (its
            transformers may expand the feature, e.g. into polynomial terms);
            the training path comes from its last step.

        X : array-like of shape (n_samples, 1)
            The feature (a DataFrame keeps its column name for ``predict``).

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets.

        grid_resolution : int, default=100
            Number of points of the line between ``X.min()`` and ``X.max()``.

        ax : matplotlib.axes.Axes, default=None
            Axes to draw on; a new figure when None.

        name : str or None, default=None
            Legend label; the estimator's class name when None.

        scatter_kwargs, line_kwargs : dict, default=None
            Passed to matplotlib's ``scatter`` and ``plot``.

        Returns
        -------
        display : DescentDisplay
            Call :meth:`animate` on it to replay a model fitted with
            ``record_history=True``.
        """
        _check_matplotlib(f"{cls.__name__}.from_estimator")
        final = _final_estimator(estimator)
        check_is_fitted(final)
        # tensors on any device, or arrays of any namespace: drawn as numpy
        X_host = to_numpy_any(X)
        Xa = X_host.astype(np.float64)
        if Xa.ndim != 2 or Xa.shape[1] != 1:
            raise ValueError(
                f"DescentDisplay draws models of one feature; X has shape "
                f"{Xa.shape}. Pass X of shape (n_samples, 1)."
            )
        x = Xa[:, 0]
        x_grid = np.linspace(x.min(), x.max(), grid_resolution)
        grid = x_grid[:, None]
        if hasattr(X, "columns"):  # keep feature names: predict would warn
            import pandas as pd

            grid = pd.DataFrame(grid, columns=X.columns)
        # under array API dispatch the model predicts in X's namespace only
        space = output_space(X)
        grid_in = grid if space is None else space.put(grid.astype(X_host.dtype))
        y_grid = to_numpy_any(estimator.predict(grid_in)).astype(np.float64)

        path = None
        coef_path = getattr(final, "coef_path_", None)
        if coef_path is not None:
            Z = grid if final is estimator else estimator[:-1].transform(grid)
            Z = np.asarray(Z, dtype=np.float64)
            coef_path = to_numpy_any(coef_path).astype(np.float64)
            icpt_path = to_numpy_any(final.intercept_path_).astype(np.float64)
            if coef_path.ndim == 2:  # (n_epochs, n_features): one output
                path = coef_path @ Z.T + icpt_path[:, :1]
            else:  # (n_epochs, n_outputs, n_features)
                path = np.einsum("gd,ekd->egk", Z, coef_path) + icpt_path[:, None]

        display = cls(
            x=x,
            y=to_numpy_any(y),
            x_grid=x_grid,
            y_grid=y_grid,
            path=path,
            estimator_name=_estimator_name(estimator) if name is None else name,
        )
        return display.plot(
            ax=ax, scatter_kwargs=scatter_kwargs, line_kwargs=line_kwargs
        )
