"""The one cost model: from the settings and the data to a solver, a
stopping rule and a step size.

:class:`Planner` holds the settings a plan reads (the estimator's
parameters, its loss and penalty) and answers, once the data term is built,
which solver ``optimizer`` stands for, when training stops, where the
learning rate starts and how the running average and the intercept's step
are taken. A single fit and the cross-validated search plan through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ..engine._stopping import MeasuredProgress, NoImprovement, Optimality
from ..model._schedules import make_schedule
from ..objective._protocol import lipschitz_estimate, solution_scale
from ..solvers._conjugate_gradient import ConjugateGradient
from ..solvers._exact import CoordinateDescent
from ..solvers._metric import GradientMapping
from ..solvers._newton import Newton
from ..solvers._optimizers import OPTIMIZERS, make_solver
from ..solvers._preconditioned import AUTO_TOL
from ..solvers._proximal import AcceleratedProximal
from ..solvers._proximal_newton import ProximalNewton
from ..solvers._quasi_newton import QuasiNewton
from ..solvers._smoothing import Smoothing
from ..solvers._solver import Solver

__all__ = ["Planner", "SMOOTHED_LOSSES"]

# Newton's method where a Hessian costs at most this many multiply-adds (a
# few milliseconds): its ten or so steps beat L-BFGS's tens where the fit's
# fixed costs dominate; beyond, L-BFGS's cheaper steps win (measured on
# make_classification: at 2e3 x 100 and above L-BFGS is as fast or faster,
# at 5e4 x 400 five times faster)
NEWTON_MAX_WORK = 2e7
# proximal Newton where a softmax's joint Hessian costs at most this many: its
# few steps (5 on make_classification 4 classes x 30 features) against
# FISTA's hundreds, each Hessian one matrix product (float64, one thread:
# 5000 rows, 7.7e7 a Hessian, 61 ms against FISTA's 470; 20000 rows, 3.1e8,
# 158 ms against 3.8 s; 5000 x 60 features x 5 classes, 4.7e8, 302 ms
# against 1.1 s)
PROX_NEWTON_MAX_WORK = 1e9
# non-smooth losses that optimizer="auto" smooths (see solvers._smoothing.Smoothing)
SMOOTHED_LOSSES = frozenset(
    {"epsilon_insensitive", "absolute_error", "quantile", "hinge"}
)


@dataclass(frozen=True)
class Planner:
    """The settings a plan reads, and the plan's decisions.

    ``loss`` and ``penalty`` are the model's components once the data is
    known (None before: the choices that need them are made on the data),
    ``loss_name`` the loss's name and ``smooth`` whether it is smooth (both
    known from the parameters alone); the rest are the estimator's
    parameters of the same names.
    """

    loss_name: str
    smooth: bool
    loss: object
    penalty: object
    optimizer: str
    tol: float | str | None
    n_iter_no_change: int
    batch_size: int | None
    eta0: float | str
    learning_rate: str
    power_t: float
    alpha: float
    momentum: float
    nesterov: bool
    average: bool | int
    early_stopping: bool
    fit_intercept: bool

    @classmethod
    def of(
        cls, estimator, *, smooth: bool, loss, penalty, alpha: float | None = None
    ) -> Planner:
        """The plan's settings: ``estimator``'s parameters of the fields'
        names (``loss_name``: its ``loss``), with ``loss`` and ``penalty``
        (None before the data is known), whether the loss is ``smooth``, and
        ``alpha`` where given (a search's configuration) instead of the
        estimator's."""
        given = dict(smooth=smooth, loss=loss, penalty=penalty)
        if alpha is not None:
            given["alpha"] = alpha
        params = {
            f.name: getattr(estimator, f.name)
            for f in fields(cls)
            if f.name not in given and f.name != "loss_name"
        }
        return cls(loss_name=estimator.loss, **given, **params)

    # ------------------------------------------------------------ solver
    def asks_for_sgd(self) -> bool:
        """Whether the settings are gradient descent's: minibatches, or any
        of its own parameters (a step, a schedule, momentum, averaging,
        early stopping) away from its default."""
        return (
            self.batch_size is not None
            or self.eta0 != "auto"
            or self.learning_rate != "adaptive"
            or self.momentum != 0
            or bool(self.average)
            or self.early_stopping
        )

    def solver_class(self, partial: bool = False) -> type[Solver]:
        """The solver class ``optimizer`` stands for.

        ``"auto"`` on the full batch: for a smooth loss with no L1 part,
        Newton on dense data with few features (on a quadratic, the direct
        solve of the normal equations), conjugate gradients on a larger
        quadratic, else preconditioned L-BFGS (the choice needs the data:
        :meth:`second_order`); accelerated proximal gradient for a smooth
        loss with an L1 part (coordinate descent on the squared loss's
        moments); either on a shrinking smoothing of a non-smooth loss
        (hinge, epsilon_insensitive, absolute_error, quantile). Gradient
        descent ("sgd") with scikit-learn's schedules on minibatches, in
        ``partial_fit`` and for the perceptron.
        """
        if self.optimizer != "auto":
            return OPTIMIZERS[self.optimizer]
        if partial or self.asks_for_sgd():  # partial_fit: online SGD
            return OPTIMIZERS["sgd"]
        if self.smooth:
            return self.full_batch_class()
        # the perceptron's objective is minimised by the all-zero model:
        # it keeps SGDClassifier's path, of which it is the update rule
        return Smoothing if self.loss_name in SMOOTHED_LOSSES else OPTIMIZERS["sgd"]

    def full_batch_class(self) -> type[Solver]:
        """The full-batch solver of "auto": FISTA when the penalty has an
        L1 part, else L-BFGS (on a smoothing of a non-smooth loss, the inner
        solver of :class:`Smoothing`)."""
        return AcceleratedProximal if self.penalty.has_prox else QuasiNewton

    @staticmethod
    def second_order(cls, oracle, *, smoothed: bool) -> type[Solver]:
        """The second-order solver of "auto" for this data term: with an L1
        part, :class:`ProximalNewton` for a softmax on float64 data whose
        joint Hessian costs at most ``PROX_NEWTON_MAX_WORK`` (not on a
        smoothing), else FISTA; on a quadratic,
        :class:`Newton` where the Gram matrix is small (its step is the
        normal equations' direct solve, exact), conjugate gradients beyond;
        :class:`Newton` where the data term offers Hessians (dense data,
        few features) and the loss has one, if a Hessian costs at most
        ``NEWTON_MAX_WORK`` multiply-adds, or for a smoothing of a
        non-smooth loss (whose curvature changes too abruptly for L-BFGS's
        estimate of it); else L-BFGS."""

        def affordable(limit: float = NEWTON_MAX_WORK) -> bool:
            return (
                oracle.supports_hessian
                and oracle.loss.has_hessian
                and oracle.hessian_work <= limit
            )

        if cls is AcceleratedProximal:
            # a softmax with an L1 part: Newton's model, solved with the L1
            # part, takes tens of steps where FISTA took a thousand and
            # stopped silently at gaps of 4e-3 to 2e-2 (the joint loss is
            # nearly flat along the classes' shared directions). The
            # one-output losses stay on FISTA, which reaches their optimum
            # (huber + L1, sweep seed 354: FISTA 6e-11 in 32 steps, proximal
            # Newton 3e-7 after 1000 on its generalised Hessian). On float64
            # data only: in float32 the model's signs follow the gradient's
            # rounding, and the stop on rounding that follows has no
            # certificate as tight as the fit (seeds 250, 891: fits within
            # 5e-9 of the optimum warned at certified gaps of 1e-2)
            if (
                not smoothed
                and oracle.loss.joint
                and oracle.X.dtype == torch.float64
                and affordable(PROX_NEWTON_MAX_WORK)
            ):
                return ProximalNewton
            return cls
        if cls is not QuasiNewton:
            return cls
        if not smoothed and oracle.quadratic:
            # Newton's step is the direct solve: exact, and cheaper than the
            # iterations of conjugate gradients where the system is small
            return Newton if oracle.supports_hessian else ConjugateGradient
        if (oracle.supports_hessian and smoothed) or affordable():
            return Newton
        return cls

    def make_solver(self, oracle, partial: bool = False) -> Solver:
        """The solver for this data term."""
        cls = self.solver_class(partial)
        if cls is Smoothing:
            inner = self.second_order(self.full_batch_class(), oracle, smoothed=True)
            return Smoothing(inner=inner(), target=self.tol_for(cls))
        if cls.measures_optimality:
            if self.optimizer == "auto":
                if cls is AcceleratedProximal and CoordinateDescent.serves(
                    oracle, self.penalty
                ):
                    # the squared loss with an L1 part on its moments: the
                    # search's coordinate descent, to the same certificate
                    return CoordinateDescent()
                cls = self.second_order(cls, oracle, smoothed=False)
            return cls(curvature=self.loss.curvature)
        return make_solver(
            self.optimizer if self.optimizer != "auto" else "sgd",
            momentum=self.momentum,
            nesterov=self.nesterov,
        )

    # ---------------------------------------------------------- stopping
    def stopping(self, tol, partial: bool = False):
        """The stopping rule: the optimality criterion for the solvers that
        measure it (``tol="auto"``: the solver's ``auto_tol``); with
        ``tol="auto"``, the same criterion measured after each epoch of the
        others, on a smooth loss and without early stopping; else
        scikit-learn's SGD rule (``tol="auto"``: SGDRegressor's 1e-3)."""
        cls = self.solver_class(partial)
        if cls.measures_optimality:
            return Optimality(tol)
        loss = self.loss
        measurable = loss.smooth and not self.early_stopping and not partial
        if tol == "auto" and measurable:
            return MeasuredProgress(
                AUTO_TOL, self.n_iter_no_change, GradientMapping(loss.curvature)
            )
        return NoImprovement(1e-3 if tol == "auto" else tol, self.n_iter_no_change)

    def tol_for(self, cls) -> float | None:
        """``tol``, with "auto" resolved for the solver ``cls``."""
        return cls.auto_tol if self.tol == "auto" else self.tol

    # --------------------------------------------------------------- steps
    def intercept_decay(self, kind: str) -> float:
        """The factor on the intercept's step of plain SGD: scikit-learn's
        ``SPARSE_INTERCEPT_DECAY`` (0.01) for per-sample steps
        (``batch_size=1``) on sparse X, as its SGD takes them, else 1.

        A sparse row moves only its few features but the intercept every
        time: undamped, the intercept's noise dominates. A minibatch's
        intercept gradient is already an average over its rows, which
        damping would only slow down."""
        return 0.01 if kind == "sparse" and self.batch_size == 1 else 1.0

    def average_start(self) -> int:
        """The update the running average starts at (0: no averaging)."""
        if self.average is False or self.average is None:
            return 0
        return 1 if self.average is True else int(self.average)

    def schedule(self, eta0: float, dloss):
        """The learning-rate schedule starting at ``eta0``."""
        return make_schedule(
            self.learning_rate,
            eta0=eta0,
            power_t=self.power_t,
            alpha=self.alpha,
            dloss=dloss,
        )

    def step_size(self, oracle, data, resume):
        """The initial learning rate and the schedule of a fit on ``data``
        (its FitData), or of a ``partial_fit`` that goes on from the
        SolverState ``resume``, at the rate "adaptive" had shrunk to."""
        if resume is None:
            eta0 = rate = self.eta0_for(
                oracle, data.shape, data.tdtype, data.device, data.partial
            )
        else:
            eta0, rate = resume.eta0, resume.rate
        return eta0, self.schedule(rate, data.loss.dloss_at)

    def eta0_for(self, oracle, shape, tdtype, device, partial: bool) -> float:
        """``eta0``, with "auto" turned into a step the data can take.

        The solver's own default where it declares one; for the
        per-coordinate methods its ``auto_scale`` times the solution's scale
        (:func:`~sklearn_gd.objective._protocol.solution_scale`); else
        ``1 / L_b`` where ``L_b`` bounds the curvature of a batch objective
        of size ``b``: ``L_b = L n (b - 1) / (b (n - 1)) + L_max (n - b) / (b
        (n - 1))`` (Gower et al., 2019) with ``L`` the largest eigenvalue of
        the loss Hessian bound and ``L_max`` its largest row term.
        """
        if self.eta0 != "auto":
            return float(self.eta0)
        cls = self.solver_class(partial)
        if cls.auto_eta0 is not None:
            return cls.auto_eta0
        if cls.auto_scale is not None:
            _, d, k = shape
            theta0 = torch.zeros(d + int(self.fit_intercept), k, dtype=tdtype)
            scale = solution_scale(
                oracle, theta0.to(device), self.loss.curvature, self.penalty.l2
            )
            return cls.auto_scale * scale
        lam, max_row = lipschitz_estimate(oracle)
        n = oracle.n_samples
        b = n if self.batch_size is None else min(self.batch_size, n)
        if b >= n or max_row is None or n == 1:
            lip = lam
        else:
            lip = (lam * n * (b - 1) + max_row * (n - b)) / (b * (n - 1))
        lip = self.loss.curvature * lip + self.penalty.curvature
        if not math.isfinite(lip) or lip <= 0:
            return 1.0
        return 1.0 / lip
