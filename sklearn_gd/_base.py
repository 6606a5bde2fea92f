"""What every estimator of the package shares: parameters, validation, fit.

:class:`BaseTorchSGD` turns validated numpy (or torch) data into tensors,
builds the components from the estimator's string parameters, runs the
engine and commits the result as numpy fitted attributes. Subclasses say how
targets become a float matrix (``_prepare_targets``), how the validation set
is split, and how outputs map to ``coef_``/``intercept_`` shapes.
"""

from __future__ import annotations

import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._data import resolve_device, to_numpy, to_numpy_any, to_tensor
from ._engine import TrainState, Validation, train
from ._losses import make_loss
from ._optimizers import AUTO_ETA0, OPTIMIZERS
from ._oracles import choose_oracle, csr_to_torch, lipschitz_estimate
from ._penalties import make_penalty
from ._schedules import SCHEDULES, make_schedule
from ._streaming import should_stream, streaming_oracle
from ._validation import torch_dtype_of, validate_fit_inputs, validate_predict_input

try:  # scikit-learn >= 1.9: the callback API (ProgressBar, ScoringMonitor, ...)
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # older scikit-learn: fits run without callbacks

    class CallbackSupportMixin:  # type: ignore[no-redef]
        """Stand-in when scikit-learn has no callback API."""


__all__ = ["BaseTorchSGD"]

# attributes that sklearn's callback machinery sets during fit and removes
# after it; a failed fit restores everything else
_CALLBACK_ATTRS = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")

_MAX_SEED = np.iinfo(np.int32).max

# torch >= 2.5 has torch.OutOfMemoryError; torch.cuda's alias is older
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _dispatch_on() -> bool:
    return bool(get_config().get("array_api_dispatch", False))


def _optimizer_state_to_numpy(state: dict) -> dict:
    """A torch.optim state_dict with its tensors as numpy arrays, so that the
    estimator pickles without torch objects or devices."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, entry in state["state"].items():
        out["state"][key] = {
            k: _NumpyTensor(to_numpy(v)) if isinstance(v, torch.Tensor) else v
            for k, v in entry.items()
        }
    return out


def _optimizer_state_to_torch(state: dict, device) -> dict:
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, entry in state["state"].items():
        out["state"][key] = {
            # torch keeps Adam's step counter on the CPU
            k: (
                v.to_torch("cpu" if k == "step" else device)
                if isinstance(v, _NumpyTensor)
                else v
            )
            for k, v in entry.items()
        }
    return out


class _NumpyTensor:
    """A tensor's values held as numpy, to be made a tensor again on load."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __getstate__(self):
        return self.array

    def __setstate__(self, array):
        self.array = array

    def to_torch(self, device):
        return torch.from_numpy(self.array.copy()).to(device)


