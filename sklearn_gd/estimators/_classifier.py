"""TorchSGDClassifier: scikit-learn's SGDClassifier, trained by torch.

The classifier is a thin layer over :class:`BaseTorchSGD`: it turns labels
into a float target matrix and lets the shared fit skeleton and engine do the
rest. One-vs-rest fits one column of ``theta = [W; b]`` per class, each a
binary problem with targets in {-1, +1}; two classes take one column; the
multinomial option fits all columns as one softmax problem (one-hot targets).
Labels, class weights and those targets are ``_multiclass``'s work; scores
and probabilities come from ``_class_scores``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call

from ..data._array_api import host, to_numpy_any
from ..engine._stopping import AccuracyValidation
from ..model._losses import CLASSIFICATION_LOSSES, MULTINOMIAL_LOSSES, make_loss
from ._base import PARAMETER_CONSTRAINTS, BaseTorchSGD
from ._class_scores import ClassScoresMixin
from ._multiclass import (
    class_index,
    class_targets,
    labels_of,
    validation_splitter,
    warn_if_separated,
    with_class_weight,
    without_minimiser,
)

__all__ = ["CLASSIFIER_CONSTRAINTS", "TorchSGDClassifier"]


CLASSIFIER_CONSTRAINTS: dict = {
    **PARAMETER_CONSTRAINTS,
    "loss": [StrOptions(set(CLASSIFICATION_LOSSES))],
    "epsilon": [Interval(Real, 0, None, closed="left")],
    "n_jobs": [Integral, None],
    "class_weight": [StrOptions({"balanced"}), dict, None],
    "multi_class": [StrOptions({"ovr", "multinomial"})],
}


class TorchSGDClassifier(ClassScoresMixin, LinearClassifierMixin, BaseTorchSGD):
    """Linear classifier fitted by gradient descent in PyTorch, on CPU or GPU.

    The counterpart of :class:`sklearn.linear_model.SGDClassifier`, with its
    parameter names and objective. For each binary problem (targets
    ``y_i`` in {-1, +1}, raw score ``p_i = x_i w + b``) it minimises

    .. math::

        \\frac{1}{\\sum_i s_i} \\sum_i s_i L(y_i, p_i) + \\alpha R(w)

    where the weights ``s`` are the sample weights times the class weights
    (the intercept is not penalised). Two classes make one problem, the
    larger label of ``classes_`` being the positive one. More classes are
    handled one-vs-rest, as SGDClassifier does, with all the binary problems
    trained together as one weight matrix, or, with
    ``multi_class="multinomial"``, as one softmax cross-entropy problem over
    that matrix (``alpha R`` then penalises the whole matrix).

    What it adds to SGDClassifier is :class:`TorchSGDRegressor`'s: a GPU
    (``device``), minibatches of any size or the full batch (the default),
    the optimizers of ``torch.optim``, the multinomial loss, and the
    objective of each epoch in ``loss_curve_``.

    Parameters
    ----------
    loss : {"hinge", "log_loss", "modified_huber", "squared_hinge", \
            "perceptron", "squared_error", "huber", "epsilon_insensitive", \
            "squared_epsilon_insensitive"}, default="hinge"
        ``L(y, p)`` with the margin ``z = y p``: "hinge" ``max(0, 1 - z)``
        (a linear SVM); "log_loss" ``log(1 + exp(-z))`` (logistic
        regression, with probabilities); "modified_huber"
        ``max(0, 1 - z)^2`` for ``z >= -1`` and ``-4 z`` below (with
        probabilities); "squared_hinge" ``max(0, 1 - z)^2``; "perceptron"
        ``max(0, -z)``. The regression losses treat the {-1, +1} targets as
        numbers (see :class:`TorchSGDRegressor`).

    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
        The regulariser ``R``; the L1 part is a proximal step (exact zeros).

    alpha : float, default=1e-4
        Penalty strength, in ``[0, inf)``. For log_loss and l2 it equals
        ``LogisticRegression``'s ``1 / (C * n_samples)``.

    l1_ratio : float or None, default=0.15
        Share of L1 in the elastic net, in ``[0, 1]``; None is allowed, as
        in SGDClassifier, when ``penalty`` is not "elasticnet".

    fit_intercept : bool, default=True
        Fit an intercept per binary problem (per class).

    max_iter : int, default=1000
        Most epochs (passes over the data) in ``fit``.

    tol : float, "auto" or None, default="auto"
        When training stops (see :class:`TorchSGDRegressor`): "auto" is an
        optimality measure, the relative gradient mapping (at most 1e-5) for
        log_loss, modified_huber, squared_hinge and the multinomial loss,
        taken after each epoch by "sgd", "adam", "adamw" and "adagrad", and a
        relative duality gap (at most 1e-4) for hinge under "auto"'s
        smoothing; SGDClassifier's progress rule on the epoch's objective
        (on the validation accuracy with ``early_stopping``; "auto": 1e-3)
        for the perceptron, for hinge with "sgd", and for a float ``tol``
        with the schedules. A float is the full-batch solvers' threshold on
        their measure; ``0`` sets none, and the fit ends, converged, when no
        step decreases the objective at the data's precision (as
        SGDClassifier's ``tol=0`` trains until the objective stops
        decreasing). None is no stopping rule: exactly ``max_iter`` epochs
        with every solver, as in SGDClassifier (a full-batch solver that can
        make no more progress stays where it is for the epochs left, and
        warns unless it certified that point as optimal to the data's
        precision).

    shuffle : bool, default=True
        Reshuffle the rows every epoch (minibatches only).

    verbose : int, default=0
        When positive, print a block per epoch as SGDClassifier does (epoch,
        weight norm, non-zeros, bias, updates, average loss, elapsed time).

    epsilon : float, default=0.1
        Width of "huber", "epsilon_insensitive" and
        "squared_epsilon_insensitive", in ``[0, inf)``.

    n_jobs : int or None, default=None
        Accepted for compatibility with SGDClassifier (so that
        ``TorchSGDClassifier(**SGDClassifier().get_params())`` works), and
        ignored: SGDClassifier runs its one-vs-rest problems in ``n_jobs``
        threads, whereas here they are trained together as the columns of
        one weight matrix, each step one batched product over all classes,
        parallel on torch's threads (``torch.set_num_threads``) or on the
        GPU.

    random_state : int, RandomState instance or None, default=None
        Seeds shuffling and the stratified early-stopping split.

    learning_rate : {"adaptive", "constant", "invscaling", "optimal"}, \
            default="adaptive"
        The step-size schedule, as in :class:`TorchSGDRegressor`.

    eta0 : float or "auto", default="auto"
        Initial step size; "auto" is ``1 / L`` for "sgd", with ``L`` the
        objective's curvature bound estimated from ``X`` and the loss
        (``1/4`` for log_loss, 2 for the squared hinges, 1 for non-smooth
        losses, ``1/2`` for the multinomial loss), and a fraction of the
        solution's scale for "adam", "adamw" and "adagrad" (see
        :class:`TorchSGDRegressor`).

    power_t : float, default=0.5
        Exponent of "invscaling" (SGDClassifier's default; SGDRegressor's,
        and :class:`TorchSGDRegressor`'s, is 0.25); a negative value warns,
        as in SGDClassifier, whose negative values are deprecated.

    early_stopping : bool, default=False
        Stop on the accuracy of a stratified held-out ``validation_fraction``
        of the data, keeping the best parameters.

    validation_fraction : float, default=0.1
        Held-out share for early stopping, in ``(0, 1)``.

    n_iter_no_change : int, default=5
        Epochs without progress before stopping or dividing the rate.

    class_weight : dict, "balanced" or None, default=None
        Multiplies each sample's weight by its class's weight: ``{label:
        weight}``, or "balanced" for ``n_samples / (n_classes *
        bincount(y))``. One-vs-rest applies the same per-sample weights to
        every binary problem (SGDClassifier weighs only the positive class
        of each). Not available with ``partial_fit`` when "balanced".

    multi_class : {"ovr", "multinomial"}, default="ovr"
        With more than two classes: "ovr" fits one binary problem per class;
        "multinomial" minimises the softmax cross-entropy of all classes at
        once (needs ``loss="log_loss"``). With two classes both fit the one
        binary logistic problem, as ``LogisticRegression`` does.

    warm_start : bool, default=False
        Start ``fit`` where the previous fit ended.

    average : bool or int, default=False
        Average the iterates (from update ``average`` when an int).

    optimizer : {"auto", "sgd", "adam", "adamw", "adagrad", "lbfgs"}, \
            default="auto"
        The update rule (see :class:`TorchSGDRegressor`): "auto" is, on the
        full batch, damped Newton with few features (a Hessian and a line
        search per class of one-vs-rest; the softmax's joint Hessian for the
        multinomial loss) where a Hessian is cheap (see
        :class:`TorchSGDRegressor`; for the multinomial loss, classes times
        features count as features), preconditioned L-BFGS otherwise,
        FISTA with an L1 part, and for hinge one of them on a shrinking
        smoothing certified by a duality gap; "sgd" for the perceptron and
        minibatches.

    momentum : float, default=0.0
        Momentum of "sgd", in ``[0, 1)``.

    nesterov : bool, default=False
        Nesterov momentum for "sgd".

    batch_size : int or None, default=None
        Rows per step; None trains on the full batch (deterministic, and
        sample weights equal repeated rows exactly). ``1`` with
        ``optimizer="sgd"`` is SGDClassifier's per-sample SGD, its sparse
        intercept damping included (see :class:`TorchSGDRegressor`).

    device : str or None, default=None
        "cpu", "cuda", "cuda:N", "auto" (CUDA if available, else the CPU), or
        None to follow the data. MPS is refused: it has no float64.

    record_history : bool, default=False
        Keep ``coef_`` and ``intercept_`` of every epoch in ``coef_path_``
        and ``intercept_path_``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted.

    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        One row per binary problem (a single row for two classes).

    intercept_ : ndarray of shape (1,) or (n_classes,)
        The intercepts.

    n_iter_ : int
        Epochs of the last ``fit``.

    t_ : int
        Updates performed plus one.

    loss_curve_ : list of float
        The objective of each epoch: one-vs-rest reports the mean over the
        binary problems of their loss plus penalty; the multinomial loss
        reports the whole objective, the mean cross-entropy plus ``alpha R``
        of the weight matrix.

    best_loss_ : float
        The smallest entry of ``loss_curve_`` in the last fit.

    validation_scores_ : list of float or None
        Validation accuracy per epoch with ``early_stopping``.

    best_validation_score_ : float or None
        The best of ``validation_scores_``.

    eta0_ : float
        The resolved initial learning rate.

    coef_path_, intercept_path_ : ndarray
        With ``record_history=True``, the parameters after every epoch.

    n_features_in_ : int
        Number of features seen in fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` had string column names.

    See Also
    --------
    sklearn.linear_model.SGDClassifier : The scikit-learn peer.
    sklearn.linear_model.LogisticRegression : log_loss with l2, solved exactly.
    sklearn.svm.LinearSVC : hinge with l2.
    TorchSGDRegressor : The regression counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_gd import TorchSGDClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     TorchSGDClassifier(loss="log_loss", multi_class="multinomial"),
    ... )
    >>> clf.fit(X, y).score(X, y) > 0.95
    True
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """

    _parameter_constraints: dict = CLASSIFIER_CONSTRAINTS

    def __init__(
        self,
        loss="hinge",
        *,
        penalty="l2",
        alpha=1e-4,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol="auto",
        shuffle=True,
        verbose=0,
        epsilon=0.1,
        n_jobs=None,
        random_state=None,
        learning_rate="adaptive",
        eta0="auto",
        power_t=0.5,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        class_weight=None,
        multi_class="ovr",
        warm_start=False,
        average=False,
        optimizer="auto",
        momentum=0.0,
        nesterov=False,
        batch_size=None,
        device=None,
        record_history=False,
    ):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.shuffle = shuffle
        self.verbose = verbose
        self.epsilon = epsilon
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.class_weight = class_weight
        self.multi_class = multi_class
        self.warm_start = warm_start
        self.average = average
        self.optimizer = optimizer
        self.momentum = momentum
        self.nesterov = nesterov
        self.batch_size = batch_size
        self.device = device
        self.record_history = record_history

    # ---------------------------------------------------------------- hooks
    _validation_class = AccuracyValidation

    def _joint(self):
        """Whether the classes form one softmax problem (more than two)."""
        return self.multi_class == "multinomial" and len(self.classes_) > 2

    def _make_loss(self):
        registry = MULTINOMIAL_LOSSES if self._joint() else CLASSIFICATION_LOSSES
        return make_loss(self.loss, epsilon=self.epsilon, registry=registry)

    def _smooth_loss(self):
        # the same for the multinomial form, which only log_loss has
        registry = CLASSIFICATION_LOSSES
        return make_loss(self.loss, epsilon=self.epsilon, registry=registry).smooth

    def _prepare_targets(self, Y, first_call):
        # Y: (n, 1) class indices as floats, numpy or a tensor on its device
        return class_targets(Y, len(self.classes_), self._joint())

    def _validation_splitter(self, Y):
        return validation_splitter(Y, self.validation_fraction, self.random_state)

    def _shape_params(self, coef, intercept, y_ndim):
        return np.ascontiguousarray(coef.T), intercept

    def _more_validate_params(self, for_partial_fit=False):
        super()._more_validate_params(for_partial_fit=for_partial_fit)
        if self.multi_class == "multinomial" and self.loss not in MULTINOMIAL_LOSSES:
            raise ValueError(
                f"multi_class='multinomial' needs loss in {sorted(MULTINOMIAL_LOSSES)}"
                f", got loss={self.loss!r}; use multi_class='ovr' for this loss."
            )
        if for_partial_fit and self.class_weight == "balanced":
            # SGDClassifier's message, word for word
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In "
                "order to use 'balanced' weights, use compute_class_weight("
                "'balanced', classes=classes, y=y). In place of y you can use a "
                "large enough sample of the full training set target to properly "
                "estimate the class frequency distributions. Pass the resulting "
                "weights as the class_weight parameter."
            )

    # ----------------------------------------------------------------- fit
    def _fit_new_state(
        self,
        X,
        y,
        sample_weight,
        coef_init=None,
        intercept_init=None,
        partial=False,
        classes=None,
    ):
        # labels -> class indices, then the shared skeleton; runs inside
        # _fit_impl, so a failure also restores classes_
        idx, labels = self._encode_labels(y, partial, classes)
        sample_weight = self._with_class_weight(host(sample_weight), idx, labels)
        super()._fit_new_state(
            X,
            idx.astype(np.float64),
            sample_weight,
            coef_init,
            intercept_init,
            partial,
        )
        if not partial and without_minimiser(self.loss, self.penalty, self.alpha):
            D = to_numpy_any(self.decision_function(X)).reshape(len(idx), -1)
            warn_if_separated(D, idx, sample_weight, self._joint(), self.n_iter_)
        return self

    def _encode_labels(self, y, partial=False, classes=None):
        """Set (or check) ``classes_``; returns the class index of every sample
        and the labels as a 1-D numpy array."""
        labels = labels_of(y, type(self).__name__)
        if partial:
            # sets classes_ on the first call, checks ``classes`` on later ones
            _check_partial_fit_first_call(self, classes)
        else:
            self.classes_ = np.unique(labels)
        return class_index(labels, self.classes_), labels

    def _with_class_weight(self, sample_weight, idx, labels):
        """Sample weights times the weight of each sample's class."""
        return with_class_weight(
            sample_weight, idx, labels, self.class_weight, self.classes_
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the classifier by gradient descent.

        Parameters
        ----------
        X : {array-like, sparse matrix, torch.Tensor} of shape \
                (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels (strings, integers, ...).
        coef_init : array-like of shape (n_classes, n_features) or \
                (n_features,), default=None
            Initial weights, one row per binary problem.
        intercept_init : array-like of shape (n_classes,) or (1,), default=None
            Initial intercepts.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, multiplied by ``class_weight``.

        Returns
        -------
        self : TorchSGDClassifier
            The fitted classifier.
        """
        self._more_validate_params()
        return self._fit_impl(X, y, sample_weight, coef_init, intercept_init)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over a batch of samples, continuing the current model.

        Parameters
        ----------
        X : {array-like, sparse matrix, torch.Tensor} of shape \
                (n_samples, n_features)
            A batch of training data.
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every label of the problem; required on the first call, since a
            batch need not hold them all.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : TorchSGDClassifier
        """
        if not hasattr(self, "classes_"):
            self._more_validate_params(for_partial_fit=True)
        return self._fit_impl(X, y, sample_weight, partial=True, classes=classes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        return tags
