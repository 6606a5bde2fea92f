"""The cross-validated search of the CV estimators: their whole fit path.

:class:`CrossValidatedSearch` is mixed in before the base estimator class
(:class:`~sklearn_gd.TorchSGDRegressor`, :class:`~sklearn_gd.TorchSGDClassifier`)
and replaces its fit: it validates the data with the base class's own step,
splits it, builds every split's fold weights (and early-stopping rows), the
oracles (:mod:`sklearn_gd.objective._cv_oracles`) and the alpha grids
(:mod:`sklearn_gd.search._cv_grid`), trains every (split, l1_ratio, alpha) unit of
columns in groups that fit the memory budget (:mod:`sklearn_gd.engine._cv_engine`),
scores them (:mod:`sklearn_gd.search._cv_scores`), writes GridSearchCV's
``cv_results_`` and refits the best configuration with the base estimator.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from sklearn.base import _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning, NotFittedError
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing
from sklearn.utils._available_if import available_if

from ..data._array_api import to_numpy_any
from ..data._data import CHUNK_ROWS, to_numpy, to_tensor
from ..engine._cv_engine import (
    CONVERGED,
    DIVERGED,
    MAX_ITER,
    ScaledSolver,
    train_columns,
)
from ..engine._engine import DivergenceError, check_rate_fits
from ..engine._state import FitMode
from ..model._penalties import make_penalty
from ..model._schedules import SCHEDULES, optimal_init
from ..objective._cv_oracles import (
    ColumnDirectOracle,
    ColumnGramOracle,
    ColumnHostOracle,
    ColumnSparseOracle,
    Layout,
)
from ..objective._oracles import prefers_gram
from ..objective._streaming import HostRows, available_host_bytes, should_stream
from ..solvers._exact import GAP_TOL, solve_squared
from ..solvers._optimizers import OPTIMIZERS, make_solver
from ._cv_grid import alpha_grid
from ._cv_scores import (
    search_results,
    unit_r2,
    unit_r2_from_moments,
)

__all__ = ["DROPPED", "CrossValidatedSearch"]

# base parameters that the cross-validation estimators do not take
DROPPED = ("alpha", "warm_start")

# copies of a column of parameters that training keeps, beyond the solver's
# state: the parameters, their gradient, the step's starting point and two
# checkpoints
_PARAMETER_COPIES = 5
# the solver's own copies
_SOLVER_COPIES = {"sgd": 1, "adam": 2, "adamw": 2, "adagrad": 1}
# (rows x columns) temporaries of a piece of rows: predictions, losses,
# derivatives and their weighted copy, the gathered fold weights
_PIECE_COPIES = 5


def _never(estimator) -> bool:
    return False


class CrossValidatedSearch:
    """The search shared by both estimators; mixed in before the base class.

    Subclasses set ``_base_class`` and say how targets are split, weighted
    and scored (``_cv_targets``, ``_fit_weights``, ``_default_scores``).
    """

    _base_class: type

    # ------------------------------------------------------------- hooks
    def _cv_targets(self, y):
        """``(targets to fit, labels to split on, class index or None)``."""
        return y, to_numpy_any(y), None

    def _fit_weights(self, weights, labels, class_index):
        """The weights of the samples in training (None: all ones)."""
        return weights

    def _make_penalty(self):
        # the search builds one penalty per column once the grid is known
        return None

    # -------------------------------------------------------------- public
    @available_if(_never)
    def partial_fit(self, *args, **kwargs):  # pragma: no cover
        """Not available: a cross-validated search has no incremental form."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, groups=None):
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
        self._check_search_params()
        return self._fit_impl(X, y, sample_weight, groups)

    # ---------------------------------------------------------- validation
    def _l1_ratios(self) -> np.ndarray:
        ratios = np.atleast_1d(np.asarray(self._l1_ratio_value(), dtype=np.float64))
        if ratios.ndim != 1 or ratios.size == 0:
            raise ValueError(f"l1_ratio must be a float or a 1-D list, got {ratios}.")
        if np.any((ratios < 0) | (ratios > 1)):
            raise ValueError(f"l1_ratio values must be in [0, 1], got {ratios}.")
        if ratios.size > 1 and self.penalty != "elasticnet":
            raise ValueError(
                f"A list of l1_ratio needs penalty='elasticnet' (got penalty="
                f"{self.penalty!r}, which does not read l1_ratio)."
            )
        return ratios

    def _explicit_alphas(self) -> np.ndarray | None:
        if isinstance(self.alphas, Integral):
            return None
        alphas = np.asarray(self.alphas, dtype=np.float64)
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)):
            raise ValueError(f"alphas must be a non-empty 1-D array, got {alphas}.")
        if np.any(alphas < 0):
            raise ValueError(f"alphas must be non-negative, got {alphas}.")
        return np.sort(alphas)[::-1]

    def _check_search_params(self):
        alphas = self._explicit_alphas()
        probe = 1.0 if alphas is None else float(alphas.min())
        for ratio in self._l1_ratios():
            # the base estimator's own checks, for each configuration kind
            self._base_estimator(probe, ratio)._more_validate_params()

    def _base_params(self) -> dict:
        names = self._base_class._get_param_names()
        return {n: getattr(self, n) for n in names if n not in DROPPED}

    def _no_l1(self) -> bool:
        """Whether no configuration has an L1 part."""
        return self.penalty in (None, "l2") or (
            self.penalty == "elasticnet" and not np.any(self._l1_ratios() > 0)
        )

    def _rows_kind(self, data) -> str:
        """How the rows are read: "sparse", "host" (streamed from a numpy
        array) or "direct" (a dense tensor on the device)."""
        if data.kind == "sparse":
            return "sparse"
        if data.kind == "numpy" and should_stream(
            data.X, data.device, getattr(self, "out_of_core", "auto")
        ):
            return "host"
        return "direct"

    def _on_gram(self, data) -> bool:
        """Whether training reads the folds' moments instead of the rows
        (the full-batch squared loss on dense data with few features)."""
        n, d, _ = data.shape
        return data.kind != "sparse" and prefers_gram(n, d, data.loss, self.batch_size)

    def _plan(self, data) -> _Plan:
        """How every configuration is trained, once the data is known.

        Under ``optimizer="auto"`` (without gradient descent's own
        settings), as the base estimator's default trains one: the squared
        loss on dense data with few features exactly from the folds'
        moments, as the base estimator solves it (``tol``: the relative
        duality gap, "auto" 1e-12, None the data's precision); every other
        loss by the base estimator's own fit on its split ("each": its
        solvers stop on certificates the columns do not compute). An
        explicit "lbfgs" is the base estimator's own L-BFGS fit on each
        split too (its line search decides each step; it has no column
        form). Else the columns train with the optimizer, "sgd" for "auto",
        at SGDRegressor's progress rule (``tol``; "auto" 1e-3).
        """
        tol = self.tol
        if self.optimizer == "lbfgs":
            return _Plan("each", "sgd", tol)
        if self.optimizer == "auto" and not self._base_planner().asks_for_sgd():
            if self._on_gram(data):
                gap = GAP_TOL if tol == "auto" else (1e-15 if tol is None else tol)
                return _Plan("exact", "sgd", gap)
            return _Plan("each", "sgd", tol)
        optimizer = "sgd" if self.optimizer == "auto" else self.optimizer
        return _Plan(optimizer, optimizer, 1e-3 if tol == "auto" else tol)

    def _base_planner(self):
        """The base estimator's planner, for the settings every
        configuration shares (alpha aside)."""
        return self._base_estimator(1.0, 0.0)._planner()

    def _base_estimator(self, alpha, l1_ratio, **changes):
        params = {**self._base_params(), "l1_ratio": float(l1_ratio), **changes}
        return self._base_class(alpha=float(alpha), **params)

    # ----------------------------------------------------------------- fit
    def _fit_new_state(self, X, y, sample_weight, groups):
        start = time.perf_counter()
        targets, split_labels, class_index = self._cv_targets(y)
        mode = FitMode(False, self.max_iter, self.tol, False)
        data = self._validate_data(X, targets, sample_weight, mode)
        n, d, k = data.shape
        folds = self._folds(X, split_labels, groups, n)
        splits = self._fold_weights(data, folds, split_labels, class_index)
        self._search_plan = self._plan(data)
        rows_oracle, train_oracle = self._oracles(data, splits)
        ratios = self._l1_ratios()
        moments = getattr(train_oracle, "moments", None)
        grids = self._grids(
            rows_oracle,
            data,
            ratios,
            split_labels,
            class_index,
            None if moments is None else moments.total,
        )
        units = _Units(len(folds), ratios, grids, k)
        validate = None
        if splits.validation is not None:
            validate = self._validation(rows_oracle, data, splits, class_index)
        if self._search_plan.method == "each":
            coef, intercept, status = self._fit_each(data, split_labels, units, folds)
        else:
            coef, intercept, status = self._train_units(
                train_oracle, data, units, splits, validate
            )
        held_out = _HeldOut(
            [te for _, te in folds], X, y, sample_weight, rows_oracle, moments
        )
        scores = self._scores(held_out, data, units, coef, intercept, class_index)
        scores[status == DIVERGED] = np.nan
        self._warn_on_units(status, units)
        # (n_candidates, n_splits): units are ordered split by split
        scores = scores.reshape(units.n_folds, -1).T
        self._commit_search(units, scores, ratios, grids)
        if data.space is not None:  # array API dispatch: with the input data
            self.alphas_ = data.space.put(self.alphas_)
        if self.refit:
            self._refit(X, y, sample_weight)
        self.fit_time_ = time.perf_counter() - start
        return self

    def _folds(self, X, labels, groups, n):
        cv = check_cv(self.cv, labels, classifier=is_classifier(self))
        Xs = X if isinstance(X, np.ndarray) else np.zeros((n, 1))
        folds = [
            (np.sort(np.asarray(tr)), np.sort(np.asarray(te)))
            for tr, te in cv.split(Xs, labels, groups)
        ]
        if not folds:
            raise ValueError("The cross-validation splitter gave no split.")
        return folds

    def _weights(self, data, labels, class_index) -> np.ndarray:
        """Every sample's training weight (class weights included)."""
        sw = data.sample_weight
        sw = None if sw is None else to_numpy_any(sw).astype(np.float64)
        w = self._fit_weights(sw, labels, class_index)
        return np.ones(data.shape[0]) if w is None else np.asarray(w, np.float64)

    def _fold_weights(self, data, folds, labels, class_index) -> _Splits:
        """The weights each split trains with, and, under early stopping,
        each split's validation rows: those that the base estimator's own
        split of the split's training rows holds out."""
        n = data.shape[0]
        weights = self._weights(data, labels, class_index)
        out = _Splits(np.zeros((n, len(folds))), [], weights, folds)
        if self.early_stopping:
            out.validation = []
        for f, (train, _) in enumerate(folds):
            if train.size == 0:
                raise ValueError(f"Split {f} has no training sample.")
            if out.validation is not None:
                fit, held = self._split(_take(data.Y, train), weights[train])
                out.validation.append(np.sort(train[held]))
                train = train[fit]
            out.fold_weights[train, f] = weights[train]
            out.train_rows.append(train.size)
            if not out.fold_weights[:, f].sum() > 0:
                raise ValueError(
                    f"The sample weights of split {f}'s training samples are all zero."
                )
        return out

    def _oracles(self, data, splits):
        """The row oracle (grids, scores) and the oracle training runs on."""
        X, Y = data.X, data.Y
        folds = splits.folds
        device, tdtype = data.device, data.tdtype
        piece_rows = self._piece_rows(data, len(folds))
        Yt = to_tensor(Y, device, tdtype)
        Wt = to_tensor(splits.fold_weights, device, tdtype)
        fold_rows = np.array(splits.train_rows)
        options = dict(
            fit_intercept=self.fit_intercept,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=data.generator,
            piece_rows=piece_rows,
        )
        args = (Yt, Wt, fold_rows, data.loss)
        kind = self._rows_kind(data)
        if kind == "sparse":
            rows = ColumnSparseOracle(X, *args, device=device, dtype=tdtype, **options)
        elif kind == "host":
            host = HostRows(X, device, tdtype, chunk_rows=piece_rows)
            rows = ColumnHostOracle(host, *args, **options)
        else:
            rows = ColumnDirectOracle(to_tensor(X, device, tdtype), *args, **options)
        if self._on_gram(data):
            tests = None if splits.validation is not None else [te for _, te in folds]
            moments = rows.fold_moments(targets=True, tests=tests)
            gram = ColumnGramOracle(moments, self.fit_intercept, tdtype)
            return rows, gram
        return rows, rows

    def _grids(self, oracle, data, ratios, labels, class_index, moments=None):
        explicit = self._explicit_alphas()
        if explicit is not None:
            return [explicit for _ in ratios]
        weights = self._weights(data, labels, class_index)
        weights = to_tensor(weights, data.device, torch.float64)
        return [
            alpha_grid(
                oracle,
                oracle.Y,
                weights,
                data.loss,
                l1_ratio=self._shares(ratio)[0],
                n_alphas=int(self.alphas),
                eps=self.eps,
                fit_intercept=self.fit_intercept,
                moments=moments,
            )
            for ratio in ratios
        ]

    # ----------------------------------------------------------- training
    def _budget(self, device) -> int:
        if self.memory_budget is not None:
            return int(self.memory_budget)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free // 2)
        avail = available_host_bytes()
        return int(avail // 4) if avail else 2 * 2**30

    def _unit_bytes(self, data) -> int:
        """Bytes of parameters and solver state of one unit of columns."""
        _, d, k = data.shape
        plan = self._search_plan
        copies = _PARAMETER_COPIES + _SOLVER_COPIES.get(plan.optimizer, 2)
        if self.average:
            copies += 3
        return (d + 1) * k * copies * data.dtype.itemsize

    def _units_per_group(self, data, n_units) -> int:
        budget = self._budget(data.device)
        return int(max(1, min(n_units, (budget * 3 // 4) // self._unit_bytes(data))))

    def _piece_rows(self, data, n_folds) -> int:
        """Rows per piece, so that a piece's temporaries for the largest
        group of units take at most a quarter of the budget."""
        _, _, k = data.shape
        per_group = self._units_per_group(data, self._n_units(n_folds))
        per_row = per_group * k * _PIECE_COPIES * data.dtype.itemsize
        return int(min(CHUNK_ROWS, max(64, self._budget(data.device) // 4 // per_row)))

    def _n_units(self, n_folds) -> int:
        alphas = self._explicit_alphas()
        n_alphas = int(self.alphas) if alphas is None else alphas.size
        return n_folds * self._l1_ratios().size * n_alphas

    def _validation(self, oracle, data, splits, class_index):
        """Early stopping's score of a layout's units on their splits'
        validation rows: the default score, weighted as in training (the
        base estimator's validation score)."""
        w = to_tensor(splits.weights, data.device, torch.float64)
        rows = splits.validation

        def for_layout(layout):
            def score(coef, intercept):
                return self._default_scores(
                    oracle, layout, coef, intercept, rows, data, class_index, w
                )

            return score

        return for_layout

    def _train_units(self, oracle, data, units, splits, validate=None):
        """Train every unit, in groups that fit the memory budget; returns
        the coefficients (d, n_columns), intercepts and per-unit status."""
        device, tdtype = data.device, data.tdtype
        _, d, k = data.shape
        K = units.n * k
        coef = torch.empty(d, K, dtype=tdtype, device=device)
        intercept = torch.empty(K, dtype=tdtype, device=device)
        status = np.empty(units.n, dtype=np.int64)
        plan = self._search_plan
        if plan.method == "exact":
            exact = solve_squared(
                oracle.moments.train,
                units.fold,
                *self._penalty_parts(units.alpha, units.ratio),
                k,
                fit_intercept=self.fit_intercept,
                max_iter=self.max_iter,
                gap_tol=plan.tol,
            )
            coef.copy_(torch.from_numpy(exact.coef))
            intercept.copy_(torch.from_numpy(exact.intercept))
            status[:] = np.where(exact.converged, CONVERGED, MAX_ITER)
            return coef, intercept, status
        curvature = self._fold_lipschitz(oracle, data, splits)
        group = self._units_per_group(data, units.n)
        for lo in range(0, units.n, group):
            sel = np.arange(lo, min(units.n, lo + group))
            layout = Layout(units.fold[sel], k, device)
            result = self._train_group(
                oracle,
                data,
                layout,
                units.alpha[sel],
                units.ratio[sel],
                curvature,
                None if validate is None else validate(layout),
            )
            cols = slice(lo * k, (lo + sel.size) * k)
            coef[:, cols] = result.coef
            intercept[cols] = result.intercept
            status[sel] = result.status
        return coef, intercept, status

    def _fit_each(self, data, y, units, folds):
        """Fit every unit with the base estimator on its split's training
        rows of the validated data (``y``: the targets as given, or the
        class labels), as GridSearchCV does: the configurations whose
        default solver (Smoothing for a non-smooth loss, FISTA for an L1
        part with a loss other than the squared one) has no column form.
        Returns what :meth:`_train_units` returns; a unit whose fit diverged
        is marked DIVERGED, one that warned of its convergence MAX_ITER."""
        device, tdtype = data.device, data.tdtype
        _, d, k = data.shape
        coef = torch.zeros(d, units.n * k, dtype=tdtype, device=device)
        intercept = torch.zeros(units.n * k, dtype=tdtype, device=device)
        status = np.full(units.n, CONVERGED, dtype=np.int64)
        for u in range(units.n):
            train = folds[units.fold[u]][0]
            est = self._base_estimator(units.alpha[u], units.ratio[u])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                try:
                    est.fit(
                        _take(data.X, train),
                        y[train],
                        sample_weight=_take(data.sample_weight, train),
                    )
                except DivergenceError:
                    status[u] = DIVERGED
                    continue
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                status[u] = MAX_ITER
            cols = slice(u * k, (u + 1) * k)
            coef[:, cols] = to_tensor(np.asarray(est.coef_).reshape(-1, d).T, device)
            intercept[cols] = to_tensor(np.ravel(est.intercept_), device)
        return coef, intercept, status

    def _shares(self, ratio):
        """The L1 and L2 parts' shares of alpha, for ``l1_ratio`` ``ratio``."""
        l1 = {None: 0.0, "l2": 0.0, "l1": 1.0}.get(self.penalty, ratio)
        l2 = {None: 0.0, "l2": 1.0, "l1": 0.0}.get(self.penalty, 1.0 - ratio)
        return l1, l2

    def _penalty_parts(self, alpha: np.ndarray, ratio: np.ndarray):
        """Each configuration's L1 and L2 strengths."""
        l1, l2 = self._shares(ratio)
        return alpha * l1, alpha * l2

    def _fold_lipschitz(self, oracle, data, splits):
        """Each fold's curvature bound for the batch size (None when the
        step does not come from the data)."""
        if (
            self.eta0 != "auto"
            or OPTIMIZERS[self._search_plan.optimizer].auto_eta0 is not None
        ):
            return None
        lam, max_row = oracle.fold_curvature(max_row=self.batch_size is not None)
        n_all = data.shape[0]
        n = np.array(splits.train_rows, dtype=np.float64)
        if self.batch_size is None or max_row is None:
            return lam
        # a batch of all rows holds about batch_size * n_f / n of fold f's
        b = np.minimum(self.batch_size * n / n_all, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            mixed = (lam * n * (b - 1) + max_row * (n - b)) / (b * (n - 1))
        return np.where((b >= n) | (n == 1), lam, mixed)

    def _train_group(
        self, oracle, data, layout, alpha, ratio, curvature, validate
    ):
        device, tdtype = data.device, data.tdtype
        k = layout.k

        def columns(values):
            return torch.as_tensor(np.repeat(values, k), dtype=tdtype, device=device)

        penalty = make_penalty(
            self.penalty, alpha=columns(alpha), l1_ratio=columns(ratio)
        )
        _, l2 = self._penalty_parts(alpha, ratio)
        if curvature is None:
            eta0 = np.full(layout.n_units, self._fixed_eta0())
        else:
            with np.errstate(divide="ignore"):
                lip = data.loss.curvature * curvature[layout.unit_fold_host] + l2
                eta0 = np.where(np.isfinite(lip) & (lip > 0), 1.0 / lip, 1.0)
        t0 = np.ones(layout.n_units)
        if self.learning_rate == "optimal":
            t0 = np.array([optimal_init(a, data.loss.dloss_at) for a in alpha])
        schedule = SCHEDULES[self.learning_rate](
            columns(eta0),
            power_t=self.power_t,
            alpha=columns(alpha),
            optimal_init=columns(t0),
        )
        first = schedule.rate(
            torch.ones(layout.n_columns, dtype=torch.float64, device=device)
        )
        check_rate_fits(float(torch.as_tensor(first).max()), tdtype)
        plan = self._search_plan
        solver = ScaledSolver(
            make_solver(plan.optimizer, momentum=self.momentum, nesterov=self.nesterov)
        )
        _, d, _ = data.shape
        init = torch.zeros(
            d + int(self.fit_intercept), layout.n_columns, dtype=tdtype, device=device
        )
        return train_columns(
            oracle.bind(layout),
            layout=layout,
            penalty=penalty,
            schedule=schedule,
            solver=solver,
            tol=plan.tol,
            n_iter_no_change=self.n_iter_no_change,
            max_iter=self.max_iter,
            fit_intercept=self.fit_intercept,
            average=self._base_planner().average_start(),
            init=init,
            joint=data.loss.joint,
            validation=validate,
            on_epoch=self._print_units if self.verbose else None,
        )

    def _fixed_eta0(self) -> float:
        if self.eta0 != "auto":
            return float(self.eta0)
        return float(OPTIMIZERS[self._search_plan.optimizer].auto_eta0)

    @staticmethod
    def _print_units(epoch, losses, status):
        on = status == 0
        print(
            f"-- Epoch {epoch}: {int(on.sum())} of {status.size} fits training, "
            f"objective {np.nanmin(losses):.6g} .. {np.nanmax(losses):.6g}"
        )

    def _warn_on_units(self, status, units):
        diverged = int((status == DIVERGED).sum())
        if diverged:
            warnings.warn(
                f"{diverged} of {units.n} fits (configuration x split) diverged "
                "and could not restart with a smaller step; their test scores "
                "are NaN. Scale the features or choose a smaller eta0.",
                FitFailedWarning,
            )
        late = int((status == MAX_ITER).sum())
        if late and self.tol is not None:
            warnings.warn(
                f"{late} of {units.n} fits (configuration x split) reached "
                f"max_iter={self.max_iter} before convergence "
                f"({int((status == CONVERGED).sum())} converged). Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
            )

    # ------------------------------------------------------------- scores
    def _scores(self, held_out, data, units, coef, intercept, class_index):
        """Test score of every unit: the default score from the held-out
        moments where the Gram path has them, else from the held-out rows;
        or the scorer's."""
        if self.scoring is not None:
            return self._scorer_scores(units, coef, intercept, held_out, data.y_ndim)
        layout = Layout(units.fold, units.k, data.device)
        moments = held_out.moments
        if moments is not None and moments.test is not None:
            flat = self._scores_from_moments(layout, coef, intercept, moments.test)
            if flat is not None:
                return flat
        sw = data.sample_weight
        sw = None if sw is None else to_tensor(sw, data.device, torch.float64)
        return self._default_scores(
            held_out.oracle,
            layout,
            coef,
            intercept,
            held_out.tests,
            data,
            class_index,
            sw,
        )

    def _default_scores(self, oracle, layout, coef, intercept, tests, data, ci, sw):
        Y = to_tensor(data.Y, data.device, torch.float64)
        return unit_r2(oracle, layout, coef, intercept, tests, Y, sw)

    def _scores_from_moments(self, layout, coef, intercept, test):
        """The default scores from the held-out moments, or None."""
        return unit_r2_from_moments(layout, coef, intercept, test)

    def _scorer_scores(self, units, coef, intercept, held_out, y_ndim):
        scorer = check_scoring(self._base_estimator(1.0, 0.0), scoring=self.scoring)
        coef, intercept = to_numpy(coef), to_numpy(intercept)
        X, y, sw = held_out.X, held_out.y, held_out.sample_weight
        k = units.k
        out = np.empty(units.n)
        for f, test in enumerate(held_out.tests):
            X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
            kwargs = {} if sw is None else {"sample_weight": _safe_indexing(sw, test)}
            for u in np.flatnonzero(units.fold == f):
                cols = slice(u * k, (u + 1) * k)
                est = self._unit_estimator(
                    units.alpha[u],
                    units.ratio[u],
                    coef[:, cols],
                    intercept[cols],
                    y_ndim,
                )
                out[u] = scorer(est, X_test, y_test, **kwargs)
        return out

    def _unit_estimator(self, alpha, ratio, coef, intercept, y_ndim):
        """The base estimator holding one unit's parameters (predicting on
        the data's device: predictions do not depend on it)."""
        est = self._base_estimator(alpha, ratio, device=None)
        est.coef_, est.intercept_ = self._shape_params(coef, intercept, y_ndim)
        for name in ("n_features_in_", "feature_names_in_", "classes_"):
            if hasattr(self, name):
                setattr(est, name, getattr(self, name))
        return est

    # ------------------------------------------------------------- commit
    def _commit_search(self, units, scores, ratios, grids):
        candidates = [
            {"alpha": float(a), "l1_ratio": float(r)}
            for r, grid in zip(ratios, grids)
            for a in grid
        ]
        results = search_results(candidates, scores)
        best = int(np.argmin(results["rank_test_score"]))
        self.cv_results_ = results
        self.best_index_ = best
        self.best_score_ = float(results["mean_test_score"][best])
        self.alpha_ = candidates[best]["alpha"]
        self.l1_ratio_ = candidates[best]["l1_ratio"]
        alphas = np.array(grids)
        self.alphas_ = alphas[0] if np.ndim(self.l1_ratio) == 0 else alphas
        self.n_splits_ = units.n_folds

    def _refit(self, X, y, sample_weight):
        best = self._base_estimator(self.alpha_, self.l1_ratio_)
        best.fit(X, y, sample_weight=sample_weight)
        for name, value in vars(best).items():
            if name.endswith("_") and not name.startswith("__"):
                setattr(self, name, value)
        self._solver_state = best._solver_state

    def _decision(self, X, method="predict"):
        if "coef_" not in vars(self) and hasattr(self, "alpha_"):
            raise NotFittedError(
                f"This {type(self).__name__} was fitted with refit=False: it "
                f"searched the grid but has no model to {method} with. Fit the "
                "base estimator with alpha=alpha_ and l1_ratio=l1_ratio_."
            )
        return super()._decision(X, method)


@dataclass
class _Plan:
    """How the search trains (see :meth:`CrossValidatedSearch._plan`):
    ``method`` ("exact" on the folds' moments, "each" by the base
    estimator's fits, or the column loop's optimizer), the column loop's
    ``optimizer`` (for its memory and step) and the rule's ``tol``."""

    method: str
    optimizer: str
    tol: float | None


@dataclass
class _HeldOut:
    """What the test scores are computed from: each split's held-out rows,
    the data as given to ``fit`` (for a scorer), the row oracle, and the
    folds' moments (None off the Gram path)."""

    tests: list
    X: object
    y: object
    sample_weight: object
    oracle: object
    moments: object


@dataclass
class _Splits:
    """What each split trains on: the (n_samples, n_splits) fold weights,
    its number of training rows, the samples' training weights, the
    (train, test) index pairs, and its validation rows (early stopping)."""

    fold_weights: np.ndarray
    train_rows: list
    weights: np.ndarray
    folds: list
    validation: list | None = None


def _take(a, rows):
    """Rows of a numpy array, a scipy.sparse matrix or a tensor (None stays
    None)."""
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(rows, device=a.device)]
    return a[rows]


class _Units:
    """The configurations x folds, in the order of the parameter matrix:
    fold by fold, then l1_ratio, then alpha; ``k`` columns each."""

    def __init__(self, n_folds, ratios, grids, k):
        per_fold = [(r, a) for r, grid in zip(ratios, grids) for a in grid]
        self.n_folds = n_folds
        self.k = k
        self.n = n_folds * len(per_fold)
        self.fold = np.repeat(np.arange(n_folds), len(per_fold))
        self.ratio = np.tile([r for r, _ in per_fold], n_folds)
        self.alpha = np.tile([a for _, a in per_fold], n_folds)
