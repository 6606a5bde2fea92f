"""One class per method, each declaring what it needs of the data term.

The torch optimizers of the SGD family, the full-batch solvers (Newton,
L-BFGS, conjugate gradients, FISTA, proximal Newton, the smoothing of a
non-smooth loss) and the exact squared-loss path (closed form and
coordinate descent on the moments).
"""

from ._conjugate_gradient import ConjugateGradient
from ._exact import GAP_TOL, CoordinateDescent, solve_squared
from ._metric import GradientMapping, Metric
from ._newton import Newton
from ._optimizers import OPTIMIZERS, make_solver
from ._preconditioned import AUTO_TOL, Preconditioned
from ._proximal import AcceleratedProximal
from ._proximal_newton import ProximalNewton
from ._quasi_newton import QuasiNewton
from ._scaled import ScaledSolver
from ._smoothing import Smoothing
from ._solver import Solver

__all__ = [
    "AUTO_TOL",
    "GAP_TOL",
    "OPTIMIZERS",
    "AcceleratedProximal",
    "ConjugateGradient",
    "CoordinateDescent",
    "GradientMapping",
    "Metric",
    "Newton",
    "Preconditioned",
    "ProximalNewton",
    "QuasiNewton",
    "ScaledSolver",
    "Smoothing",
    "Solver",
    "make_solver",
    "solve_squared",
]
