"""What every estimator of the package shares: parameters, validation, fit.

:class:`BaseTorchSGD` turns validated numpy (or torch) data into tensors,
builds the components from the estimator's string parameters, runs the
engine and commits the result as numpy fitted attributes. Subclasses say how
targets become a float matrix (``_prepare_targets``), how the validation set
is split, and how outputs map to ``coef_``/``intercept_`` shapes.
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model._base import SparseCoefMixin
from sklearn.model_selection import ShuffleSplit
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted

from ..data._array_api import (
    OutputSpace,
    check_fitted_namespace,
    host,
    is_foreign,
    output_space,
    to_numpy_any,
)
from ..data._data import resolve_device, to_numpy, to_tensor
from ..data._validation import (
    check_finite_host,
    torch_dtype_of,
    validate_fit_inputs,
    validate_predict_input,
)
from ..engine._engine import train
from ..engine._records import TrainState
from ..engine._state import (
    UNRECORDED,
    FitMode,
    SolverState,
    optimizer_state_to_numpy,
    optimizer_state_to_torch,
)
from ..engine._stopping import Validation
from ..model._losses import make_loss
from ..model._penalties import PENALTIES, make_penalty
from ..model._schedules import SCHEDULES
from ..objective._epochs import LazyGenerator
from ..objective._oracles import choose_oracle, prefers_gram
from ..objective._rows import gen_batches, rows_per_chunk
from ..objective._sparse import csr_to_torch
from ..objective._streaming import should_stream, streaming_oracle
from ..planning._planner import Planner
from ..solvers._optimizers import OPTIMIZERS

try:  # scikit-learn >= 1.9: the callback API (ProgressBar, ScoringMonitor, ...)
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # older scikit-learn: fits run without callbacks

    class CallbackSupportMixin:  # type: ignore[no-redef]
        """Stand-in when scikit-learn has no callback API."""


__all__ = ["BaseTorchSGD"]

# attributes that sklearn's callback machinery sets during fit and removes
# after it; a failed fit restores everything else
_CALLBACK_ATTRS = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")

# scikit-learn's SGD warning when max_iter ends a fit, word for word: code
# written for SGDClassifier/SGDRegressor filters or matches it
_MAX_ITER_MESSAGE = (
    "Maximum number of iteration reached before convergence. Consider "
    "increasing max_iter to improve the fit."
)

# torch >= 2.5 has torch.OutOfMemoryError; torch.cuda's alias is older
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class FitData:
    """The validated training data and what the fit is built from."""

    X: object  # numpy, scipy CSR or a tensor (see _validation.Inputs)
    Y: object
    sample_weight: object
    kind: str
    dtype: np.dtype
    y_ndim: int
    device: torch.device
    tdtype: torch.dtype
    generator: LazyGenerator
    loss: object
    penalty: object
    space: OutputSpace | None  # where fitted arrays go (None: numpy)
    partial: bool = False  # a partial_fit call (online SGD)
    x_checked: bool = True  # False: X's check for NaN and inf is left to come

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_samples, n_features, n_outputs)."""
        return (*self.X.shape, self.Y.shape[1])


