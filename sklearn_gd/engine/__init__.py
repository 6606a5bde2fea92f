"""The training loops and the state they resume from.

:func:`~sklearn_gd.engine._engine.train` runs a solver over a problem's
batches, epoch by epoch: steps, the stopping rule, divergence and restarts,
averaging and the history, for one problem or for a batch of independent
problems, a unit of columns each (the cross-validated search's folds x
configurations), each with its own rate, stopping state and restarts.
"""
