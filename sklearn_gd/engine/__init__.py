"""The training loops and the state they resume from.

:func:`~sklearn_gd.engine._engine.train` runs a solver over a problem's
batches, epoch by epoch: steps, the stopping rule, divergence and restarts,
averaging and the history. :func:`~sklearn_gd.engine._cv_engine.train_columns`
runs gradient descent on a batch of problems, one column each.
"""
