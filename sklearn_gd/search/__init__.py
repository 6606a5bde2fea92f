"""The cross-validated search of the CV estimators.

Folds and their weights, the alpha grids, the training of every (split,
l1_ratio, alpha) configuration (as columns of one parameter matrix, from
the folds' moments, or by the base estimator's own fits), their scores and
GridSearchCV's ``cv_results_``.
"""
