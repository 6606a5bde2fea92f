"""TorchSGDRegressor: scikit-learn's SGDRegressor, trained by torch."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ..model._losses import LOSSES
from ._base import PARAMETER_CONSTRAINTS, BaseTorchSGD

__all__ = ["REGRESSOR_CONSTRAINTS", "TorchSGDRegressor"]


REGRESSOR_CONSTRAINTS: dict = {
    **PARAMETER_CONSTRAINTS,
    "loss": [StrOptions(set(LOSSES))],
    "epsilon": [Interval(Real, 0, None, closed="left")],
    "quantile": [Interval(Real, 0, 1, closed="neither")],
    "out_of_core": [StrOptions({"auto"}), "boolean"],
}


class TorchSGDRegressor(RegressorMixin, BaseTorchSGD):
    """Linear regression fitted by gradient descent in PyTorch, on CPU or GPU.

    A drop-in for :class:`sklearn.linear_model.SGDRegressor`: the same
    parameter names and the same objective, so ``alpha`` and ``eta0`` mean the
    same thing in both,

    .. math::

        \\min_{W, b} \\frac{1}{\\sum_i s_i} \\sum_i s_i L(y_i, x_i W + b)
        + \\alpha R(W)

    with sample weights ``s`` (integer weights equal repeated rows), the loss
    ``L`` chosen by ``loss`` and the penalty ``R`` by ``penalty``. The
    intercept is not penalised. A 2-D ``y`` of shape (n_samples, n_outputs)
    fits the outputs as independent problems solved together as one weight
    matrix.

    Beyond SGDRegressor it trains on a GPU (``device``), in minibatches of any
    size (``batch_size``, the whole training set by default), with momentum,
    Adam, AdamW or L-BFGS (``optimizer``), with more losses ("absolute_error",
    "quantile"), and records the objective per epoch (``loss_curve_``).

    Parameters
    ----------
    loss : {"squared_error", "huber", "epsilon_insensitive", \
            "squared_epsilon_insensitive", "absolute_error", "quantile"}, \
            default="squared_error"
        The pointwise loss ``L(y, p)`` with ``r = y - p``: "squared_error"
        ``r^2 / 2``; "huber" ``r^2 / 2`` for ``|r| <= epsilon`` and
        ``epsilon |r| - epsilon^2 / 2`` beyond; "epsilon_insensitive"
        ``max(0, |r| - epsilon)``; "squared_epsilon_insensitive"
        ``max(0, |r| - epsilon)^2``; "absolute_error" ``|r|``; "quantile" the
        pinball loss ``max(q r, (q - 1) r)`` with ``q = quantile``.

    penalty : {"l2", "l1", "elasticnet"} or None, default="l2"
        ``R(w)``: ``||w||^2 / 2`` (l2), ``||w||_1`` (l1), or
        ``l1_ratio ||w||_1 + (1 - l1_ratio) ||w||^2 / 2`` (elasticnet). The L1
        part is applied by a proximal (soft-thresholding) step, so it gives
        exact zeros.

    alpha : float, default=1e-4
        Strength of the penalty, in ``[0, inf)``.

    l1_ratio : float or None, default=0.15
        Elastic-net mixing in ``[0, 1]``; used when ``penalty="elasticnet"``.
        None is allowed, as in SGDRegressor, for the other penalties, which
        do not read it.

    fit_intercept : bool, default=True
        Whether to fit an intercept.

    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data).

    tol : float, "auto" or None, default="auto"
        When training stops. Under ``optimizer="auto"`` on the full batch
        (the default), and under "lbfgs", the fit stops when an optimality
        measure reaches the threshold: for a smooth loss, the norm of the
        (proximal) gradient mapping in the preconditioner's metric relative
        to its value at the start ("auto": 1e-5; 1e-10, or ten float
        epsilons, for conjugate gradients, whose steps are cheap; Newton's
        method on the squared loss is exact in one step); for a non-smooth
        loss under "auto"'s smoothing, a duality gap relative to the
        objective ("auto": 1e-4); for coordinate descent (the squared loss
        with an L1 part), the duality gap relative to the targets' centred
        mean square ("auto": 1e-12).
        A float is that threshold; ``0`` sets none, and the fit ends,
        converged, when no step decreases the objective at the data's
        precision (as SGDRegressor's ``tol=0`` trains until the objective
        stops decreasing). With "sgd", "adam", "adamw" and "adagrad" on a
        smooth loss, "auto" takes the same measure after each epoch (one
        more full-batch gradient); ``n_iter_no_change`` epochs that do not
        bring it 1% below its best divide an "adaptive" rate by 5, and
        reaching the rate's floor is not convergence. A float ``tol`` with
        those solvers, and "auto" with early stopping or a non-smooth loss
        (then 1e-3), is SGDRegressor's rule: stop (or, with
        ``learning_rate="adaptive"``, divide the rate by 5) when the mean
        objective of an epoch is above ``best_loss - tol`` for
        ``n_iter_no_change`` epochs in a row (with early stopping: the
        validation R^2 below ``best + tol``). None is no stopping rule, as in
        SGDRegressor: exactly ``max_iter`` epochs with every solver (a
        full-batch solver that can make no more progress stays where it is
        for the epochs left, and warns unless it certified that point as
        optimal to the data's precision: a relative gap of at most 1e-6,
        Newton's decrement or the smoothing's duality gap). A fit that ends
        for any other reason (``max_iter``, the rate's floor, no more
        progress at this precision) raises a ConvergenceWarning giving the
        measure; at ``max_iter`` it opens with SGDRegressor's own sentence.

    shuffle : bool, default=True
        Whether to visit the rows in a new random order each epoch (matters
        only for minibatches).

    verbose : int, default=0
        When positive, print a block per epoch as SGDRegressor does (epoch,
        weight norm, non-zeros, bias, updates, average loss, elapsed time).

    epsilon : float, default=0.1
        Width of the "huber" and "epsilon_insensitive" losses, in ``[0, inf)``.

    quantile : float, default=0.5
        The quantile estimated by ``loss="quantile"``, in ``(0, 1)``.

    random_state : int, RandomState instance or None, default=None
        Seeds shuffling and the early-stopping split, through a local
        ``torch.Generator``. An int gives bit-identical results on CPU.

    learning_rate : {"adaptive", "constant", "invscaling", "optimal"}, \
            default="adaptive"
        The schedule of the step size ``eta`` at update ``t``: "constant"
        ``eta0``; "invscaling" ``eta0 / t^power_t``; "optimal"
        ``1 / (alpha (t0 + t - 1))`` (Bottou's ``t0``, as SGDRegressor);
        "adaptive" ``eta0``, divided by 5 each time ``n_iter_no_change``
        epochs fail to make progress (and after a diverging epoch), until it
        falls below 1e-6.

    eta0 : float or "auto", default="auto"
        Initial learning rate, in ``(0, inf)``. "auto" picks, for
        ``optimizer="sgd"``, ``1 / L`` with ``L`` the curvature of the batch
        objective estimated from the data (the largest eigenvalue of
        ``X~' S X~ / sum(s)`` with ``X~ = [X, 1]``, scaled by the loss's
        curvature and adjusted for the batch size); for "adam" and "adamw"
        a hundredth, for "adagrad" a tenth, of the scale of the solution's
        coordinates (the largest coordinate of the diagonal Newton step from
        zero), since they move each coordinate by about their rate a step; 1
        for "lbfgs" and "auto"'s full-batch solvers, which choose their own
        steps by line search. The value used is stored in ``eta0_``.

    power_t : float, default=0.25
        Exponent of the "invscaling" schedule, in ``[0, inf)``. A negative
        value is still accepted, with scikit-learn's FutureWarning (its
        SGD estimators deprecated them in 1.8).

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when its
        R^2 stops improving; the best parameters seen are restored.

    validation_fraction : float, default=0.1
        Fraction of the data held out for early stopping, in ``(0, 1)``.

    n_iter_no_change : int, default=5
        Epochs without progress before stopping (or adapting the rate).

    warm_start : bool, default=False
        Start ``fit`` from the previous solution.

    average : bool or int, default=False
        Averaged SGD: when True, ``coef_`` is the average of the iterates over
        all updates; an int ``N`` starts the average at update ``N``.

    optimizer : {"auto", "sgd", "adam", "adamw", "adagrad", "lbfgs"}, \
            default="auto"
        The update rule. "auto", on the full batch (``batch_size=None``), for
        a smooth loss with no L1 part: for the squared loss, the direct solve
        of the normal equations (Newton's one step; conjugate gradients from
        512 coefficients, the intercept included); damped Newton (a Hessian
        per output from one pass, an Armijo line search per output) where a
        Hessian is cheap (fewer than 512 features, and rows times features
        squared below 2e7; for the smoothed non-smooth losses, fewer than
        512 features); L-BFGS
        (compact form) otherwise. Both work in a metric preconditioned
        by the columns' means and variances, so that neither the features'
        scales nor their offsets slow them down. With an L1 part:
        accelerated proximal gradient (FISTA with restarts) in that metric;
        for the squared loss (its moments, as above), coordinate descent
        with LassoCV's duality gap, as the cross-validated search solves it.
        For a non-smooth loss (epsilon_insensitive, absolute_error,
        quantile), one of them on the loss smoothed by a Moreau envelope
        whose width shrinks until a duality gap certifies the fit. "auto" is
        "sgd" with minibatches, with early stopping, in ``partial_fit``, and
        when ``eta0``, ``learning_rate``, ``momentum`` or ``average`` is
        set.
        "lbfgs" is "auto"'s L-BFGS by name, whatever the data: one iteration
        per epoch on the full batch, in the preconditioned metric, stopped by
        ``tol`` on its relative optimality measure ("auto": 1e-5); it takes
        no L1 penalty. The others come from ``torch.optim``: "sgd" reads
        ``momentum`` and ``nesterov``; "adamw" applies the L2 part of the
        penalty as decoupled weight decay; "adagrad" takes per-coordinate
        steps that shrink with the squared gradients seen (long steps for
        rare, e.g. sparse text, features).

    momentum : float, default=0.0
        Momentum of "sgd", in ``[0, 1)``.

    nesterov : bool, default=False
        Nesterov momentum for "sgd" (with ``momentum > 0``).

    batch_size : int or None, default=None
        Rows per gradient step. None takes the whole training set as one
        batch: deterministic full-batch gradient descent, for which
        ``sample_weight`` is exactly equivalent to repeating rows, and for the
        squared loss each step after the first pass over ``X`` costs
        ``O(n_features^2)``. ``1`` with ``optimizer="sgd"`` is SGDRegressor's
        per-sample SGD, step for step: on sparse ``X`` its intercept step is
        damped by 0.01, as scikit-learn's is.

    device : str or None, default=None
        Where to train: "cpu", "cuda", "cuda:N", or "auto" (CUDA if available,
        else the CPU). None follows the data: a torch tensor trains on its own
        device, anything else on the CPU. An explicit device always wins.
        Asking for an absent accelerator raises a ValueError at fit, and at
        predict when set after the fit (a model fitted on a GPU and loaded
        on a host without one predicts on the CPU, with a warning); so does
        MPS, since training keeps float64 statistics and MPS has no float64.

    record_history : bool, default=False
        Keep the parameters after every epoch in ``coef_path_`` and
        ``intercept_path_``, to replay the descent (see
        :mod:`sklearn_gd.plotting`).

    out_of_core : "auto" or bool, default="auto"
        Train on a numpy ``X`` without converting it whole: ``X`` stays on
        the host and its rows go to the device in chunks of 16384 rows (fewer
        for a wide ``X``: at most 64 MiB a chunk; on CUDA
        through two pinned buffers, the next chunk's copy overlapping the
        current chunk's compute; on the CPU as zero-copy views). "auto" does
        so for a numpy memmap, and for an ``X`` whose conversion would need a
        copy larger than half the free host (read-only ``X``) or device
        memory. Memory beyond the pages of ``X`` itself stays within four
        chunks, about 60 bytes per sample (``y``, weights, the shuffling
        order) and the ``(n_features + 1)^2`` Gram statistics. ``X`` must
        already be C-ordered float32 or float64 (else validation copies it),
        and, with ``early_stopping``, the validation rows are copied. Rows of
        shuffled minibatches are read in random order: fast while the file is
        in the page cache, slow from disk (use ``shuffle=False`` or the full
        batch there). Ignored for tensors and sparse ``X``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_outputs, n_features)
        Weights; 2-D when ``y`` was 2-D.

    intercept_ : ndarray of shape (1,) or (n_outputs,)
        The intercept (zeros when ``fit_intercept=False``).

    n_iter_ : int
        Epochs run by the last ``fit`` (1 for ``partial_fit``).

    t_ : int
        Weight updates performed, plus one: ``n_iter_ * n_batches + 1`` after
        a fit (``n_iter_ * n_samples + 1`` for ``batch_size=1``, as in
        SGDRegressor, whose ``t_`` counts samples). ``partial_fit`` adds the
        number of batches of its chunk (one for the full batch), and the
        schedules ("invscaling", "optimal") go on from it.

    loss_curve_ : list of float
        The mean objective (loss plus penalty, averaged over outputs) of each
        epoch; for full-batch training, the objective at the start of each
        epoch.

    best_loss_ : float
        The smallest value in ``loss_curve_`` of the last fit.

    validation_scores_ : list of float or None
        The validation R^2 after each epoch, with ``early_stopping``.

    best_validation_score_ : float or None
        The best of ``validation_scores_``.

    eta0_ : float
        The initial learning rate used (``eta0`` resolved).

    coef_path_ : ndarray of shape (n_epochs, ``*coef_.shape``)
        With ``record_history=True``: ``coef_`` after each epoch (the averaged
        iterate when ``average`` is on); partial_fit
        appends one entry per call.

    intercept_path_ : ndarray of shape (n_epochs, ``*intercept_.shape``)
        With ``record_history=True``: ``intercept_`` after each epoch.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names, when ``X`` had string column names.

    See Also
    --------
    sklearn.linear_model.SGDRegressor : The scikit-learn peer (per-sample SGD).
    sklearn.linear_model.Ridge : Closed-form solution of squared_error + l2.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_gd import TorchSGDRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(200, 3)
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> reg = make_pipeline(StandardScaler(), TorchSGDRegressor(tol=1e-6))
    >>> reg.fit(X, y).score(X, y) > 0.999
    True
    """

    _parameter_constraints: dict = REGRESSOR_CONSTRAINTS

    def __init__(
        self,
        loss="squared_error",
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
        quantile=0.5,
        random_state=None,
        learning_rate="adaptive",
        eta0="auto",
        power_t=0.25,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        warm_start=False,
        average=False,
        optimizer="auto",
        momentum=0.0,
        nesterov=False,
        batch_size=None,
        device=None,
        record_history=False,
        out_of_core="auto",
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
        self.quantile = quantile
        self.random_state = random_state
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.power_t = power_t
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.average = average
        self.optimizer = optimizer
        self.momentum = momentum
        self.nesterov = nesterov
        self.batch_size = batch_size
        self.device = device
        self.record_history = record_history
        self.out_of_core = out_of_core

    # ------------------------------------------------------------- shapes
    def _shape_params(self, coef, intercept, y_ndim):
        # coef: (n_features, k), intercept: (k,); a 1-D y keeps SGDRegressor's
        # shapes, a 2-D y Ridge's
        if y_ndim == 1:
            return np.ascontiguousarray(coef[:, 0]), intercept.reshape(1)
        return np.ascontiguousarray(coef.T), intercept

    # ------------------------------------------------------------- public
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Fit the model by gradient descent.

        Parameters
        ----------
        X : {array-like, torch.Tensor} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        coef_init : array-like of shape (n_features,) or (n_outputs, \
                n_features), default=None
            Initial coefficients (zeros by default).
        intercept_init : array-like of shape (1,) or (n_outputs,), default=None
            Initial intercept (zeros by default).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; integer weights equal repeated rows.

        Returns
        -------
        self : TorchSGDRegressor
            The fitted estimator.
        """
        self._more_validate_params()
        return self._fit_impl(X, y, sample_weight, coef_init, intercept_init)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of gradient descent over the given samples.

        The first call fixes the number of features, outputs and the dtype;
        later calls continue from the current parameters, learning-rate
        schedule position (``t_``) and optimizer state.

        Parameters
        ----------
        X : {array-like, torch.Tensor} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : TorchSGDRegressor
        """
        if not hasattr(self, "coef_"):
            self._more_validate_params(for_partial_fit=True)
        return self._fit_impl(X, y, sample_weight, partial=True)

    def predict(self, X):
        """Predict with the linear model.

        Parameters
        ----------
        X : {array-like, torch.Tensor} of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            In the dtype of ``X`` (float32 or float64).
        """
        out = self._decision(X)
        # one column: a 1-D y (a 2-D y of one column is flattened at fit),
        # whose coef_ is 1-D, or (1, n_features) once sparsified
        return out[:, 0] if out.shape[1] == 1 else out