class BaseTorchSGD(CallbackSupportMixin, BaseEstimator):
    """Shared machinery of the package's linear estimators (not public)."""

    _parameter_constraints: dict = {
        "penalty": [StrOptions({"l2", "l1", "elasticnet"}), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "shuffle": ["boolean"],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "learning_rate": [StrOptions(set(SCHEDULES))],
        "eta0": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "average": [Interval(Integral, 0, None, closed="neither"), "boolean"],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
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

    def _validation_splitter(self, Y):
        return ShuffleSplit(
            test_size=self.validation_fraction, random_state=self.random_state
        )

    def _shape_params(self, coef, intercept):
        """(n_features, n_outputs) parameters in the public ``coef_`` shapes."""
        raise NotImplementedError

    def _solver_state_y_ndim(self):
        # during a fit, the y being fitted; after it, the committed one
        pending = getattr(self, "_pending_y_ndim", None)
        return pending if pending is not None else self._solver_state["y_ndim"]

    # ----------------------------------------------------------- validation
    def _more_validate_params(self, for_partial_fit=False):
        resolve_device(self.device)  # unknown strings, absent accelerators
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError(
                "alpha must be > 0 since learning_rate is 'optimal'. alpha is "
                "used to compute the optimal learning rate."
            )
        if self.early_stopping and for_partial_fit:
            raise ValueError("early_stopping should be False with partial_fit")
        if self.optimizer == "lbfgs" and (
            self.penalty == "l1" or (self.penalty == "elasticnet" and self.l1_ratio > 0)
        ):
            raise ValueError(
                f"optimizer='lbfgs' cannot handle the non-smooth penalty "
                f"{self.penalty!r}; use optimizer='sgd' or 'adam', or penalty='l2'."
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
                raise MemoryError(self._out_of_memory_message(args[0], exc)) from exc
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
        state = getattr(self, "_solver_state", None)
        first_call = not partial or state is None
        inputs = validate_fit_inputs(
            self,
            X,
            y,
            sample_weight,
            reset=first_call,
            dtype=None if first_call else state["dtype"],
        )
        X, sw, kind, dtype = inputs.X, inputs.sample_weight, inputs.kind, inputs.dtype
        Y = self._prepare_targets(inputs.Y, first_call)
        self._pending_y_ndim = inputs.y_ndim if first_call else state["y_ndim"]
        n, d = X.shape
        k = Y.shape[1]
        if not first_call and k != state["n_outputs"]:
            raise ValueError(
                f"y has {k} output(s) but this model was fitted with "
                f"{state['n_outputs']}; partial_fit needs the same outputs in "
                "every call."
            )
        device = resolve_device(self.device, X)
        tdtype = torch_dtype_of(dtype)
        rng = check_random_state(self.random_state)
        generator = torch.Generator().manual_seed(int(rng.randint(0, _MAX_SEED)))

        loss = self._make_loss()
        penalty = make_penalty(self.penalty, alpha=self.alpha, l1_ratio=self.l1_ratio)

        # -------- initial state
        if not first_call:
            coef0, icpt0 = state["standard_coef"], state["standard_intercept"]
            t0 = int(self.t_)
        else:
            coef0 = np.zeros((d, k), dtype=dtype)
            icpt0 = np.zeros(k, dtype=dtype)
            t0 = 1
            if not partial and self.warm_start and state is not None:
                if state["standard_coef"].shape != (d, k):
                    raise ValueError(
                        "warm_start needs the same number of features and outputs "
                        f"as the previous fit: {state['standard_coef'].shape[::-1]}"
                        f" (outputs, features), got {(k, d)}."
                    )
                coef0 = state["standard_coef"].astype(dtype)
                icpt0 = state["standard_intercept"].astype(dtype)
            coef0, icpt0 = self._check_inits(
                coef_init, intercept_init, coef0, icpt0, d, k, dtype
            )

        # -------- validation split (fit only), in the data's own container
        # an out-of-core X stays a host array (see _streaming.py); under early
        # stopping its training rows are indexed, never copied
        stream = kind == "numpy" and should_stream(
            X, device, getattr(self, "out_of_core", "auto")
        )
        train_rows = None
        validation = None
        if self.early_stopping and not partial:
            idx_train, idx_val = self._split(Y, sw)
            take = (
                (lambda a, i: a[torch.as_tensor(i, device=a.device)])
                if (kind == "torch")
                else (lambda a, i: a[i])
            )
            Xv, Yv = take(X, idx_val), take(Y, idx_val)
            swv = None if sw is None else take(sw, idx_val)
            if stream:
                train_rows = idx_train
            else:
                X = take(X, idx_train)
            Y = take(Y, idx_train)
            sw = None if sw is None else take(sw, idx_train)
            Xv_t = (
                csr_to_torch(Xv, device, tdtype)
                if kind == "sparse"
                else to_tensor(Xv, device, tdtype)
            )
            validation = self._validation_class(
                Xv_t,
                to_tensor(Yv, device, tdtype),
                None if swv is None else to_tensor(swv, device, tdtype),
            )
        oracle_kwargs = dict(
            fit_intercept=self.fit_intercept,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=generator,
            device=device,
            dtype=tdtype,
        )
        if stream:
            oracle = streaming_oracle(X, Y, sw, loss, rows=train_rows, **oracle_kwargs)
        else:
            Xt = X if kind == "sparse" else to_tensor(X, device, tdtype)
            Yt = to_tensor(Y, device, tdtype)
            swt = None if sw is None else to_tensor(sw, device, tdtype)
            oracle = choose_oracle(Xt, Yt, swt, loss, **oracle_kwargs)

        # -------- learning rate
        if first_call:
            eta0 = self._resolve_eta0(oracle, loss, penalty, tdtype)
        else:
            eta0 = state["eta0"]
        schedule = make_schedule(
            self.learning_rate,
            # partial_fit goes on at the rate "adaptive" had shrunk to
            eta0=eta0 if first_call else state.get("rate", eta0),
            power_t=self.power_t,
            alpha=self.alpha,
            dloss=loss.dloss_at,
        )
        average = 0
        if self.average is not False and self.average is not None:
            average = 1 if self.average is True else int(self.average)

        init = TrainState(
            coef=to_tensor(coef0, device, tdtype),
            intercept=to_tensor(icpt0, device, tdtype),
            t=t0,
        )
        if not first_call:
            if state["optimizer_state"] is not None:
                init.optimizer_state = _optimizer_state_to_torch(
                    state["optimizer_state"], device
                )
            if state["average_coef"] is not None:
                init.avg_coef = to_tensor(state["average_coef"], device, tdtype)
                init.avg_intercept = to_tensor(
                    state["average_intercept"], device, tdtype
                )

        history = [] if self.record_history else None
        callback_ctx = None
        if hasattr(self, "_init_callback_context"):
            callback_ctx = self._init_callback_context(
                max_subtasks=1 if partial else self.max_iter
            )
            callback_ctx.call_on_fit_task_begin(estimator=self, X=X, y=y)
        result = train(
            oracle,
            penalty=penalty,
            schedule=schedule,
            optimizer=self.optimizer,
            momentum=self.momentum,
            nesterov=self.nesterov,
            max_iter=1 if partial else self.max_iter,
            tol=None if partial else self.tol,
            n_iter_no_change=self.n_iter_no_change,
            fit_intercept=self.fit_intercept,
            average=average,
            init=init,
            validation=validation,
            on_epoch=self._epoch_hook(history, callback_ctx, X, y),
            joint_outputs=loss.joint,
        )

        # -------- commit (only now is the estimator's state touched)
        del self._pending_y_ndim
        keep_history = (partial and not first_call) or (
            self.warm_start and not partial and state is not None
        )
        self._solver_state = {
            "dtype": dtype,
            "n_outputs": k,
            "y_ndim": inputs.y_ndim if first_call else state["y_ndim"],
            "eta0": eta0,
            # the rate "adaptive" reached in partial_fit (a fit restarts at eta0)
            "rate": schedule.eta0 if partial else eta0,
            "coef": to_numpy(result.coef),
            "intercept": to_numpy(result.intercept),
            "standard_coef": to_numpy(result.standard_coef),
            "standard_intercept": to_numpy(result.standard_intercept),
            "average_coef": None if not average else to_numpy(result.avg_coef),
            "average_intercept": (
                None if not average else to_numpy(result.avg_intercept)
            ),
            "optimizer_state": (
                None
                if result.optimizer_state is None
                else _optimizer_state_to_numpy(result.optimizer_state)
            ),
            "device_cache": {},
        }
        arrays = dict(
            zip(
                ("coef_", "intercept_"),
                self._shape_params(
                    self._solver_state["coef"], self._solver_state["intercept"]
                ),
            )
        )
        if history is not None:
            shaped = [self._shape_params(c, i) for c, i in history]
            coef_path = [c for c, _ in shaped]
            icpt_path = [i for _, i in shaped]
            if keep_history and getattr(self, "coef_path_", None) is not None:
                coef_path = [to_numpy_any(c) for c in self.coef_path_] + coef_path
                icpt_path = [to_numpy_any(i) for i in self.intercept_path_] + icpt_path
            arrays["coef_path_"] = np.stack(coef_path)
            arrays["intercept_path_"] = np.stack(icpt_path)
        if kind == "torch" and _dispatch_on():
            # array API dispatch: fitted arrays live with the input data
            arrays = {k_: to_tensor(v, X.device, tdtype) for k_, v in arrays.items()}
        for name, value in arrays.items():
            setattr(self, name, value)
        prev_curve = list(self.loss_curve_) if keep_history else []
        self.loss_curve_ = prev_curve + list(result.loss_curve)
        self.n_iter_ = result.n_iter
        self.t_ = result.t
        self.eta0_ = eta0
        self.best_loss_ = result.best_loss
        if validation is not None:
            self.validation_scores_ = list(result.validation_scores)
            self.best_validation_score_ = result.best_validation_score
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

        if callback_ctx is not None:
            callback_ctx.call_on_fit_task_end(
                estimator=self, X=X, y=y, reconstruction_attributes={}
            )
        if result.interrupted:
            warnings.warn(
                f"Fit interrupted by KeyboardInterrupt after {result.n_iter} "
                "complete epoch(s); keeping the best parameters reached so far "
                f"(objective {result.best_loss:.6g}).",
                UserWarning,
            )
        elif (
            not partial
            and self.tol is not None
            and not result.converged
            and self.n_iter_ == self.max_iter
        ):
            warnings.warn(
                "Maximum number of iteration reached before convergence. "
                "Consider increasing max_iter to improve the fit.",
                ConvergenceWarning,
            )
        return self

    # ---------------------------------------------------------------- parts
    def _check_inits(self, coef_init, intercept_init, coef0, icpt0, d, k, dtype):
        if coef_init is not None:
            c = np.asarray(coef_init, dtype=dtype)
            if c.shape == (d,) and k == 1:
                c = c[:, None]
            elif c.shape == (k, d):
                c = c.T
            else:
                raise ValueError(
                    f"coef_init has shape {c.shape}; expected "
                    f"{(d,) if k == 1 else (k, d)} for {d} features and {k} output(s)."
                )
            if not np.isfinite(c).all():
                raise ValueError("coef_init contains NaN or infinity.")
            coef0 = np.ascontiguousarray(c)
        if intercept_init is not None:
            i = np.atleast_1d(np.asarray(intercept_init, dtype=dtype))
            if i.shape != (k,):
                raise ValueError(
                    f"intercept_init has shape {i.shape}; expected ({k},)."
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
        if sw is not None and not np.any(sw[idx_val] > 0):
            raise ValueError(
                "The sample weights for validation set are all zero, consider "
                "using a different random state."
            )
        return idx_train, idx_val

    def _resolve_eta0(self, oracle, loss, penalty, tdtype):
        """``eta0``, with "auto" turned into a step the data can take.

        For "sgd", ``1 / L_b`` where ``L_b`` bounds the curvature of a batch
        objective of size ``b``: ``L_b = L n (b - 1) / (b (n - 1)) + L_max
        (n - b) / (b (n - 1))`` (Gower et al., 2019) with ``L`` the largest
        eigenvalue of the loss Hessian bound and ``L_max`` its largest row term.
        """
        if self.eta0 != "auto":
            return float(self.eta0)
        if self.optimizer in AUTO_ETA0:
            return AUTO_ETA0[self.optimizer]
        lam, max_row = lipschitz_estimate(oracle, tdtype)
        n = oracle.n_samples
        b = n if self.batch_size is None else min(self.batch_size, n)
        if b >= n or max_row is None or n == 1:
            lip = lam
        else:
            lip = (lam * n * (b - 1) + max_row * (n - b)) / (b * (n - 1))
        lip = loss.curvature * lip + penalty.curvature
        if not math.isfinite(lip) or lip <= 0:
            return 1.0
        return 1.0 / lip

    def _epoch_hook(self, history, callback_ctx, X, y):
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
                    coef, icpt = self._shape_params(to_numpy(coef_t), to_numpy(icpt_t))
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
    def _decision(self, X):
        """``X @ coef + intercept`` as (n_samples, n_outputs).

        numpy and sparse input on the CPU is computed with numpy. A tensor, or
        an explicit accelerator ``device``, is computed by torch on the
        device; the result is a tensor on the input's device under array API
        dispatch, else numpy (as scikit-learn returns).
        """
        check_is_fitted(self)
        X, kind = validate_predict_input(self, X)
        state = self._solver_state
        device = resolve_device(self.device, X)
        if kind != "torch" and device.type == "cpu":
            dtype = X.dtype
            W = state["coef"].astype(dtype, copy=False)
            b = state["intercept"].astype(dtype, copy=False)
            return np.asarray(X @ W) + b
        if kind == "torch":
            Xt = X.to(device)
        elif kind == "sparse":
            Xt = csr_to_torch(X.tocsr(), device, torch_dtype_of(X.dtype))
        else:
            Xt = to_tensor(X, device, torch_dtype_of(X.dtype))
        W, b = self._device_params(device, Xt.dtype)
        out = Xt @ W + b
        if kind == "torch" and _dispatch_on():
            return out.to(X.device)
        return to_numpy(out)

    def _device_params(self, device, dtype):
        """Parameters as tensors on ``device``: built once, kept out of pickles."""
        state = self._solver_state
        key = (str(device), dtype)
        cache = state.setdefault("device_cache", {})
        if key not in cache:
            cache[key] = (
                to_tensor(state["coef"], device, dtype),
                to_tensor(state["intercept"], device, dtype),
            )
        return cache[key]

    def __getstate__(self):
        state = super().__getstate__().copy()
        for key, value in state.items():
            if isinstance(value, torch.Tensor):  # fitted under array API dispatch
                state[key] = to_numpy(value)
        if isinstance(state.get("_solver_state"), dict):
            solver = dict(state["_solver_state"])
            solver["device_cache"] = {}
            state["_solver_state"] = solver
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags
