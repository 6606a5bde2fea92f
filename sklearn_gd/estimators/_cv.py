"""TorchSGDRegressorCV and TorchSGDClassifierCV: every alpha x fold in one fit.

A grid search over ``alpha`` (and ``l1_ratio``) with ``n_splits`` folds is
``n_splits x n_l1_ratios x n_alphas`` independent problems over the same
``X``. These estimators train them all as *one* parameter matrix: each
configuration is a unit of columns (one per output or class) with its own
penalty strength, its own fold weights (zero on the fold's held-out rows),
its own learning rate and its own stopping decision: one batch of
problems for the training loop a single fit uses
(:func:`sklearn_gd.engine._engine.train`). A batch of ``X`` is read once for all of
them; for the full-batch squared loss, one pass over ``X`` gives every
fold's Gram matrix and training never reads ``X`` again
(:mod:`sklearn_gd.objective._cv_oracles`).

The estimators subclass :class:`TorchSGDRegressor` and
:class:`TorchSGDClassifier`: they take the same parameters with the same
meaning (but ``alpha``, which ``alphas`` replaces, and ``warm_start``), and
after the search refit the best configuration with the base estimator, so
that ``predict``, ``score``, ``coef_`` and the rest are the base
estimator's.
"""

from __future__ import annotations

import inspect
import time
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.metrics import get_scorer_names
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions

from ..data._array_api import to_numpy_any
from ..engine._state import FitMode
from ..model._penalties import make_penalty
from ..search._cv_grid import explicit_alphas, l1_ratios
from ..search._cv_search import DROPPED, CrossValidatedSearch
from ._classifier import CLASSIFIER_CONSTRAINTS, TorchSGDClassifier
from ._regressor import REGRESSOR_CONSTRAINTS, TorchSGDRegressor

__all__ = ["TorchSGDClassifierCV", "TorchSGDRegressorCV"]

# the CV estimators' fitted attributes that a configuration's estimator
# (scored by a scorer) takes too
_LENT = ("n_features_in_", "feature_names_in_", "classes_")


def _cv_init(base, **extra):
    """An ``__init__`` with ``base``'s parameters (but ``DROPPED``), then
    ``extra`` keyword-only, that stores every argument as is.

    Its signature is explicit (``inspect.signature`` and so scikit-learn's
    ``get_params``, ``clone`` and ``repr`` see every parameter), so that the
    cross-validation estimators take the base estimator's parameters without
    repeating them.
    """
    params = [
        p
        for name, p in inspect.signature(base.__init__).parameters.items()
        if name not in DROPPED
    ]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
        for name, value in extra.items()
    ]
    signature = inspect.Signature(params)

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    __init__.__doc__ = f"Store the parameters (those of {base.__name__}, and more)."
    return __init__


_CV_DEFAULTS = dict(
    alphas=100, eps=1e-3, cv=None, scoring=None, refit=True, memory_budget=None
)


def _cv_constraints(base: dict) -> dict:
    constraints = {name: rule for name, rule in base.items() if name not in DROPPED}
    constraints.update(
        l1_ratio=[Interval(Real, 0, 1, closed="both"), "array-like", None],
        alphas=[Interval(Integral, 1, None, closed="left"), "array-like"],
        eps=[Interval(Real, 0, None, closed="neither")],
        cv=["cv_object"],
        scoring=[StrOptions(set(get_scorer_names())), callable, None],
        refit=["boolean"],
        memory_budget=[Interval(Integral, 1, None, closed="left"), None],
    )
    return constraints


