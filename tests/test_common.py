"""scikit-learn's common estimator checks, over every public estimator.

The default configuration (full-batch, deterministic) passes every check,
including the sample-weight equivalence checks that sklearn lists as expected
failures for its own SGDRegressor. Minibatch configurations see a different
sequence of batches when rows are repeated instead of weighted, so they take
exactly that one entry of sklearn's own list, for the same reason.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_gd import TorchSGDClassifierCV, TorchSGDRegressor, TorchSGDRegressorCV

# Minibatch configurations get max_iter=50 (sklearn tests its own
# SGDRegressor with max_iter=5): their Python-level step per batch makes
# 1000 epochs over the checks' data slow, and none of the checks needs them.
ESTIMATORS = [
    TorchSGDRegressor(),
    # torch's L-BFGS (strong-Wolfe search), run as far as it goes
    TorchSGDRegressor(optimizer="lbfgs", tol=1e-12),
    TorchSGDRegressor(
        loss="huber",
        penalty="elasticnet",
        batch_size=16,
        random_state=0,
        average=True,
        max_iter=50,
    ),
    TorchSGDRegressor(
        optimizer="adam", eta0=0.05, batch_size=8, random_state=0, max_iter=50
    ),
    # the cross-validated searches (their settings as sklearn tests LassoCV's:
    # few alphas, cv=3); sklearn's checks give estimators with a ``cv`` their
    # own splits for the sample-weight equivalence, which they pass
    TorchSGDRegressorCV(alphas=5, cv=3),
    TorchSGDClassifierCV(alphas=5, cv=3),
]


# torch.optim.LBFGS cannot pass the sample-weight checks: they compare
# predictions at atol=1e-9 on rows of weight zero, whose coefficients'
# directions (15 x 30 data) are fixed by the penalty alone (curvature
# alpha=1e-4 against ~10 in the data's), and torch's strong-Wolfe search stops
# improving where objective values round (the SGD rule, or its own stall),
# 1e-9 to 1e-5 from the optimum depending on the draw. Measured on 20 draws of
# the checks' data: 3 (dense) and 2 (sparse) pass; with tol=None and
# max_iter=300, 9 and 14. The weighted objective itself is checked elsewhere
# (test_regressor.py::test_sample_weight_is_repetition, L-BFGS included), and
# the default and "auto" solvers pass these checks.
LBFGS_REASON = (
    "torch's L-BFGS stops 1e-9 to 1e-5 from the optimum on rows of weight "
    "zero, whose directions only alpha=1e-4 fixes; the checks need 1e-9."
)


def expected_failed_checks(estimator):
    if getattr(estimator, "optimizer", None) == "lbfgs":
        return {
            "check_sample_weight_equivalence_on_dense_data": LBFGS_REASON,
            "check_sample_weight_equivalence_on_sparse_data": LBFGS_REASON,
        }
    if estimator.batch_size is None:
        return {}
    # The entry sklearn lists for SGDRegressor in
    # sklearn/utils/_test_common/instance_generator.py (PER_ESTIMATOR_XFAIL_CHECKS):
    # with minibatches, repeating a row changes which rows share a batch, so
    # weighting is equivalent to repeating only in expectation.
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "sample_weight is not equivalent to removing/repeating samples "
            "with minibatches."
        ),
        "check_sample_weight_equivalence_on_sparse_data": (
            "sample_weight is not equivalent to removing/repeating samples "
            "with minibatches."
        ),
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    # (checks on torch devices this machine cannot use are skipped in conftest)
    check(estimator)
