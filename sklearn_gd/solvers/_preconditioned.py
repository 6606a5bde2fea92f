"""The base of the full-batch solvers that measure their own distance to the optimum.

They work in the metric of a preconditioner ``P`` (:class:`Metric`): the
problem seen through centred features, each scaled by the loss's curvature
bound times its variance, plus the L2 strength. It costs one pass over
``X``, leaves the optimum unchanged and makes the iterations independent of
the features' scales and offsets: a feature multiplied by 100 has its
coordinate divided by 100 in ``P``'s metric.

* :class:`QuasiNewton`, L-BFGS with ``P^-1`` as its initial inverse Hessian
  and a backtracking (Armijo) line search, for smooth objectives. Its first
  step is the diagonal Newton step; after that each iteration usually takes
  one evaluation of the objective and its gradient.
* :class:`AcceleratedProximal`, FISTA with a backtracked step, the adaptive
  restart of O'Donoghue and Candes (2015) and the per-coordinate proximal
  step of the L1 part, for penalties with an L1 part.

After each step :attr:`optimality` holds the norm of the (proximal)
gradient mapping in ``P^-1``'s metric, relative to its value at the start
of the fit: 0 at the optimum, whatever the scale of the objective. The
stopping rule :class:`~sklearn_gd.engine._stopping.Optimality` compares it with
``tol``.
"""

from __future__ import annotations

import torch

from ..objective._certificate import smooth_duality_gap
from ._metric import Metric
from ._solver import Solver

__all__ = ["AUTO_TOL", "Preconditioned"]

# tol="auto" for these solvers: the relative optimality measure at which the
# default fits of benchmarks/defaults.py reach an objective gap below 1e-4
AUTO_TOL = 1e-5


class Preconditioned(Solver):
    """What the two solvers share: ``P``, the objective's scale, the
    optimality measure and a cold state (partial_fit starts each call
    afresh: a full-batch step needs no history to be correct)."""

    full_batch = True
    auto_eta0 = 1.0
    measures_optimality = True
    auto_tol = AUTO_TOL  # a ratio of gradient-mapping norms

    def __init__(self, *, curvature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.curvature = curvature
        self.optimality = None
        self.stuck = False
        self._P = None
        self._first = None

    def setup(self, problem, theta) -> None:
        self._P = Metric(problem, self.curvature, theta.dtype)
        self._first = None
        self.optimality = None
        self.stuck = False
        self.at_precision = False
        self._eps = torch.finfo(theta.dtype).eps
        self._problem = problem
        self._certificate_cache: dict = {}

    def certify(self, enough: float = 0.0) -> float | None:
        """The relative duality gap of the smooth loss at the iterate
        (:func:`~sklearn_gd.objective._certificate.smooth_duality_gap`: a few passes
        over ``X``, fewer where the first bound is below ``enough``), or
        None where none is defined: the stopping rule's proof of a stop
        (:class:`~sklearn_gd.engine._stopping.Optimality`), which the gradient
        mapping alone is not without strong convexity. It takes what the
        solver already computed at the iterate (:meth:`_certificate_reuse`)."""
        args, kwargs = self._certificate_reuse()
        return smooth_duality_gap(
            self._problem, self._param, self._certificate_cache, enough, *args, **kwargs
        )

    def _certificate_reuse(self) -> tuple[tuple, dict]:
        """The arguments of the certificate beyond the iterate that the
        solver's own computations at it supply (none here)."""
        return (), {}

    # the objective's resolution, in units of its value times the precision:
    # a change below it is rounding (a sum over many rows in float32 is
    # exact to a few of its epsilons at best)
    resolution = 10.0
    # the relative gap estimate below which a solver that rounding stops has
    # converged (a hundredth of the package's 1e-4 promise)
    precision_gap = 1e-6

    def _resolved(self, decrease: float, f: float) -> bool:
        """Whether a decrease this large of the objective ``f`` shows in the
        data's precision."""
        return decrease > self.resolution * self._eps * abs(f)

    def _stall(self, f: float) -> None:
        """No step shows a decrease any more: stuck, and converged at the
        data's precision when the gap estimate is negligible (in float32 the
        gradient's rounding keeps the optimality measure near 1e-4)."""
        self.stuck = True
        self.at_precision = self.gap_estimate <= self.precision_gap * abs(f)

    def _build(self, param, lr):
        self._forget()
        return None

    def _forget(self):
        """Drop the history (after a restart from a checkpoint)."""

    def set_curvature(self, curvature: float) -> None:
        """Go on at a new curvature bound of the loss (the next level of a
        :class:`~sklearn_gd.solvers._smoothing.Smoothing`): ``P`` rescaled
        (no pass over the data), the history dropped, no longer stuck."""
        self.curvature = curvature
        self._P.set_curvature(curvature)
        self._forget()
        self.stuck = False

    def state_dict(self):
        return None

    def _measure(self, norm: torch.Tensor) -> None:
        """Record the optimality measure from the mapping's ``P^-1`` norm."""
        value = float(norm)
        if self._first is None:
            self._first = value if value > 0 else 1.0
        self.optimality = value / self._first

    @staticmethod
    def evaluate(problem, theta, idx) -> tuple[float, torch.Tensor]:
        """The objective at ``theta`` on the batch ``idx``, as the sum whose
        gradient the oracle gives (the mean times ``problem.sum_scale``), and
        that gradient (the L2 part included)."""
        objective, _, grad = problem.evaluate(theta, idx, with_l2=True)
        return float(objective) * problem.sum_scale, grad