_SHARED_DOC = """
    Every parameter of {base} but ``alpha`` (which ``alphas``
    replaces) and ``warm_start``, with the same meaning (with
    ``early_stopping``, each split holds out ``validation_fraction`` of its
    training rows, as the base estimator's fit on them would, and each
    configuration stops on its own validation score). Under
    ``optimizer="auto"`` every configuration is solved as the base
    estimator's default solves it: the full-batch squared loss on dense data
    exactly from its split's moments (in closed form, or by coordinate
    descent with an L1 part, ``tol`` then being the duality gap relative to
    the targets' mean square, "auto" 1e-12, as the base estimator solves
    it); every other loss by the base estimator's own fit on the split's
    training rows, as GridSearchCV fits it (its solvers stop on duality-gap
    certificates that have no column form), so that the search scores the
    models the refit would return. Under ``optimizer="lbfgs"``, by the base
    estimator's own L-BFGS fit on each split's training rows too. With
    gradient descent's own settings (``batch_size``, ``eta0``, ...), by
    gradient descent per column at SGD's tol of 1e-3. And:

    alphas : int or array-like of shape (n_alphas,), default=100
        The alphas to search, sorted in decreasing order; an int ``n`` asks
        for a grid of ``n`` alphas spaced evenly in log. With an L1 part
        (``penalty="l1"``, or ``"elasticnet"`` with ``l1_ratio > 0``) the grid
        is LassoCV's: from ``alpha_max``, the smallest alpha whose solution is
        all zeros (``max_j |X_j' L'(y, b0)| / (n * l1_ratio)``, ``b0`` the best
        intercept-only model), down to ``eps * alpha_max``, one grid per
        ``l1_ratio``. Without one (``"l2"``, None), from ``c`` down to
        ``1e-6 * c`` with ``c`` the loss's curvature bound times the mean
        variance of the features (1 for standardised features and the squared
        loss): from coefficients shrunk to about half down to unshrunk ones.

    l1_ratio : float, array-like of shape (n_l1_ratio,) or None, default=0.15
        Elastic-net mixing; a list (with ``penalty="elasticnet"``) searches
        over it too. None (not with "elasticnet") stands for 0, as in the
        base estimator.

    eps : float, default=1e-3
        ``alpha_min / alpha_max`` of an L1 grid.

    cv : int, cross-validation generator or iterable, default=None
        As in :func:`sklearn.model_selection.check_cv`: None for 5-fold, an
        int for that many folds ({folds}), a splitter, or an iterable of
        (train, test) index arrays.

    scoring : str, callable or None, default=None
        None scores with the estimator's own ``score`` ({score}, computed for
        all configurations at once on the device); else any scikit-learn
        scorer, called once per configuration and split. Test scores are
        weighted by ``sample_weight`` when it is given.

    refit : bool, default=True
        Refit the best configuration on all the data with {base}, which
        gives ``coef_``, ``predict`` and the rest. False only searches.

    memory_budget : int or None, default=None
        Bytes the training matrices may take on the device; None for half the
        free memory of a CUDA device, or a quarter of the available host
        memory. Beyond ``X`` itself (and, for the full-batch squared loss,
        ``n_splits`` Gram matrices of ``(n_features + 1)^2`` float64), training
        keeps about ``(n_features + 1) * K * c * itemsize`` bytes for ``K =
        n_splits * n_l1_ratio * n_alphas * {k}`` columns, ``c`` copies a
        column (7 for "sgd", 8 for "adam"; 3 more with ``average``), and
        rows of ``X`` are read in pieces whose ``5 * K`` temporaries a row
        take at most a quarter of the budget. Where the columns do not fit,
        the configurations are trained in groups, one after the other (each
        group reading ``X`` again).
"""

_ATTRIBUTES_DOC = """
    alpha_ : float
        The alpha of the best configuration.

    l1_ratio_ : float
        The l1_ratio of the best configuration.

    best_score_ : float
        Its mean test score.

    best_index_ : int
        Its index in ``cv_results_``.

    alphas_ : ndarray of shape (n_alphas,) or (n_l1_ratio, n_alphas)
        The grid searched (per l1_ratio when ``l1_ratio`` is a list).

    cv_results_ : dict of ndarrays
        As :class:`~sklearn.model_selection.GridSearchCV` writes it:
        ``param_alpha`` and ``param_l1_ratio`` (masked arrays), ``params``,
        ``split<i>_test_score``, ``mean_test_score``, ``std_test_score`` and
        ``rank_test_score``, one entry per configuration (l1_ratio, then
        alpha). A configuration that diverged in a split scores NaN there
        (and ranks last).

    n_splits_ : int
        The number of cross-validation splits.

    fit_time_ : float
        Seconds the whole ``fit`` took (search and refit).

    coef_, intercept_, n_iter_, t_, loss_curve_, ...
        Those of the refitted base estimator (with ``refit=True``).
"""


# ------------------------------------------------ the methods both share
# Both CV estimators take these through _CrossValidated: the search is a
# component their fit builds and commits, not a base class.
@_fit_context(prefer_skip_nested_validation=True)
def _search_fit(self, X, y, sample_weight=None, groups=None):
    """Search the grid by cross-validation, then refit the best model.

    Parameters
    ----------
    X : {array-like, sparse matrix, torch.Tensor} of shape \
            (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets (class labels for the classifier).
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights: in every fold's training (as in the base
        estimator's ``fit``) and in its test score (as in its
        ``score``).
    groups : array-like of shape (n_samples,), default=None
        Group labels for a group splitter (``GroupKFold``, ...).

    Returns
    -------
    self : object
        The fitted estimator.
    """
    self._more_validate_params()
    return self._fit_impl(X, y, sample_weight, groups)