class BaseTorchSGD(SparseCoefMixin, CallbackSupportMixin, BaseEstimator):
    """Shared machinery of the package's linear estimators (not public).

    ``sparsify`` and ``densify`` come from scikit-learn's
    ``SparseCoefMixin``, as in SGDRegressor and SGDClassifier: predictions
    read ``coef_`` whether it is a numpy array or a scipy.sparse matrix.
    """

    _parameter_constraints: dict = {
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

    def _more_validate_params(self, for_partial_fit=False):
        resolve_device(self.device)  # unknown strings, absent accelerators
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError(
                "alpha must be > 0 since learning_rate is 'optimal'. alpha is "
                "used to compute the optimal learning rate."
            )
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
        self._planner().solver_class(for_partial_fit).check(
            self.optimizer, self.penalty, self._make_penalty()
        )

    def _planner(self, data: FitData | None = None) -> Planner:
        """The plan's settings: the parameters it reads, with the data's
        loss and penalty once they are built."""
        return Planner(
            loss_name=self.loss,
            smooth=self._smooth_loss(),
            loss=None if data is None else data.loss,
            penalty=self._make_penalty() if data is None else data.penalty,
            optimizer=self.optimizer,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            batch_size=self.batch_size,
            eta0=self.eta0,
            learning_rate=self.learning_rate,
            power_t=self.power_t,
            alpha=self.alpha,
            momentum=self.momentum,
            nesterov=self.nesterov,
            average=self.average,
            early_stopping=self.early_stopping,
            fit_intercept=self.fit_intercept,
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
            if isinstance(exc, _OUT_OF_MEMORY):
                message = self._out_of_memory_message(args[0], exc)
                _release(exc)
                raise MemoryError(message) from exc
            raise

    def _out_of_memory_message(self, X, exc):
        shape = tuple(getattr(X, "shape", ()))
        itemsize = getattr(getattr(X, "dtype", None), "itemsize", 8)
        size = float(np.prod(shape)) * itemsize / 2**20 if shape else float("nan")
        return (
            f"Out of memory while fitting X of shape {shape} (about {size:.0f} MiB) "
            f"with batch_size={self.batch_size} on device {self.device!r}: {exc}. "
            "Lower batch_size, or stream X from host memory (out_of_core=True, "
            "or pass a numpy memmap)."
        )

    def _fit_new_state(
        self, X, y, sample_weight, coef_init=None, intercept_init=None, partial=False
    ):
        """The fit path: validate, initial state, oracle, step size, train,
        commit. Only the commit touches the estimator's fitted state."""
        mode = FitMode.of(self, partial)
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
        _, d, k = data.shape
        device, tdtype, dtype = data.device, data.tdtype, data.dtype
        state = mode.resume
        if state is not None:  # partial_fit goes on with everything
            return TrainState(
                coef=to_tensor(state.coef, device, tdtype),
                intercept=to_tensor(state.intercept, device, tdtype),
                t=int(self.t_),
                avg_coef=to_tensor(state.average_coef, device, tdtype),
                avg_intercept=to_tensor(state.average_intercept, device, tdtype),
                optimizer_state=optimizer_state_to_torch(state.optimizer_state),
            )
        coef0 = np.zeros((d, k), dtype=dtype)
        icpt0 = np.zeros(k, dtype=dtype)
        if mode.warm is not None:
            if mode.warm.coef.shape != (d, k):
                raise ValueError(
                    "warm_start needs the same number of features and outputs "
                    f"as the previous fit: {mode.warm.coef.shape[::-1]}"
                    f" (outputs, features), got {(k, d)}."
                )
            coef0 = mode.warm.coef.astype(dtype)
            icpt0 = mode.warm.intercept.astype(dtype)
        coef0, icpt0 = self._check_inits(
            coef_init, intercept_init, coef0, icpt0, d, k, dtype
        )
        return TrainState(
            coef=to_tensor(coef0, device, tdtype),
            intercept=to_tensor(icpt0, device, tdtype),
        )

    def _make_oracle(self, data: FitData, mode: FitMode):
        """Step 3: the gradient oracle, and the early-stopping set.

        An out-of-core X stays a host array (see _streaming.py); under early
        stopping its training rows are indexed, never copied.
        """
        X, Y, sw, kind = data.X, data.Y, data.sample_weight, data.kind
        device, tdtype = data.device, data.tdtype
        stream = kind == "numpy" and should_stream(
            X, device, getattr(self, "out_of_core", "auto")
        )
        # a dense numpy X is checked for NaN and infinity here: the Gram path
        # of the whole X (one pass for its statistics, which are finite iff
        # X is, or overflow) checks what it computes instead of reading X
        # once more (a tenth of its fit)
        unchecked = not data.x_checked
        gram_checks = (
            unchecked
            and not stream
            and not mode.early_stopping
            and sw is None
            and prefers_gram(*X.shape, data.loss, self.batch_size)
        )
        if unchecked and not gram_checks:
            check_finite_host(X, "X", self)
        train_rows = None
        validation = None
        if mode.early_stopping:
            idx_train, idx_val = self._split(Y, sw)

            def take(a, i):
                if a is None:
                    return None
                if kind == "torch":
                    return a[torch.as_tensor(i, device=a.device)]
                return a[i]

            Xv = take(X, idx_val)
            validation = self._validation_class(
                (
                    csr_to_torch(Xv, device, tdtype)
                    if kind == "sparse"
                    else to_tensor(Xv, device, tdtype)
                ),
                to_tensor(take(Y, idx_val), device, tdtype),
                to_tensor(take(sw, idx_val), device, tdtype),
            )
            if stream:
                train_rows = idx_train
            else:
                X = take(X, idx_train)
            Y, sw = take(Y, idx_train), take(sw, idx_train)
        options = dict(
            fit_intercept=self.fit_intercept,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=data.generator,
            device=device,
            dtype=tdtype,
        )
        if stream:
            oracle = streaming_oracle(X, Y, sw, data.loss, rows=train_rows, **options)
        else:
            try:
                oracle = choose_oracle(
                    X if kind == "sparse" else to_tensor(X, device, tdtype),
                    to_tensor(Y, device, tdtype),
                    to_tensor(sw, device, tdtype),
                    data.loss,
                    **options,
                )
            except ValueError:  # statistics overflow: NaN or inf in X first
                if gram_checks:
                    check_finite_host(X, "X", self)
                raise
        return oracle, validation

    def _step_size(self, oracle, data: FitData, mode: FitMode):
        """Step 4: the initial learning rate and the schedule."""
        resume, planner = mode.resume, self._planner(data)
        if resume is None:
            eta0 = planner.eta0_for(
                oracle, data.shape, data.tdtype, data.device, data.partial
            )
        else:
            eta0 = resume.eta0
        # partial_fit goes on at the rate "adaptive" had shrunk to
        rate = eta0 if resume is None else resume.rate
        return eta0, planner.schedule(rate, data.loss.dloss_at)

    def _train(self, oracle, validation, schedule, init, data, mode, X, y):
        """Step 5: the engine's run, with the per-epoch hooks; returns the
        result and the recorded parameters (None without record_history)."""
        history = [] if self.record_history else None
        callback_ctx = None
        if hasattr(self, "_init_callback_context"):
            callback_ctx = self._init_callback_context(max_subtasks=mode.max_iter)
            callback_ctx.call_on_fit_task_begin(estimator=self, X=X, y=y)
        planner = self._planner(data)
        result = train(
            oracle,
            penalty=data.penalty,
            schedule=schedule,
            solver=planner.make_solver(oracle, data.partial),
            stopping=planner.stopping(mode.tol, mode.partial),
            max_iter=mode.max_iter,
            fit_intercept=self.fit_intercept,
            average=planner.average_start(),
            init=init,
            validation=validation,
            on_epoch=self._epoch_hook(history, callback_ctx, X, y, data.y_ndim),
            joint_outputs=data.loss.joint,
            intercept_decay=planner.intercept_decay(data.kind),
        )
        if callback_ctx is not None:
            callback_ctx.call_on_fit_task_end(
                estimator=self, X=X, y=y, reconstruction_attributes={}
            )
        return result, history

    def _commit(self, result, history, data: FitData, mode: FitMode, eta0, schedule):
        """Step 6: the fitted attributes, all set here and nowhere else."""
        averaged = result.avg_coef is not None
        self._solver_state = SolverState(
            dtype=data.dtype,
            n_outputs=data.shape[2],
            y_ndim=data.y_ndim,
            eta0=eta0,
            # the rate "adaptive" reached in partial_fit (a fit restarts at eta0)
            rate=schedule.eta0 if mode.partial else eta0,
            coef=to_numpy(result.standard_coef),
            intercept=to_numpy(result.standard_intercept),
            average_coef=to_numpy(result.avg_coef) if averaged else None,
            average_intercept=to_numpy(result.avg_intercept) if averaged else None,
            optimizer_state=optimizer_state_to_numpy(result.optimizer_state),
            fit_device=self.device,
        )
        coef, intercept = self._shape_params(
            to_numpy(result.coef), to_numpy(result.intercept), data.y_ndim
        )
        arrays = {"coef_": coef, "intercept_": intercept}
        if history is not None:
            paths = [self._shape_params(c, i, data.y_ndim) for c, i in history]
            coef_path = [c for c, _ in paths]
            icpt_path = [i for _, i in paths]
            if mode.keeps_history and getattr(self, "coef_path_", None) is not None:
                coef_path = [to_numpy_any(c) for c in self.coef_path_] + coef_path
                icpt_path = [to_numpy_any(i) for i in self.intercept_path_] + icpt_path
            arrays["coef_path_"] = np.stack(coef_path)
            arrays["intercept_path_"] = np.stack(icpt_path)
        if data.space is not None:
            # array API dispatch: fitted arrays live with the input data
            arrays = {name: data.space.put(v) for name, v in arrays.items()}
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

    def _warn_on_ending(self, result, mode: FitMode, dtype) -> None:
        if result.interrupted:
            warnings.warn(
                f"Fit interrupted by KeyboardInterrupt after {result.n_iter} "
                "complete epoch(s); keeping the best parameters reached so far "
                f"(objective {result.best_loss:.6g}).",
                UserWarning,
            )
        elif result.converged or mode.partial:
            return
        elif mode.tol is None:
            self._warn_early_stop(result, mode, dtype)
        elif result.optimality is not None:
            measure = (
                f"the {result.measure} is {result.optimality:.3g}, above "
                f"tol={result.tol:g}"
            )
            if result.n_iter == mode.max_iter:
                # scikit-learn's sentence first (it already says max_iter)
                message = (
                    f"{_MAX_ITER_MESSAGE} At the end {measure}; scaling the "
                    "features may also help."
                )
            else:
                why = (
                    "No step decreases the objective at this precision"
                    if result.solver_stuck
                    else "The step size reached the schedule's floor"
                )
                message = (
                    f"{why} before convergence: {measure}. "
                    f"{self._advice(result, dtype)}"
                )
            warnings.warn(message, ConvergenceWarning)
        elif result.n_iter == mode.max_iter:
            warnings.warn(_MAX_ITER_MESSAGE, ConvergenceWarning)

    def _warn_early_stop(self, result, mode: FitMode, dtype) -> None:
        """tol=None asks for no criterion but max_iter, and gets no warning
        there, as from scikit-learn; a full-batch solver that can make no
        more progress idles for the epochs left, converged at an optimum it
        certifies to the data's precision; where rounding alone stopped it,
        that is said, with the measure."""
        if not result.solver_stuck:
            return
        measure = (
            ""
            if result.optimality is None
            else f": the {result.measure} is {result.optimality:.3g}"
        )
        warnings.warn(
            "No step decreases the objective at this precision before a "
            f"certified optimum (the epochs left to max_iter={mode.max_iter} "
            f"change nothing){measure}. {self._advice(result, dtype)}",
            ConvergenceWarning,
        )

    @staticmethod
    def _advice(result, dtype) -> str:
        """What may help this fit: more iterations where it ran out of them;
        float64 only for float32 data that rounding stopped; scaling always
        (it conditions every solver)."""
        hints = ["scaling the features"]
        if not result.solver_stuck:
            hints.insert(0, "increasing max_iter")
        elif np.dtype(dtype) != np.float64:
            hints.append("using float64 data")
        return "Consider " + " or ".join(hints) + "."

    # ---------------------------------------------------------------- parts
    def _check_inits(self, coef_init, intercept_init, coef0, icpt0, d, k, dtype):
        if coef_init is not None:
            c = np.asarray(coef_init, dtype=dtype)
            if c.shape == (d,) and k == 1:
                c = c[:, None]
            elif c.shape == (k, d):
                c = c.T
            else:
                # scikit-learn's words first, which its users look for
                raise ValueError(
                    f"Provided coef_init does not match dataset: it has shape "
                    f"{c.shape}; expected {(d,) if k == 1 else (k, d)} for {d} "
                    f"features and {k} output(s)."
                )
            if not np.isfinite(c).all():
                raise ValueError("coef_init contains NaN or infinity.")
            coef0 = np.ascontiguousarray(c)
        if intercept_init is not None:
            i = np.atleast_1d(np.asarray(intercept_init, dtype=dtype))
            if i.shape != (k,):
                raise ValueError(
                    "Provided intercept_init does not match dataset: it has "
                    f"shape {i.shape}; expected ({k},)."
                )
            if not np.isfinite(i).all():
                raise ValueError("intercept_init contains NaN or infinity.")
            icpt0 = i.copy()
        return coef0, icpt0

    def _split(self, Y, sw):
        n = Y.shape[0]
        message = (
            f"Splitting {n} samples into a train set and a validation set with "
            f"validation_fraction={self.validation_fraction} led to an empty set. "
            "Please either change validation_fraction, increase number of "
            "samples, or disable early_stopping."
        )
        cv = self._validation_splitter(Y)
        try:
            idx_train, idx_val = next(cv.split(np.zeros((n, 1)), Y))
        except ValueError as exc:  # the splitter's own message names test_size
            raise ValueError(message) from exc
        if idx_train.shape[0] == 0 or idx_val.shape[0] == 0:
            raise ValueError(message)
        # the training rows in the data's order, as scikit-learn's SGD visits
        # them (it masks the validation rows out): with shuffle=False the
        # fit then sees the rows in the order given, as without early stopping
        idx_train = np.sort(idx_train)
        # bool(... .any()): sw may be a tensor
        if sw is not None and not bool((sw[idx_val] > 0).any()):
            raise ValueError(
                "The sample weights for validation set are all zero, consider "
                "using a different random state."
            )
        if sw is not None and not bool((sw[idx_train] > 0).any()):
            raise ValueError(
                "The sample weights for the training set are all zero, consider "
                "using a different random state."
            )
        return idx_train, idx_val

    def _epoch_hook(self, history, callback_ctx, X, y, y_ndim):
        """The engine's per-epoch callback: verbose lines, history, and
        scikit-learn callbacks (each epoch is one subtask of the fit task)."""
        use_callbacks = callback_ctx is not None and bool(
            getattr(self, "_skl_callbacks", None)
            or hasattr(self, "_parent_callback_ctx")
        )
        if not self.verbose and history is None and not use_callbacks:
            return None
        start = time.perf_counter()

        def hook(info):
            stop = False
            if history is not None:
                history.append((to_numpy(info.coef), to_numpy(info.intercept)))
            if self.verbose:
                self._print_epoch(info, start)
            if use_callbacks:
                sub = callback_ctx.subcontext(task_name="epoch")
                sub.call_on_fit_task_begin(estimator=self, X=X, y=y)
                coef_t, icpt_t = info.coef, info.intercept

                def reconstruction():
                    # evaluated lazily by sklearn, only if a callback asks
                    coef, icpt = self._shape_params(
                        to_numpy(coef_t), to_numpy(icpt_t), y_ndim
                    )
                    return {"coef_": coef, "intercept_": icpt, "n_iter_": info.epoch}

                stop = bool(
                    sub.call_on_fit_task_end(
                        estimator=self,
                        X=X,
                        y=y,
                        metadata={"epoch": info.epoch, "loss": info.loss},
                        reconstruction_attributes=reconstruction,
                    )
                )
            return stop

        return hook

    def _print_epoch(self, info, start):
        W, b = info.coef, info.intercept
        msg = (
            f"-- Epoch {info.epoch}\n"
            f"Norm: {float(torch.linalg.vector_norm(W)):.2f}, "
            f"NNZs: {int((W != 0).sum())}, "
            f"Bias: {float(b.mean()) if b.numel() else 0.0:.6f}, "
            f"T: {info.t - 1}, Avg. loss: {info.loss:.6f}"
        )
        if info.validation_score is not None:
            msg += f", Validation score: {info.validation_score:.6f}"
        print(msg)
        print(f"Total training time: {time.perf_counter() - start:.2f} seconds.")

    # -------------------------------------------------------------- predict
    def _predict_device(self, X) -> torch.device:
        """Where to predict: the estimator's device, resolved as ``fit``
        resolves it, so that a device absent here raises fit's ValueError.

        The one exception is a model fitted on a device absent here (fitted
        on a GPU, loaded on a CPU host) whose ``device`` was not changed
        since: it predicts on the CPU, with a warning, since predictions do
        not depend on the device. A device set after the fit is a request
        for that device, and fails as it would in ``fit``.
        """
        try:
            return resolve_device(self.device, X)
        except ValueError:
            state = getattr(self, "_solver_state", None)
            # a model pickled before fit_device was recorded keeps the
            # fallback it was written with
            if state is None or state.fit_device not in (UNRECORDED, self.device):
                raise
            warnings.warn(
                f"device={self.device!r} is not available on this machine; "
                "predicting on the CPU.",
                UserWarning,
            )
            return torch.device("cpu")

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
        device = self._predict_device(X)
        if kind != "torch" and device.type == "cpu":
            W, b = _parameter_matrix(self.coef_, self.intercept_)
            W, b = to_numpy_any(W), to_numpy_any(b)
            out = np.asarray(safe_sparse_dot(X, W.astype(X.dtype, copy=False)))
            out += b.astype(X.dtype, copy=False)
            return out if space is None else space.put(out)
        if kind == "torch":
            W, b = self._device_params(device, X.dtype)
            out = X.to(device) @ W + b
            return to_numpy(out) if space is None else space.put(out)
        out = self._host_rows_on_device(X, kind, device)
        return out if space is None else space.put(out)

    def _host_rows_on_device(self, X, kind, device) -> np.ndarray:
        """Predictions for host data computed on ``device``, a bounded chunk of
        rows at a time: predicting never needs all of X on the device."""
        tdtype = torch_dtype_of(X.dtype)
        W, b = self._device_params(device, tdtype)
        if kind == "sparse":
            X = X.tocsr()
        parts = []
        for sl in gen_batches(X.shape[0], rows_per_chunk(X.shape[1], X.dtype.itemsize)):
            if kind == "sparse":
                Xt = csr_to_torch(X[sl], device, tdtype)
            else:
                Xt = to_tensor(X[sl], device, tdtype)
            parts.append(to_numpy(Xt @ W + b))
        return np.concatenate(parts)

    def _device_params(self, device, dtype):
        """``coef_`` and ``intercept_`` as tensors on ``device``.

        Built once per (device, dtype) and kept, with the arrays they were
        made from, in a cache that pickles leave out; an entry serves only
        while ``coef_`` and ``intercept_`` still hold those values.
        """
        coef, intercept = self.coef_, self.intercept_
        if isinstance(coef, torch.Tensor):  # fitted under array API dispatch
            W, b = _parameter_matrix(coef, intercept)
            return W.to(device, dtype), b.to(device, dtype)
        coef, intercept = host(coef), host(intercept)
        state = getattr(self, "_solver_state", None)
        cache = {} if state is None else state.device_cache
        key = (str(device), dtype)
        hit = cache.get(key)
        if hit is None or not (
            _same_values(hit[0], coef) and _same_values(hit[1], intercept)
        ):
            W, b = _parameter_matrix(coef, intercept)
            hit = (
                _snapshot(coef),
                _snapshot(intercept),
                to_tensor(W, device, dtype),
                to_tensor(b, device, dtype),
            )
            cache[key] = hit
        return hit[2], hit[3]

    def __getstate__(self):
        state = super().__getstate__().copy()
        for key, value in state.items():
            # fitted under array API dispatch: numpy in the pickle
            if isinstance(value, torch.Tensor) or is_foreign(value):
                state[key] = to_numpy_any(value)
        if isinstance(state.get("_solver_state"), SolverState):
            state["_solver_state"] = state["_solver_state"].without_cache()
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags


def _release(exc: BaseException) -> None:
    """Free what a failed fit held: the locals of its frames (tensors on the
    device, kept alive by the traceback for as long as anyone holds the
    exception) and the allocator's cached blocks."""
    traceback.clear_frames(exc.__traceback__)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _parameter_matrix(coef, intercept):
    """``coef_`` as a dense (n_features, n_outputs) matrix, ``intercept_`` as
    (n_outputs,): tensors for tensors, else numpy."""
    if sp.issparse(coef):
        coef = coef.toarray()
    if not isinstance(coef, torch.Tensor):
        coef, intercept = to_numpy_any(coef), to_numpy_any(intercept)
    W = coef.T if coef.ndim == 2 else coef[:, None]
    return W, intercept.reshape(-1)


def _snapshot(a):
    # a sparsified coef_ is held dense: the values are what the cache keys
    # on, and scipy cannot copy the 1-D sparse matrix that sparsify makes of
    # a regressor's 1-D coef_
    return _dense(a).copy()


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a)


def _same_values(held, current) -> bool:
    current = _dense(current)
    return held.shape == current.shape and np.array_equal(held, current)
