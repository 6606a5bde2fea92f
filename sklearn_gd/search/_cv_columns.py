"""The configurations trained together, as the columns of one parameter matrix.

:class:`ColumnTraining` trains every unit (configuration x split) either
from the folds' moments by the squared loss's exact path, or by gradient
descent's settings through :func:`~sklearn_gd.engine._engine.train`, a
group of units at a time, each group a batch of problems that fits the
memory budget: it sizes the groups and the pieces of rows the oracles read,
and gives each unit its penalty, step size and schedule.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data._data import CHUNK_ROWS
from ..engine._engine import train
from ..engine._records import CONVERGED, MAX_ITER, TrainState
from ..engine._stopping import NoImprovement
from ..model._penalties import make_penalty
from ..model._schedules import SCHEDULES, optimal_init
from ..objective._cv_oracles import Layout
from ..objective._streaming import available_host_bytes
from ..solvers._exact import solve_squared
from ..solvers._optimizers import OPTIMIZERS, make_solver
from ..solvers._scaled import ScaledSolver
from ._cv_grid import penalty_shares

__all__ = ["ColumnTraining"]

# copies of a column of parameters that training keeps, beyond the solver's
# state: the parameters, their gradient, the step's starting point and two
# checkpoints
_PARAMETER_COPIES = 5
# the solver's own copies
_SOLVER_COPIES = {"sgd": 1, "adam": 2, "adamw": 2, "adagrad": 1}
# (rows x columns) temporaries of a piece of rows: predictions, losses,
# derivatives and their weighted copy, the gathered fold weights
_PIECE_COPIES = 5


class ColumnTraining:
    """How the columns train: ``params``, the search's parameters;
    ``plan``, the search's plan (its method, optimizer and tol);
    ``average``, the update the running average starts at (0: none)."""

    def __init__(self, params, plan, average: int):
        self.params = params
        self.plan = plan
        self.average = average

    # -------------------------------------------------------------- memory
    def budget(self, device) -> int:
        if self.params.memory_budget is not None:
            return int(self.params.memory_budget)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free // 2)
        avail = available_host_bytes()
        return int(avail // 4) if avail else 2 * 2**30

    def unit_bytes(self, data) -> int:
        """Bytes of parameters and solver state of one unit of columns."""
        _, d, k = data.shape
        copies = _PARAMETER_COPIES + _SOLVER_COPIES.get(self.plan.optimizer, 2)
        if self.params.average:
            copies += 3
        return (d + 1) * k * copies * data.dtype.itemsize

    def units_per_group(self, data, n_units) -> int:
        budget = self.budget(data.device)
        return int(max(1, min(n_units, (budget * 3 // 4) // self.unit_bytes(data))))

    def piece_rows(self, data, n_units) -> int:
        """Rows per piece, so that a piece's temporaries for the largest
        group of ``n_units`` units take at most a quarter of the budget."""
        _, _, k = data.shape
        per_group = self.units_per_group(data, n_units)
        per_row = per_group * k * _PIECE_COPIES * data.dtype.itemsize
        return int(min(CHUNK_ROWS, max(64, self.budget(data.device) // 4 // per_row)))

    # ------------------------------------------------------------ training
    def train(self, oracle, data, units, splits, validate=None):
        """Train every unit, in groups that fit the memory budget; returns
        the coefficients (d, n_columns), intercepts and per-unit status."""
        device, tdtype = data.device, data.tdtype
        _, d, k = data.shape
        K = units.n * k
        coef = torch.empty(d, K, dtype=tdtype, device=device)
        intercept = torch.empty(K, dtype=tdtype, device=device)
        status = np.empty(units.n, dtype=np.int64)
        if self.plan.method == "exact":
            exact = solve_squared(
                oracle.moments.train,
                units.fold,
                *self.penalty_parts(units.alpha, units.ratio),
                k,
                fit_intercept=self.params.fit_intercept,
                max_iter=self.params.max_iter,
                gap_tol=self.plan.tol,
            )
            coef.copy_(torch.from_numpy(exact.coef))
            intercept.copy_(torch.from_numpy(exact.intercept))
            status[:] = np.where(exact.converged, CONVERGED, MAX_ITER)
            return coef, intercept, status
        curvature = self.fold_lipschitz(oracle, data, splits)
        group = self.units_per_group(data, units.n)
        for lo in range(0, units.n, group):
            sel = np.arange(lo, min(units.n, lo + group))
            layout = Layout(units.fold[sel], k, device)
            result = self.train_group(
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

    def penalty_parts(self, alpha: np.ndarray, ratio: np.ndarray):
        """Each configuration's L1 and L2 strengths."""
        l1, l2 = penalty_shares(self.params.penalty, ratio)
        return alpha * l1, alpha * l2

    def fold_lipschitz(self, oracle, data, splits):
        """Each fold's curvature bound for the batch size (None when the
        step does not come from the data)."""
        batch_size = self.params.batch_size
        if (
            self.params.eta0 != "auto"
            or OPTIMIZERS[self.plan.optimizer].auto_eta0 is not None
        ):
            return None
        lam, max_row = oracle.fold_curvature(max_row=batch_size is not None)
        n_all = data.shape[0]
        n = np.array(splits.train_rows, dtype=np.float64)
        if batch_size is None or max_row is None:
            return lam
        # a batch of all rows holds about batch_size * n_f / n of fold f's
        b = np.minimum(batch_size * n / n_all, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            mixed = (lam * n * (b - 1) + max_row * (n - b)) / (b * (n - 1))
        return np.where((b >= n) | (n == 1), lam, mixed)

    def schedule(self, data, layout, alpha, ratio, curvature, columns):
        """The schedule of a group's columns: each unit's step from its
        fold's curvature and its L2 strength (or the fixed ``eta0``)."""
        p = self.params
        _, l2 = self.penalty_parts(alpha, ratio)
        if curvature is None:
            eta0 = np.full(layout.n_units, self.fixed_eta0())
        else:
            with np.errstate(divide="ignore"):
                lip = data.loss.curvature * curvature[layout.unit_fold_host] + l2
                eta0 = np.where(np.isfinite(lip) & (lip > 0), 1.0 / lip, 1.0)
        t0 = np.ones(layout.n_units)
        if p.learning_rate == "optimal":
            t0 = np.array([optimal_init(a, data.loss.dloss_at) for a in alpha])
        return SCHEDULES[p.learning_rate](
            columns(eta0),
            power_t=p.power_t,
            alpha=columns(alpha),
            optimal_init=columns(t0),
        )

    def train_group(self, oracle, data, layout, alpha, ratio, curvature, validate):
        device, tdtype = data.device, data.tdtype
        p = self.params

        def columns(values):
            return torch.as_tensor(
                np.repeat(values, layout.k), dtype=tdtype, device=device
            )

        penalty = make_penalty(p.penalty, alpha=columns(alpha), l1_ratio=columns(ratio))
        schedule = self.schedule(data, layout, alpha, ratio, curvature, columns)
        optimizer = self.plan.optimizer
        solver = ScaledSolver(
            make_solver(optimizer, momentum=p.momentum, nesterov=p.nesterov)
        )
        _, d, _ = data.shape
        C = layout.n_columns
        zeros = torch.zeros(d + 1, C, dtype=tdtype, device=device)
        init = TrainState(
            coef=zeros[:d],
            intercept=zeros[d],
            t=torch.ones(C, dtype=torch.float64, device=device),
        )
        return train(
            oracle.bind(layout),
            penalty=penalty,
            schedule=schedule,
            solver=solver,
            stopping=NoImprovement(self.plan.tol, p.n_iter_no_change),
            max_iter=p.max_iter,
            fit_intercept=p.fit_intercept,
            average=self.average,
            init=init,
            validation=validate,
            on_epoch=self.print_units if p.verbose else None,
            joint_outputs=data.loss.joint,
            layout=layout,
        )

    def fixed_eta0(self) -> float:
        if self.params.eta0 != "auto":
            return float(self.params.eta0)
        return float(OPTIMIZERS[self.plan.optimizer].auto_eta0)

    @staticmethod
    def print_units(info):
        """The verbose line of an epoch of a group of units (an EpochInfo)."""
        status, losses = info.status, info.loss
        print(
            f"-- Epoch {info.epoch}: {int((status == 0).sum())} of {status.size} "
            f"fits training, objective {np.nanmin(losses):.6g} .. "
            f"{np.nanmax(losses):.6g}"
        )