def _searched_configurations(self):
    """The grid's settings checked, and one configuration of each kind
    searched (each l1_ratio, at the smallest alpha) for the base
    estimator's own checks."""
    alphas = explicit_alphas(self.alphas)
    probe = 1.0 if alphas is None else float(alphas.min())
    return [(probe, r) for r in l1_ratios(self._l1_ratio_value(), self.penalty)]


def _search_fit_new_state(self, X, y, sample_weight, groups):
    """The search on new state (inside the base's ``_fit_impl``, which
    restores the estimator if it fails), committed."""
    start = time.perf_counter()
    targets, labels, class_index = self._cv_targets(y)
    mode = FitMode(False, self.max_iter, self.tol, False)
    data = self._validate_data(X, targets, sample_weight, mode)
    search = CrossValidatedSearch(
        {**self.get_params(deep=False), "l1_ratio": self._l1_ratio_value()},
        base_estimator=self._base_estimator,
        # the settings every configuration shares (alpha aside)
        planner=self._planner(
            alpha=1.0, penalty=make_penalty(self.penalty, alpha=1.0, l1_ratio=0.0)
        ),
        split=self._split,
        shape_params=self._shape_params,
        fitted={name: getattr(self, name) for name in _LENT if hasattr(self, name)},
    )

    def fit_weights(weights):
        return self._fit_weights(weights, labels, class_index)

    fitted = search.run(
        data, X, y, sample_weight, groups, labels, class_index, fit_weights
    )
    for name, value in fitted.items():
        setattr(self, name, value)
    self.fit_time_ = time.perf_counter() - start
    return self


def _base_estimator(self, alpha, l1_ratio, **changes):
    """The base estimator at one configuration, with every other
    parameter this estimator's."""
    params = self.get_params(deep=False)
    params = {name: v for name, v in params.items() if name not in _CV_DEFAULTS}
    params = {**params, "l1_ratio": float(l1_ratio), **changes}
    return self._base_class(alpha=float(alpha), **params)


def _no_penalty(self):
    # the search builds one penalty per column once the grid is known
    return None


def _never(estimator) -> bool:
    return False


def _check_refitted(self, method):
    if "coef_" not in vars(self) and hasattr(self, "alpha_"):
        raise NotFittedError(
            f"This {type(self).__name__} was fitted with refit=False: it "
            f"searched the grid but has no model to {method} with. Fit the "
            "base estimator with alpha=alpha_ and l1_ratio=l1_ratio_."
        )


class _CrossValidated:
    """What both CV estimators add to their base estimator: ``fit`` runs
    the search (:class:`~sklearn_gd.search._cv_search.CrossValidatedSearch`,
    a component it builds and commits), and there is no ``partial_fit``."""

    fit = _search_fit
    _configurations = _searched_configurations
    _fit_new_state = _search_fit_new_state
    _base_estimator = _base_estimator
    _make_penalty = _no_penalty

    @available_if(_never)
    def partial_fit(self, *args, **kwargs):  # pragma: no cover
        """Not available: a cross-validated search has no incremental form."""


