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
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import ShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._data import resolve_device, to_numpy, to_tensor
from ._engine import TrainState, Validation, train
from ._losses import make_loss
from ._optimizers import AUTO_ETA0, OPTIMIZERS
from ._oracles import choose_oracle, lipschitz_estimate
from ._penalties import make_penalty
from ._schedules import SCHEDULES, make_schedule

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


def _optimizer_state_to_numpy(state: dict) -> dict:
    """torch.optim state_dict with every tensor as a numpy array (picklable
    without torch devices)."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, entry in state["state"].items():
        out["state"][key] = {
            k: (to_numpy(v), str(v.dtype)) if isinstance(v, torch.Tensor) else v
            for k, v in entry.items()
        }
    return out


def _optimizer_state_to_torch(state: dict, device) -> dict:
    out = {"param_groups": state["param_groups"], "state": {}}
    for key, entry in state["state"].items():
        restored = {}
        for k, v in entry.items():
            if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], np.ndarray):
                arr = torch.from_numpy(v[0].copy())
                # torch keeps Adam's step counter on the CPU
                restored[k] = arr if k == "step" else arr.to(device)
            else:
                restored[k] = v
        out["state"][key] = restored
    return out


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
    def _prepare_targets(self, y, dtype, first_call):
        """Targets as a float matrix (n_samples, n_outputs)."""
        raise NotImplementedError

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

    def _set_output_shapes(self, coef, intercept):
        self.coef_, self.intercept_ = self._shape_params(coef, intercept)

    def _coef_matrix(self):
        """``coef_`` and ``intercept_`` as (n_features, k) and (k,) arrays."""
        raise NotImplementedError

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
        if (
            self.optimizer == "lbfgs"
            and self.penalty in ("l1", "elasticnet")
            and (self.penalty == "l1" or self.l1_ratio > 0)
        ):
            raise ValueError(
                f"optimizer='lbfgs' cannot handle the non-smooth penalty "
                f"{self.penalty!r}; use optimizer='sgd' or 'adam', or penalty='l2'."
            )

    def _validate_Xy(self, X, y, first_call):
        return validate_data(
            self,
            X,
            y,
            reset=first_call,
            dtype=[np.float64, np.float32],
            order="C",
            multi_output=True,
            y_numeric=True,
            accept_sparse=False,
        )

    # ----------------------------------------------------------------- fit
    def _fit_impl(self, *args, **kwargs):
        # Fit on new state and commit at the end: if anything fails (bad input,
        # divergence, interruption), the estimator is left as it was, including
        # what validate_data(reset=True) records (n_features_in_, ...).
        saved = dict(self.__dict__)
        try:
            return self._fit_new_state(*args, **kwargs)
        except BaseException:
            live = {k: v for k, v in self.__dict__.items() if k in _CALLBACK_ATTRS}
            self.__dict__.clear()
            self.__dict__.update(saved)
            self.__dict__.update(live)
            raise

    def _fit_new_state(
        self, X, y, sample_weight, coef_init=None, intercept_init=None, partial=False
    ):
        first_call = not partial or not hasattr(self, "coef_")
        X, y = self._validate_Xy(X, y, first_call)
        dtype = X.dtype
        if not first_call and dtype != self._fit_dtype:
            X = X.astype(self._fit_dtype)
            dtype = X.dtype
        Y = self._prepare_targets(y, dtype, first_call)
        n, d = X.shape
        k = Y.shape[1]
        if not first_call and k != self._n_outputs:
            raise ValueError(
                f"y has {k} output(s) but this model was fitted with "
                f"{self._n_outputs}; partial_fit needs the same outputs in every call."
            )
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(
                sample_weight, X, dtype=dtype, ensure_non_negative=True
            )
            if not np.isfinite(sw).all():
                raise ValueError("sample_weight contains NaN or infinity.")
            if sw.sum() <= 0:
                raise ValueError("The sum of sample_weight is zero: nothing to fit.")

        device = resolve_device(self.device, X)
        tdtype = torch.float32 if dtype == np.float32 else torch.float64
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, _MAX_SEED))
        generator = torch.Generator().manual_seed(seed)

        loss = self._make_loss()
        penalty = make_penalty(self.penalty, alpha=self.alpha, l1_ratio=self.l1_ratio)

        # -------- initial state
        if not first_call:
            coef0, icpt0 = self._standard_params()
            t0 = int(self.t_)
        else:
            coef0 = np.zeros((d, k), dtype=dtype)
            icpt0 = np.zeros(k, dtype=dtype)
            t0 = 1
            if (
                not partial
                and self.warm_start
                and hasattr(self, "coef_")
                and self.coef_ is not None
            ):
                if self.n_features_in_ != d:
                    raise ValueError("warm_start needs the same number of features")
                coef0, icpt0 = self._standard_params()
                coef0, icpt0 = coef0.astype(dtype), icpt0.astype(dtype)
            coef0, icpt0 = self._check_inits(
                coef_init, intercept_init, coef0, icpt0, d, k, dtype
            )

        # -------- validation split (fit only)
        train_idx = None
        validation = None
        if self.early_stopping and not partial:
            train_idx, val_idx = self._split(Y, sw)
        Xt = to_tensor(X, device, tdtype)
        Yt = to_tensor(Y, device, tdtype)
        swt = to_tensor(sw, device, tdtype) if sw is not None else None
        if train_idx is not None:
            ti = torch.from_numpy(train_idx).to(device)
            vi = torch.from_numpy(val_idx).to(device)
            validation = Validation(Xt[vi], Yt[vi], None if swt is None else swt[vi])
            Xt, Yt = Xt[ti], Yt[ti]
            swt = None if swt is None else swt[ti]

        oracle = choose_oracle(
            Xt,
            Yt,
            swt,
            loss,
            fit_intercept=self.fit_intercept,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=generator,
        )

        # -------- learning rate
        if not first_call and getattr(self, "_eta0_resolved", None) is not None:
            eta0 = self._eta0_resolved
        else:
            eta0 = self._resolve_eta0(oracle, loss, penalty, tdtype)
        schedule = make_schedule(
            self.learning_rate,
            eta0=eta0,
            power_t=self.power_t,
            alpha=self.alpha,
            dloss=loss.dloss_at,
        )

        average = 0
        if self.average is not False and self.average is not None:
            average = 1 if self.average is True else int(self.average)

        opt_state = None
        if not first_call and getattr(self, "_optimizer_state", None) is not None:
            opt_state = _optimizer_state_to_torch(self._optimizer_state, device)
        avg_coef = avg_icpt = None
        if not first_call and getattr(self, "_average_coef", None) is not None:
            avg_coef = to_tensor(self._average_coef, device, tdtype)
            avg_icpt = to_tensor(self._average_intercept, device, tdtype)
        init = TrainState(
            coef=to_tensor(coef0, device, tdtype),
            intercept=to_tensor(icpt0, device, tdtype),
            t=t0,
            avg_coef=avg_coef,
            avg_intercept=avg_icpt,
            optimizer_state=opt_state,
        )

        history = [] if self.record_history else None
        callback_ctx = None
        if hasattr(self, "_init_callback_context"):
            callback_ctx = self._init_callback_context(
                max_subtasks=1 if partial else self.max_iter
            )
            callback_ctx.call_on_fit_task_begin(estimator=self, X=X, y=y)
        on_epoch = self._epoch_hook(history, callback_ctx, X, y)
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
            on_epoch=on_epoch,
        )

        # -------- commit (only now is the estimator's state touched)
        prev_curve = (
            list(getattr(self, "loss_curve_", []))
            if (partial and not first_call) or (self.warm_start and not partial)
            else []
        )
        self._fit_dtype = dtype
        self._n_outputs = k
        self._eta0_resolved = eta0
        self._set_output_shapes(to_numpy(result.coef), to_numpy(result.intercept))
        self._standard_coef = to_numpy(result.standard_coef)
        self._standard_intercept = to_numpy(result.standard_intercept)
        if average:
            self._average_coef = to_numpy(result.avg_coef)
            self._average_intercept = to_numpy(result.avg_intercept)
        else:
            self._average_coef = self._average_intercept = None
        self._optimizer_state = (
            None
            if result.optimizer_state is None
            else _optimizer_state_to_numpy(result.optimizer_state)
        )
        self.n_iter_ = result.n_iter
        self.t_ = result.t
        self.loss_curve_ = prev_curve + list(result.loss_curve)
        self.eta0_ = eta0
        if validation is not None:
            self.validation_scores_ = list(result.validation_scores)
            self.best_validation_score_ = result.best_validation_score
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self.best_loss_ = result.best_loss
        if history is not None:
            shaped = [self._shape_params(c, i) for c, i in history]
            coef_path = [c for c, _ in shaped]
            icpt_path = [i for _, i in shaped]
            if partial and not first_call and hasattr(self, "coef_path_"):
                coef_path = list(self.coef_path_) + coef_path
                icpt_path = list(self.intercept_path_) + icpt_path
            self.coef_path_ = np.stack(coef_path)
            self.intercept_path_ = np.stack(icpt_path)

        if callback_ctx is not None:
            callback_ctx.call_on_fit_task_end(
                estimator=self, X=X, y=y, reconstruction_attributes={}
            )
        if (
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
    def _standard_params(self):
        if getattr(self, "_standard_coef", None) is not None:
            return self._standard_coef.copy(), self._standard_intercept.copy()
        return self._coef_matrix()

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
        cv = self._validation_splitter(Y)
        idx_train, idx_val = next(cv.split(np.zeros((Y.shape[0], 1)), Y))
        if idx_train.shape[0] == 0 or idx_val.shape[0] == 0:
            raise ValueError(
                f"Splitting {Y.shape[0]} samples into a train set and a validation "
                f"set with validation_fraction={self.validation_fraction} led to an "
                f"empty set ({idx_train.shape[0]} and {idx_val.shape[0]} samples). "
                "Please either change validation_fraction, increase number of "
                "samples, or disable early_stopping."
            )
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
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        W, b = self._coef_matrix()
        W = W.astype(X.dtype, copy=False)
        b = b.astype(X.dtype, copy=False)
        return X @ W + b

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
