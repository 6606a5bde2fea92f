"""What the displays share: optional matplotlib, a Pipeline's last step, axes."""

from __future__ import annotations

__all__ = ["check_matplotlib", "class_name", "final_estimator", "new_axes"]


def check_matplotlib(caller: str) -> None:
    """Raise an ImportError naming ``caller`` where matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{caller} requires matplotlib. You can install matplotlib with "
            "`pip install matplotlib` (or `pip install sklearn-gd[examples]`)."
        ) from exc


def final_estimator(estimator):
    """The last step of a Pipeline (where the fitted attributes live)."""
    if hasattr(estimator, "steps"):
        return estimator.steps[-1][1]
    return estimator


def class_name(estimator) -> str:
    """The class name of an estimator (of a Pipeline's last step)."""
    return type(final_estimator(estimator)).__name__


def new_axes(ax):
    """``ax``, or the axes of a new figure when None."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    return ax