class TorchSGDRegressorCV(_CrossValidated, TorchSGDRegressor):
    """TorchSGDRegressor with alpha (and l1_ratio) chosen by cross-validation,
    every alpha x fold trained together as one parameter matrix.

    The search of ``GridSearchCV(TorchSGDRegressor(...), {{"alpha": alphas}},
    cv=cv)`` in one fit: each configuration (split, l1_ratio, alpha) is a
    column of one weight matrix with its own penalty, its own sample weights
    (zero on the split's held-out rows), learning rate and stopping decision.
    Each batch of ``X`` is read once for all of them; for the full-batch
    squared loss, one pass over ``X`` gives every split's Gram matrix, after
    which no step reads ``X``. The best configuration is then refitted on all
    the data with :class:`TorchSGDRegressor`.

    The objective, for each configuration, is TorchSGDRegressor's (that of
    ``SGDRegressor``): with the squared loss and ``n`` training samples,
    ``alpha`` is ``Ridge``'s ``alpha / n`` and ``Lasso``'s ``alpha``.

    Parameters
    ----------{shared}
    Attributes
    ----------{attributes}
    See Also
    --------
    TorchSGDRegressor : The estimator searched over.
    sklearn.linear_model.RidgeCV : Cross-validated ridge regression.
    sklearn.linear_model.LassoCV : Cross-validated lasso, LassoCV's grid.
    sklearn.linear_model.ElasticNetCV : Cross-validated elastic net.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_gd import TorchSGDRegressorCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(), TorchSGDRegressorCV(penalty="l1", alphas=20)
    ... ).fit(X, y)
    >>> search = model[-1]
    >>> search.alphas_.shape, search.cv_results_["mean_test_score"].shape
    ((20,), (20,))
    >>> bool(search.alpha_ in search.alphas_)
    True
    """

    _base_class = TorchSGDRegressor
    _parameter_constraints: dict = _cv_constraints(REGRESSOR_CONSTRAINTS)
    __init__ = _cv_init(TorchSGDRegressor, **_CV_DEFAULTS)

    def _cv_targets(self, y):
        """``(targets to fit, labels to split on, class index or None)``."""
        return y, to_numpy_any(y), None

    def _fit_weights(self, weights, labels, class_index):
        """The weights of the samples in training (None: all ones)."""
        return weights

    def _decision(self, X, method="predict"):
        _check_refitted(self, method)
        return super()._decision(X, method)


class TorchSGDClassifierCV(_CrossValidated, TorchSGDClassifier):
    """TorchSGDClassifier with alpha (and l1_ratio) chosen by
    cross-validation, every alpha x fold trained together as one matrix.

    The search of ``GridSearchCV(TorchSGDClassifier(...), {{"alpha":
    alphas}}, cv=cv)`` in one fit (stratified folds by default): each
    configuration (split, l1_ratio, alpha) is a unit of columns of one weight
    matrix, one column per binary problem (one for two classes; one per
    class for one-vs-rest, and for ``multi_class="multinomial"``, whose
    softmax couples a unit's columns), with its own penalty, sample weights
    (zero on the split's held-out rows), learning rate and stopping decision;
    ``class_weight="balanced"`` is computed once from all of ``y``, as
    ``LogisticRegressionCV`` does (a ``GridSearchCV`` computes it from each
    split's training labels). The best configuration is refitted on all the data with
    :class:`TorchSGDClassifier`.

    For ``loss="log_loss"`` with ``penalty="l2"`` and ``n`` training samples,
    ``alpha`` is ``1 / (C * n)`` of ``LogisticRegression``.

    Every class must be present in every split's training samples.

    Parameters
    ----------{shared}
    Attributes
    ----------{attributes}
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted.

    See Also
    --------
    TorchSGDClassifier : The estimator searched over.
    sklearn.linear_model.LogisticRegressionCV : scikit-learn's
        cross-validated logistic regression.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_gd import TorchSGDClassifierCV
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(), TorchSGDClassifierCV(loss="log_loss", alphas=10)
    ... ).fit(X, y)
    >>> model.score(X, y) > 0.95
    True
    """

    _base_class = TorchSGDClassifier
    _parameter_constraints: dict = _cv_constraints(CLASSIFIER_CONSTRAINTS)
    __init__ = _cv_init(TorchSGDClassifier, **_CV_DEFAULTS)

    def _cv_targets(self, y):
        index, labels = self._encode_labels(y)
        return index.astype(np.float64), labels, index

    def _fit_weights(self, weights, labels, class_index):
        # class_weight="balanced" from all of y, as LogisticRegressionCV does:
        # the same weights in every split, which equal the dict they stand for
        return self._with_class_weight(weights, class_index, labels)

    def _decision(self, X, method="predict"):
        _check_refitted(self, method)
        return super()._decision(X, method)


def _fill_docs(cls, **names):
    cls.__doc__ = cls.__doc__.format(
        shared=_SHARED_DOC.format(**names),
        attributes=_ATTRIBUTES_DOC,
    )


_fill_docs(
    TorchSGDRegressorCV,
    base="TorchSGDRegressor",
    folds="KFold",
    score="R^2, uniform over outputs",
    k="n_outputs",
)
_fill_docs(
    TorchSGDClassifierCV,
    base="TorchSGDClassifier",
    folds="StratifiedKFold",
    score="accuracy",
    k="n_classes (1 for two classes)",
)
