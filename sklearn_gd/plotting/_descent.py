"""A one-feature model's fitted line over its data, and the descent to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..data._array_api import output_space, to_numpy_any
from ._common import check_matplotlib, class_name, final_estimator, new_axes
from ._descent_path import animation_epochs, epoch_path, prediction_path

__all__ = ["DescentDisplay"]


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
        check_matplotlib(f"{type(self).__name__}.plot")
        ax = new_axes(ax)
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
        check_matplotlib(f"{type(self).__name__}.animate")
        from matplotlib.animation import FuncAnimation

        path = epoch_path(self.path)
        n_epochs = path.shape[0]
        epochs = animation_epochs(frames, n_epochs)
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
        check_matplotlib(f"{cls.__name__}.from_estimator")
        final = final_estimator(estimator)
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

        display = cls(
            x=x,
            y=to_numpy_any(y),
            x_grid=x_grid,
            y_grid=y_grid,
            path=prediction_path(estimator, final, grid),
            estimator_name=class_name(estimator) if name is None else name,
        )
        return display.plot(
            ax=ax, scatter_kwargs=scatter_kwargs, line_kwargs=line_kwargs
        )
