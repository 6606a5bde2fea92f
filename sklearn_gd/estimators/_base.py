"""What every estimator of the package shares: parameters, validation, fit.

:class:`BaseTorchSGD` turns validated numpy (or torch) data into tensors,
builds the components from the estimator's string parameters, runs the
engine and commits the result as numpy fitted attributes. Subclasses say how
targets become a float matrix (``_prepare_targets``), how the validation set
is split, and how outputs map to ``coef_``/``intercept_`` shapes. Each
step hands its work to a module beside this one: ``_training`` (the data
term and the engine's run), ``_fit_state`` (the state a fit starts from and
leaves), ``_progress`` (per-epoch reporting), ``_warnings`` (how a fit that
did not end well says so) and ``_prediction``.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

from sklearn.base import BaseEstimator
from sklearn.linear_model._base import SparseCoefMixin
from sklearn.model_selection import ShuffleSplit
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..data._array_api import check_fitted_namespace, output_space
from ..data._data import resolve_device, to_numpy
from ..data._fit_data import FitData
from ..data._validation import (
    torch_dtype_of,
    validate_fit_inputs,
    validate_predict_input,
)
from ..engine._state import FitMode
from ..engine._stopping import Validation
from ..model._losses import make_loss
from ..model._penalties import PENALTIES, make_penalty
from ..model._schedules import SCHEDULES
from ..objective._epochs import LazyGenerator
from ..planning._planner import Planner
from ..solvers._optimizers import OPTIMIZERS
from ._fit_state import fitted_arrays, initial_state, picklable, solver_state
from ._prediction import (
    device_params,
    host_decision,
    host_rows_on_device,
    predict_device,
)
from ._progress import epoch_hook, fit_task, print_epoch
from ._training import make_oracle, run_engine, split_rows
from ._warnings import OUT_OF_MEMORY, out_of_memory_error, warn_on_ending

try:  # scikit-learn >= 1.9: the callback API (ProgressBar, ScoringMonitor, ...)
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # older scikit-learn: fits run without callbacks

    class CallbackSupportMixin:  # type: ignore[no-redef]
        """Stand-in when scikit-learn has no callback API."""


__all__ = ["PARAMETER_CONSTRAINTS", "BaseTorchSGD"]

# attributes that sklearn's callback machinery sets during fit and removes
# after it; a failed fit restores everything else
_CALLBACK_ATTRS = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")


# the parameters both estimators share, as scikit-learn validates them
PARAMETER_CONSTRAINTS: dict = {
    "penalty": [StrOptions({name for name in PENALTIES if name}), None],
    "alpha": [Interval(Real, 0, None, closed="left")],
    # None: for a penalty that does not read it, as SGDRegressor allows
    "l1_ratio": [Interval(Real, 0, 1, closed="both"), None],
    "fit_intercept": ["boolean"],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"}), None],
    "shuffle": ["boolean"],
    "verbose": ["verbose"],
    "random_state": ["random_state"],
    "learning_rate": [StrOptions(set(SCHEDULES))],
    "eta0": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    # negative values: deprecated, as in scikit-learn >= 1.8 (a warning)
    "power_t": [Interval(Real, None, None, closed="neither")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "warm_start": ["boolean"],
    "average": [Interval(Integral, 0, None, closed="neither"), "boolean"],
    "optimizer": [StrOptions(set(OPTIMIZERS) | {"auto"})],
    "momentum": [Interval(Real, 0, 1, closed="left")],
    "nesterov": ["boolean"],
    "batch_size": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str, None],
    "record_history": ["boolean"],
}


class BaseTorchSGD(SparseCoefMixin, CallbackSupportMixin, BaseEstimator):
    """Shared machinery of the package's linear estimators (not public).

    ``sparsify`` and ``densify`` come from scikit-learn's
    ``SparseCoefMixin``, as in SGDRegressor and SGDClassifier: predictions
    read ``coef_`` whether it is a numpy array or a scipy.sparse matrix.
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    # ---------------------------------------------------------------- hooks
    # how the early-stopping set is scored (R^2; classifiers: accuracy)
    _validation_class = Validation

    def _prepare_targets(self, Y, first_call):
        """Targets as the float matrix (n_samples, n_outputs) the engine fits."""
        return Y

    def _make_loss(self):
        return make_loss(
            self.loss,
            epsilon=getattr(self, "epsilon", 0.1),
            quantile=getattr(self, "quantile", 0.5),
        )

    def _smooth_loss(self) -> bool:
        """Whether the loss is differentiable with a Lipschitz gradient
        (decided from the parameters alone, before any data is seen)."""
        return self._make_loss().smooth

    def _validation_splitter(self, Y):
        return ShuffleSplit(
            test_size=self.validation_fraction, random_state=self.random_state
        )

    def _shape_params(self, coef, intercept, y_ndim):
        """(n_features, n_outputs) parameters in the public ``coef_`` shapes."""
        raise NotImplementedError

    # ----------------------------------------------------------- validation
    def _make_penalty(self):
        return make_penalty(
            self.penalty, alpha=self.alpha, l1_ratio=self._l1_ratio_value()
        )

    def _l1_ratio_value(self):
        """``l1_ratio``, where None (which SGDRegressor allows for a penalty
        that does not read it) stands for 0, a value that penalty ignores."""
        if self.l1_ratio is not None:
            return self.l1_ratio
        if self.penalty == "elasticnet":
            raise ValueError("l1_ratio must be set when penalty is 'elasticnet'")
        return 0.0

    def _configurations(self) -> list[tuple[float, float]]:
        """(alpha, l1_ratio) of each configuration the checks cover: this
        estimator's own (a search checks each kind it searches)."""
        return [(self.alpha, self._l1_ratio_value())]

    def _more_validate_params(self, for_partial_fit=False):
        resolve_device(self.device)  # unknown strings, absent accelerators
        if self.early_stopping and for_partial_fit:
            raise ValueError("early_stopping should be False with partial_fit")
        self._l1_ratio_value()  # None with "elasticnet"
        if self.power_t < 0:
            # scikit-learn's own deprecation (1.8), word for word
            warnings.warn(
                "Negative values for `power_t` are deprecated in version 1.8 "
                "and will raise an error in 1.10. "
                "Use values in the range [0.0, inf) instead.",
                FutureWarning,
            )
        for alpha, l1_ratio in self._configurations():
            if self.learning_rate == "optimal" and alpha == 0:
                raise ValueError(
                    "alpha must be > 0 since learning_rate is 'optimal'. alpha "
                    "is used to compute the optimal learning rate."
                )
            penalty = make_penalty(self.penalty, alpha=alpha, l1_ratio=l1_ratio)
            planner = self._planner(alpha=alpha, penalty=penalty)
            planner.solver_class(for_partial_fit).check(
                self.optimizer, self.penalty, penalty
            )

    def _planner(
        self, data: FitData | None = None, *, alpha=None, penalty=None
    ) -> Planner:
        """The plan's settings: the parameters it reads, with the data's
        loss and penalty once they are built (``alpha`` and ``penalty``: a
        configuration other than the parameters')."""
        if penalty is None:
            penalty = self._make_penalty() if data is None else data.penalty
        return Planner.of(
            self,
            smooth=self._smooth_loss(),
            loss=None if data is None else data.loss,
            penalty=penalty,
            alpha=alpha,
        )

    # ----------------------------------------------------------------- fit
    def _fit_impl(self, *args, **kwargs):
        # Fit on new state and commit at the end: if anything fails (bad input,
        # divergence), the estimator is left as it was, including what
        # validate_data(reset=True) records (n_features_in_, ...).
        saved = dict(self.__dict__)
        try:
            return self._fit_new_state(*args, **kwargs)
        except BaseException as exc:
            live = {k: v for k, v in self.__dict__.items() if k in _CALLBACK_ATTRS}
            self.__dict__.clear()
            self.__dict__.update(saved)
            self.__dict__.update(live)
            if isinstance(exc, OUT_OF_MEMORY):
                raise out_of_memory_error(
                    args[0], exc, self.batch_size, self.device
                ) from exc
            raise

    def _fit_new_state(
        self, X, y, sample_weight, coef_init=None, intercept_init=None, partial=False
    ):
        """The fit path: validate, initial state, oracle, step size, train,
        commit. Only the commit touches the estimator's fitted state."""
        # the parameters are the instance's attributes (scikit-learn's
        # convention): vars() reads them without get_params' introspection
        params = vars(self)
        mode = FitMode.of(partial, params.get("_solver_state"), params)
        data = self._validate_data(X, y, sample_weight, mode, check_x=False)
        init = self._initial_state(data, mode, coef_init, intercept_init)
        oracle, validation = self._make_oracle(data, mode)
        eta0, schedule = self._step_size(oracle, data, mode)
        result, history = self._train(
            oracle, validation, schedule, init, data, mode, X, y
        )
        self._commit(result, history, data, mode, eta0, schedule)
        self._warn_on_ending(result, mode, data.dtype)
        return self

    def _validate_data(
        self, X, y, sample_weight, mode: FitMode, check_x: bool = True
    ) -> FitData:
        """Step 1: the validated data, on its way to the device.
        ``check_x=False`` leaves a dense numpy X's check for NaN and
        infinity to :meth:`_make_oracle`."""
        resume = mode.resume
        space = output_space(X)
        inputs = validate_fit_inputs(
            self,
            X,
            y,
            sample_weight,
            reset=mode.first_call,
            dtype=None if resume is None else resume.dtype,
            finite_x=check_x,
            # the split names the set whose weights are all zero
            allow_all_zero_weights=mode.early_stopping,
        )
        Y = self._prepare_targets(inputs.Y, mode.first_call)
        if resume is not None and Y.shape[1] != resume.n_outputs:
            raise ValueError(
                f"y has {Y.shape[1]} output(s) but this model was fitted with "
                f"{resume.n_outputs}; partial_fit needs the same outputs in "
                "every call."
            )
        return FitData(
            X=inputs.X,
            Y=Y,
            sample_weight=inputs.sample_weight,
            kind=inputs.kind,
            dtype=inputs.dtype,
            y_ndim=inputs.y_ndim if resume is None else resume.y_ndim,
            device=resolve_device(self.device, inputs.X),
            tdtype=torch_dtype_of(inputs.dtype),
            generator=LazyGenerator(self.random_state),
            loss=self._make_loss(),
            penalty=self._make_penalty(),
            space=space,
            partial=mode.partial,
            x_checked=check_x or inputs.kind != "numpy",
        )

    def _initial_state(self, data: FitData, mode: FitMode, coef_init, intercept_init):
        """Step 2: the parameters (and optimizer state) training starts from."""
        t = getattr(self, "t_", None)
        return initial_state(data, mode, coef_init, intercept_init, t)

    def _make_oracle(self, data: FitData, mode: FitMode):
        """Step 3: the gradient oracle, and the early-stopping set."""
        return make_oracle(
            data,
            self._split,
            self._validation_class,
            estimator=self,
            out_of_core=getattr(self, "out_of_core", "auto"),
            early_stopping=mode.early_stopping,
            batch_size=self.batch_size,
            fit_intercept=self.fit_intercept,
            shuffle=self.shuffle,
        )

    def _step_size(self, oracle, data: FitData, mode: FitMode):
        """Step 4: the initial learning rate and the schedule."""
        return self._planner(data).step_size(oracle, data, mode.resume)

    def _train(self, oracle, validation, schedule, init, data, mode, X, y):
        """Step 5: the engine's run, with the per-epoch hooks; returns the
        result and the recorded parameters (None without record_history)."""
        history = [] if self.record_history else None
        init_context = getattr(self, "_init_callback_context", None)
        with fit_task(self, init_context, mode.max_iter, X, y) as context:
            callbacks = getattr(self, "_skl_callbacks", None) or hasattr(
                self, "_parent_callback_ctx"
            )
            on_epoch = epoch_hook(
                printer=self._print_epoch if self.verbose else None,
                history=history,
                context=context if callbacks else None,
                estimator=self,
                X=X,
                y=y,
                to_public=lambda c, i: self._shape_params(c, i, data.y_ndim),
            )
            result = run_engine(
                oracle,
                validation,
                schedule,
                init,
                data,
                mode,
                self._planner(data),
                fit_intercept=self.fit_intercept,
                on_epoch=on_epoch,
            )
        return result, history

    # the verbose block of an epoch (see _progress.print_epoch)
    _print_epoch = staticmethod(print_epoch)

    def _commit(self, result, history, data: FitData, mode: FitMode, eta0, schedule):
        """Step 6: the fitted attributes, all set here and nowhere else."""
        self._solver_state = solver_state(
            result, data, mode, eta0, schedule, self.device
        )
        keeps = mode.keeps_history and getattr(self, "coef_path_", None) is not None
        arrays = fitted_arrays(
            result,
            history,
            data.space,
            lambda c, i: self._shape_params(c, i, data.y_ndim),
            (self.coef_path_, self.intercept_path_) if keeps else None,
        )
        for name, value in arrays.items():
            setattr(self, name, value)
        prev_curve = list(self.loss_curve_) if mode.keeps_history else []
        self.loss_curve_ = prev_curve + list(result.loss_curve)
        self.n_iter_ = result.n_iter
        self.t_ = result.t
        self.eta0_ = eta0
        self.best_loss_ = result.best_loss
        self.validation_scores_ = result.validation_scores
        self.best_validation_score_ = result.best_validation_score

    # the warning a fit ends with, if any (see _warnings.warn_on_ending)
    _warn_on_ending = staticmethod(warn_on_ending)

    def _split(self, Y, sw):
        """The early-stopping split's training and validation rows."""
        splitter = self._validation_splitter(Y)
        return split_rows(Y, sw, splitter, self.validation_fraction)

    # -------------------------------------------------------------- predict
    def _decision(self, X, method="predict"):
        """``X @ coef_.T + intercept_`` as (n_samples, n_outputs).

        Reads ``coef_`` and ``intercept_`` (as scikit-learn's linear models
        do), so a change to them changes the predictions. numpy and sparse
        input on the CPU is computed with numpy. A tensor, or an explicit
        accelerator ``device``, is computed by torch on the device; the result
        is a tensor on the input's device under array API dispatch, else
        numpy (as scikit-learn returns).
        """
        check_is_fitted(self)
        check_fitted_namespace(X, self, method)
        space = output_space(X)
        X, kind = validate_predict_input(self, X)
        state = getattr(self, "_solver_state", None)
        device = predict_device(self.device, X, state)
        if kind == "torch":
            W, b = self._device_params(device, X.dtype)
            out = X.to(device) @ W + b
            return to_numpy(out) if space is None else space.put(out)
        if device.type == "cpu":
            out = host_decision(X, self.coef_, self.intercept_)
        else:
            out = self._host_rows_on_device(X, kind, device)
        return out if space is None else space.put(out)

    def _host_rows_on_device(self, X, kind, device):
        """Predictions for host data computed on ``device``, a bounded chunk
        of rows at a time."""
        return host_rows_on_device(X, kind, device, self._device_params)

    def _device_params(self, device, dtype):
        """``coef_`` and ``intercept_`` as tensors on ``device``, cached (in
        the SolverState, which pickles leave it out of) while they hold the
        same values."""
        state = getattr(self, "_solver_state", None)
        cache = {} if state is None else state.device_cache
        return device_params(self.coef_, self.intercept_, cache, device, dtype)

    def __getstate__(self):
        return picklable(super().__getstate__())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags
