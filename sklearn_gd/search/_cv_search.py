"""The cross-validated search of one fit of a CV estimator, as a component.

A CV estimator's ``fit`` validates the data, builds a
:class:`CrossValidatedSearch` from its parameters and what it lends the
search (its base estimator at a configuration, its planner, its split of a
training set, its public shapes) and commits what :meth:`~CrossValidatedSearch.run`
returns. The search splits the data (:mod:`sklearn_gd.search._cv_splits`),
builds the oracles (:mod:`sklearn_gd.objective._cv_oracles`) and the alpha
grids (:mod:`sklearn_gd.search._cv_grid`), trains every (split, l1_ratio,
alpha) unit (from the folds' moments or as columns,
:mod:`sklearn_gd.search._cv_columns`, or by the base estimator's own fit on
each split), scores them (:mod:`sklearn_gd.search._cv_scores`), and gives
GridSearchCV's ``cv_results_``, the choice and the refit's fitted state.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.metrics import check_scoring

from ..data._array_api import to_numpy_any
from ..data._data import to_tensor
from ..engine._iterate import DivergenceError
from ..engine._records import CONVERGED, DIVERGED, MAX_ITER
from ..objective._cv_gram import ColumnGramOracle
from ..objective._cv_oracles import (
    ColumnDirectOracle,
    ColumnHostOracle,
    ColumnSparseOracle,
)
from ..objective._oracles import prefers_gram
from ..objective._streaming import HostRows, should_stream
from ..solvers._exact import GAP_TOL
from ._cv_columns import ColumnTraining
from ._cv_grid import alpha_grid, explicit_alphas, l1_ratios, penalty_shares
from ._cv_scores import (
    default_scores,
    held_out_scores,
    scorer_scores,
    search_results,
)
from ._cv_splits import HeldOut, fold_weights, make_folds, take

__all__ = ["DROPPED", "CrossValidatedSearch"]

# base parameters that the cross-validation estimators do not take
DROPPED = ("alpha", "warm_start")


class CrossValidatedSearch:
    """One search over folds x l1_ratios x alphas.

    Parameters
    ----------
    params : dict
        The CV estimator's parameters (``get_params(deep=False)``), with
        ``l1_ratio``'s value (None stands for 0).
    base_estimator : callable
        ``base_estimator(alpha, l1_ratio, **changes)``: the base estimator
        at one configuration, every other parameter the CV estimator's.
    planner : Planner
        The base estimator's planner for the settings every configuration
        shares.
    split : callable
        ``split(Y, sample_weight)``: the base estimator's split of a
        training set into its training and validation rows (early
        stopping).
    shape_params : callable
        ``shape_params(coef, intercept, y_ndim)``: parameters in the public
        ``coef_`` and ``intercept_`` shapes.
    fitted : dict
        The CV estimator's fitted attributes that a configuration's
        estimator takes too (``n_features_in_``, ``classes_``, ...).
    """

    def __init__(
        self, params: dict, *, base_estimator, planner, split, shape_params, fitted
    ):
        self.params = SimpleNamespace(**params)
        self.base_estimator = base_estimator
        self.planner = planner
        self.split = split
        self.shape_params = shape_params
        self.fitted = fitted
        self.classes = fitted.get("classes_")
        self.alphas = explicit_alphas(self.params.alphas)
        self.ratios = l1_ratios(self.params.l1_ratio, self.params.penalty)

    # ---------------------------------------------------------------- plan
    def plan(self, data) -> _Plan:
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
        p = self.params
        tol = p.tol
        if p.optimizer == "lbfgs":
            return _Plan("each", "sgd", tol)
        if p.optimizer == "auto" and not self.planner.asks_for_sgd():
            if self.on_gram(data):
                gap = GAP_TOL if tol == "auto" else (1e-15 if tol is None else tol)
                return _Plan("exact", "sgd", gap)
            return _Plan("each", "sgd", tol)
        optimizer = "sgd" if p.optimizer == "auto" else p.optimizer
        return _Plan(optimizer, optimizer, 1e-3 if tol == "auto" else tol)

    def rows_kind(self, data) -> str:
        """How the rows are read: "sparse", "host" (streamed from a numpy
        array) or "direct" (a dense tensor on the device)."""
        if data.kind == "sparse":
            return "sparse"
        out_of_core = getattr(self.params, "out_of_core", "auto")
        if data.kind == "numpy" and should_stream(data.X, data.device, out_of_core):
            return "host"
        return "direct"

    def on_gram(self, data) -> bool:
        """Whether training reads the folds' moments instead of the rows
        (the full-batch squared loss on dense data with few features)."""
        n, d, _ = data.shape
        batch_size = self.params.batch_size
        return data.kind != "sparse" and prefers_gram(n, d, data.loss, batch_size)

    def n_units(self, n_folds) -> int:
        n_alphas = int(self.params.alphas) if self.alphas is None else self.alphas.size
        return n_folds * self.ratios.size * n_alphas

    # ----------------------------------------------------------------- run
    def run(self, data, X, y, sample_weight, groups, labels, class_index, fit_weights):
        """Search on the validated ``data`` (``X``, ``y``, ``sample_weight``:
        as given to ``fit``; ``labels``: the labels to split on, the class
        labels of a classifier; ``class_index``: a classifier's class
        index of each sample, else None; ``fit_weights(sample_weight)``:
        the samples' training weights, None for all ones). Returns the
        fitted attributes to commit, in order: the search's, then the
        refit's."""
        p = self.params
        n, d, k = data.shape
        folds = make_folds(p.cv, X, labels, groups, n, self.classes)
        weights = training_weights(data, fit_weights)
        split = self.split if p.early_stopping else None
        splits = fold_weights(folds, weights, data.Y, split)
        plan = self.plan(data)
        training = ColumnTraining(p, plan, self.planner.average_start())
        piece_rows = training.piece_rows(data, self.n_units(len(folds)))
        rows_oracle, train_oracle = self.oracles(data, splits, piece_rows)
        moments = getattr(train_oracle, "moments", None)
        total = None if moments is None else moments.total
        grids = self.grids(rows_oracle, data, weights, total)
        units = Units(len(folds), self.ratios, grids, k)
        if plan.method == "each":
            coef, intercept, status = self.fit_each(data, labels, units, folds)
        else:
            validate = None
            if splits.validation is not None:
                validate = self.validation(rows_oracle, data, splits, class_index)
            coef, intercept, status = training.train(
                train_oracle, data, units, splits, validate
            )
        tests = [te for _, te in folds]
        held_out = HeldOut(tests, X, y, sample_weight, rows_oracle, moments)
        scores = self.scores(held_out, data, units, coef, intercept, class_index)
        scores[status == DIVERGED] = np.nan
        self.warn_on_units(status, units)
        # (n_candidates, n_splits): units are ordered split by split
        scores = scores.reshape(units.n_folds, -1).T
        attributes = self.results(units, scores, grids)
        if data.space is not None:  # array API dispatch: with the input data
            attributes["alphas_"] = data.space.put(attributes["alphas_"])
        if p.refit:
            alpha, ratio = attributes["alpha_"], attributes["l1_ratio_"]
            attributes.update(self.refit(alpha, ratio, X, y, sample_weight))
        return attributes

    def oracles(self, data, splits, piece_rows):
        """The row oracle (grids, scores) and the oracle training runs on."""
        X, Y = data.X, data.Y
        folds = splits.folds
        device, tdtype = data.device, data.tdtype
        Yt = to_tensor(Y, device, tdtype)
        Wt = to_tensor(splits.fold_weights, device, tdtype)
        fold_rows = np.array(splits.train_rows)
        fit_intercept = self.params.fit_intercept
        options = dict(
            fit_intercept=fit_intercept,
            batch_size=self.params.batch_size,
            shuffle=self.params.shuffle,
            generator=data.generator,
            piece_rows=piece_rows,
        )
        args = (Yt, Wt, fold_rows, data.loss)
        kind = self.rows_kind(data)
        if kind == "sparse":
            rows = ColumnSparseOracle(X, *args, device=device, dtype=tdtype, **options)
        elif kind == "host":
            host = HostRows(X, device, tdtype, chunk_rows=piece_rows)
            rows = ColumnHostOracle(host, *args, **options)
        else:
            rows = ColumnDirectOracle(to_tensor(X, device, tdtype), *args, **options)
        if self.on_gram(data):
            tests = None if splits.validation is not None else [te for _, te in folds]
            moments = rows.fold_moments(targets=True, tests=tests)
            gram = ColumnGramOracle(moments, fit_intercept, tdtype)
            return rows, gram
        return rows, rows

    def grids(self, oracle, data, weights, moments=None):
        if self.alphas is not None:
            return [self.alphas for _ in self.ratios]
        weights = to_tensor(weights, data.device, torch.float64)
        return [
            alpha_grid(
                oracle,
                oracle.Y,
                weights,
                data.loss,
                l1_ratio=penalty_shares(self.params.penalty, ratio)[0],
                n_alphas=int(self.params.alphas),
                eps=self.params.eps,
                fit_intercept=self.params.fit_intercept,
                moments=moments,
            )
            for ratio in self.ratios
        ]

    # ------------------------------------------------------------ training
    def validation(self, oracle, data, splits, class_index):
        """Early stopping's score of a layout's units on their splits'
        validation rows: the default score, weighted as in training (the
        base estimator's validation score)."""
        w = to_tensor(splits.weights, data.device, torch.float64)
        rows = splits.validation

        def for_layout(layout):
            def score(coef, intercept):
                return default_scores(
                    oracle, layout, coef, intercept, rows, data, class_index, w
                )

            return SimpleNamespace(score=score)  # what the engine's loop reads

        return for_layout

    def fit_each(self, data, y, units, folds):
        """Fit every unit with the base estimator on its split's training
        rows of the validated data (``y``: the targets as given, or the
        class labels), as GridSearchCV does: the configurations whose
        default solver (Smoothing for a non-smooth loss, FISTA for an L1
        part with a loss other than the squared one) has no column form,
        and L-BFGS. Returns what
        :meth:`~sklearn_gd.search._cv_columns.ColumnTraining.train` returns;
        a unit whose fit diverged is marked DIVERGED, one that warned of
        its convergence MAX_ITER."""
        device, tdtype = data.device, data.tdtype
        _, d, k = data.shape
        coef = torch.zeros(d, units.n * k, dtype=tdtype, device=device)
        intercept = torch.zeros(units.n * k, dtype=tdtype, device=device)
        status = np.full(units.n, CONVERGED, dtype=np.int64)
        for u in range(units.n):
            train = folds[units.fold[u]][0]
            est = self.base_estimator(units.alpha[u], units.ratio[u])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                try:
                    est.fit(
                        take(data.X, train),
                        y[train],
                        sample_weight=take(data.sample_weight, train),
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

    def warn_on_units(self, status, units):
        diverged = int((status == DIVERGED).sum())
        if diverged:
            warnings.warn(
                f"{diverged} of {units.n} fits (configuration x split) diverged "
                "and could not restart with a smaller step; their test scores "
                "are NaN. Scale the features or choose a smaller eta0.",
                FitFailedWarning,
            )
        late = int((status == MAX_ITER).sum())
        if late and self.params.tol is not None:
            warnings.warn(
                f"{late} of {units.n} fits (configuration x split) reached "
                f"max_iter={self.params.max_iter} before convergence "
                f"({int((status == CONVERGED).sum())} converged). Consider "
                "increasing max_iter to improve the fit.",
                ConvergenceWarning,
            )

    # ------------------------------------------------------------- scores
    def scores(self, held_out, data, units, coef, intercept, class_index):
        """Test score of every unit: the estimator's own score, or the
        scorer's."""
        if self.params.scoring is None:
            return held_out_scores(held_out, data, units, coef, intercept, class_index)
        scorer = check_scoring(
            self.base_estimator(1.0, 0.0), scoring=self.params.scoring
        )

        def unit_estimator(u, coef, intercept):
            return self.unit_estimator(
                units.alpha[u], units.ratio[u], coef, intercept, data.y_ndim
            )

        return scorer_scores(scorer, units, coef, intercept, held_out, unit_estimator)

    def unit_estimator(self, alpha, ratio, coef, intercept, y_ndim):
        """The base estimator holding one unit's parameters (predicting on
        the data's device: predictions do not depend on it)."""
        est = self.base_estimator(alpha, ratio, device=None)
        est.coef_, est.intercept_ = self.shape_params(coef, intercept, y_ndim)
        for name, value in self.fitted.items():
            setattr(est, name, value)
        return est

    # ------------------------------------------------------------- results
    def results(self, units, scores, grids) -> dict:
        """The search's fitted attributes: ``cv_results_``, the choice and
        the grids."""
        candidates = [
            {"alpha": float(a), "l1_ratio": float(r)}
            for r, grid in zip(self.ratios, grids)
            for a in grid
        ]
        results = search_results(candidates, scores)
        best = int(np.argmin(results["rank_test_score"]))
        alphas = np.array(grids)
        return {
            "cv_results_": results,
            "best_index_": best,
            "best_score_": float(results["mean_test_score"][best]),
            "alpha_": candidates[best]["alpha"],
            "l1_ratio_": candidates[best]["l1_ratio"],
            "alphas_": alphas[0] if np.ndim(self.params.l1_ratio) == 0 else alphas,
            "n_splits_": units.n_folds,
        }

    def refit(self, alpha, l1_ratio, X, y, sample_weight) -> dict:
        """The base estimator's fit of the chosen configuration on all the
        data: its fitted state (its fitted attributes and the solver state
        that prediction and pickling read), as ``vars`` holds it."""
        best = self.base_estimator(alpha, l1_ratio)
        best.fit(X, y, sample_weight=sample_weight)
        state = vars(best)
        fitted = {
            name: value
            for name, value in state.items()
            if name.endswith("_") and not name.startswith("__")
        }
        fitted["_solver_state"] = state["_solver_state"]
        return fitted


def training_weights(data, fit_weights) -> np.ndarray:
    """Every sample's training weight (class weights included)."""
    sw = data.sample_weight
    sw = None if sw is None else to_numpy_any(sw).astype(np.float64)
    w = fit_weights(sw)
    return np.ones(data.shape[0]) if w is None else np.asarray(w, np.float64)


@dataclass
class _Plan:
    """How the search trains (see :meth:`CrossValidatedSearch.plan`):
    ``method`` ("exact" on the folds' moments, "each" by the base
    estimator's fits, or the column loop's optimizer), the column loop's
    ``optimizer`` (for its memory and step) and the rule's ``tol``.
    (Release 0.1.0's pickles of the CV estimators hold one.)"""

    method: str
    optimizer: str
    tol: float | None


class Units:
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
