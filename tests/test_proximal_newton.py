"""Proximal Newton: the default for a softmax with an L1 part where its
Hessian is affordable, its exact step model, and the fits FISTA left far
from their optimum."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _sweep import gap_of, make_case
from scipy.optimize import minimize

from sklearn_gd.objective._linalg import solve_l1_quadratic, sound_ridges
from sklearn_gd.planning._planner import Planner
from sklearn_gd.solvers._proximal import AcceleratedProximal
from sklearn_gd.solvers._proximal_newton import ProximalNewton


def _lbfgs_model_value(H, c, lam):
    """The model's minimum by L-BFGS-B on the split ``z = u - v``."""
    m = len(c)

    def f(uv):
        z = uv[:m] - uv[m:]
        r = H @ z - c
        return 0.5 * z @ H @ z - c @ z + lam @ (uv[:m] + uv[m:]), np.concatenate(
            [r + lam, -r + lam]
        )

    res = minimize(
        f,
        np.zeros(2 * m),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * (2 * m),
        options=dict(ftol=1e-15, gtol=1e-12, maxiter=20000),
    )
    return res.fun


@pytest.mark.parametrize("seed", range(4))
def test_step_model_is_solved_exactly_on_ill_conditioned_systems(seed):
    # features with means ten times their spread: condition numbers of
    # ~1e4, where coordinate descent needed hundreds of sweeps
    rng = np.random.default_rng(seed)
    m, S = 12, 2
    A = rng.normal(size=(S, 30, m)) + 10 * rng.normal(size=(S, 1, m))
    H = np.einsum("sni,snj->sij", A, A)
    c = 50 * rng.normal(size=(S, m))
    lam = np.full((S, m), 20.0)
    lam[:, -1] = 0.0  # an unpenalised intercept
    z = solve_l1_quadratic(H, c, rng.normal(size=(S, m)), lam)
    for s in range(S):
        ours = 0.5 * z[s] @ H[s] @ z[s] - c[s] @ z[s] + lam[s] @ np.abs(z[s])
        ref = _lbfgs_model_value(H[s], c[s], lam[s])
        # an exact active-set solution against L-BFGS-B run to ftol=1e-15:
        # both are at the minimum to float64's rounding of values ~1e2
        assert ours <= ref + 1e-9 * abs(ref)


def test_sound_ridges():
    H = np.stack([np.eye(3), np.diag([1.0, 1.0, 0.0])])
    ridges = sound_ridges(H, lambda j: np.eye(3))
    assert ridges[0] == 0.0
    # the smallest ridge tried (1e-12) makes the zero pivot a curvature
    assert 0.0 < ridges[1] <= 1e-12


# multinomial log_loss with an L1 part: FISTA stopped these silently at
# relative gaps of 4e-3 to 2e-2 (635, 1402) or ran to max_iter (762)
@pytest.mark.parametrize("seed", [635, 762, 1402])
def test_multinomial_l1_reaches_its_optimum(seed):
    case = make_case(seed)
    est = case.estimator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning either
        est.fit(case.X, case.y, sample_weight=case.sample_weight)
    gap, _ = gap_of(case, est)
    # the fit stops once its duality gap certifies 1e-4 (tol="auto"): the
    # true gap is below that (3.7e-6 and 5e-7 for 635 and 1402, whose
    # certificate was looser, and their fits two Newton steps longer, while
    # every Newton system was ridged where a pivot was small against the
    # largest diagonal entry)
    assert gap <= 1e-4
    assert est.n_iter_ <= 60


@pytest.mark.parametrize(
    "hessian, work, smoothed, expected",
    [
        (True, 1e5, False, ProximalNewton),
        (True, 5e8, False, ProximalNewton),  # above NEWTON_MAX_WORK
        (True, 2e9, False, AcceleratedProximal),  # above PROX_NEWTON_MAX_WORK
        (False, 1e5, False, AcceleratedProximal),  # no Hessians offered
        (True, 1e5, True, AcceleratedProximal),  # a smoothing's inner solver
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("joint", [True, False])
def test_planner_chooses_proximal_newton_where_a_hessian_is_affordable(
    hessian, work, smoothed, expected, dtype, joint
):
    oracle = SimpleNamespace(
        X=SimpleNamespace(dtype=dtype),
        supports_hessian=hessian,
        hessian_work=work,
        quadratic=False,
        loss=SimpleNamespace(has_hessian=True, joint=joint),
    )
    got = Planner.second_order(AcceleratedProximal, oracle, smoothed=smoothed)
    # a softmax on float64 data only (see the planner)
    chosen = expected if dtype == torch.float64 and joint else AcceleratedProximal
    assert got is chosen
