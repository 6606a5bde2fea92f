"""The one guarded solve of symmetric positive semi-definite systems.

Every Newton-type system of the package (Newton's direction, the CV
engine's batched directions, the exact squared-loss path's polish on a
support) goes through :func:`guarded_solve`. A (generalised) Hessian can be
singular to rounding: no row on a curved piece of a piecewise-quadratic
loss, a constant or duplicated column, more features than rows. Cholesky
then may still pass with a pivot at the rounding level, and a solve with
another factorisation raises ``LinAlgError: Singular matrix``. Here the
factor that passed is the one used, its pivots are tested against the
rounding of the matrix, and a system whose pivots are not above it gets the
smallest ridge that makes them so. Nothing raises.

:func:`solve_l1_quadratic` minimises such a quadratic with an L1 term, by
an active-set search whose every round is one guarded solve: proximal
Newton's step model, and the exact squared-loss path's polish.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["guarded_solve", "solve_l1_quadratic", "sound_ridges"]

# a Cholesky pivot ``L_ii^2`` is exact to about ``n eps H_ii`` (Cholesky's
# rounding is that of the matrix scaled to a unit diagonal: van der Sluis):
# one this many times above that is a curvature, one below is rounding
_PIVOT_MARGIN = 10.0
# ridges tried, as multiples of each system's own ``ridge_matrix``: from the
# rounding level up by 100x to the ridge matrix itself
_FIRST_RIDGE = 1e-12
_LAST_RIDGE = 1.0


def _sound(A: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Which float64 systems ``A`` (m, n, n) have Cholesky factors ``L``
    whose every pivot is above the rounding of its matrix: each relative to
    its own diagonal entry, not the largest (a column of mean -7e4 beside
    the intercept's ones, its diagonal 5e9 times theirs, left a sound
    intercept pivot "below rounding", and the ridge that followed missed a
    huber fit's optimality equations by 2%: sweep seeds 994 and 1250)."""
    diag = np.diagonal(A, axis1=-2, axis2=-1)
    pivots = np.square(np.diagonal(L, axis1=-2, axis2=-1))
    floor = _PIVOT_MARGIN * A.shape[-1] * np.finfo(np.float64).eps * diag
    return ((pivots > floor) & (diag > 0)).all(-1)


def _factor(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factors of the systems ``A`` (m, n, n) and which are sound:
    factorised, with every pivot above the rounding of its matrix."""
    L, info = torch.linalg.cholesky_ex(A)
    return L, (info == 0) & torch.from_numpy(_sound(A.numpy(), L.numpy()))


def _sound_solve(H: np.ndarray, G: np.ndarray):
    """The common case at numpy's cost (a Newton fit solves one small system
    an iteration, where torch's per-call overhead doubled the fit's time):
    every system's Cholesky pivots above its rounding, so the matrices are
    far from singular and LU solves them; None otherwise."""
    try:
        L = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    if not _sound(H, L).all():
        return None
    try:
        out = np.linalg.solve(H, G[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # not expected above the pivots' floor
        return None
    if not np.isfinite(out).all():
        return None
    return out, np.ones(len(H), dtype=bool)


def guarded_solve(
    H: np.ndarray, G: np.ndarray, ridge_matrix
) -> tuple[np.ndarray, np.ndarray]:
    """``H_j^-1 g_j`` for every system ``j``; never raises ``LinAlgError``.

    Parameters
    ----------
    H : ndarray of shape (m, n, n)
        Symmetric positive semi-definite matrices (float64, host); left
        unchanged.
    G : ndarray of shape (m, n)
        Right-hand sides.
    ridge_matrix : callable
        ``ridge_matrix(j)`` is the positive definite matrix (n, n) whose
        multiples regularise system ``j`` where ``H_j`` is singular to
        rounding (the solvers' preconditioner: a ridge in the problem's own
        metric).

    Returns
    -------
    solutions : ndarray of shape (m, n)
        ``(H_j + r_j R_j)^-1 g_j`` with ``r_j`` the smallest ridge (0, then
        1e-12 up by 100x to 1) under which ``H_j``'s Cholesky pivots are all
        above its rounding; zero where none is.
    solved : ndarray of shape (m,) of bool
        Which systems have a solution (False: not even ``H_j + R_j`` is
        sound, or the solution is not finite; the caller falls back to a
        step of its own there).
    """
    H = np.ascontiguousarray(H, dtype=np.float64)
    G = np.ascontiguousarray(G, dtype=np.float64)
    fast = _sound_solve(H, G)
    if fast is not None:
        return fast
    A = torch.from_numpy(H)
    B = torch.from_numpy(G)[:, :, None]
    out = torch.zeros_like(B)
    L, ok = _factor(A)
    # the factor that passed is the one solved with (two triangular solves):
    # a fresh LU of a matrix singular to rounding may find an exact zero
    out[ok] = torch.cholesky_solve(B[ok], L[ok])
    for j in torch.nonzero(~ok).flatten().tolist():
        Lj, ridge = _ridged_factor(A[j], ridge_matrix(j))
        if Lj is not None:
            out[j] = torch.cholesky_solve(B[j][None], Lj)[0]
            ok[j] = True
    solved = ok & torch.isfinite(out[:, :, 0]).all(-1)
    out[~solved] = 0.0
    return out[:, :, 0].numpy(), solved.numpy()


def _ridged_factor(A: torch.Tensor, R) -> tuple[torch.Tensor | None, float]:
    """The Cholesky factor (1, n, n) of ``A + r R`` with ``r`` the smallest
    ridge (1e-12 up by 100x to 1) that makes it sound, and ``r``; ``(None,
    inf)`` where none does."""
    R = torch.from_numpy(np.asarray(R, dtype=np.float64))
    ridge = _FIRST_RIDGE
    while ridge <= _LAST_RIDGE:
        L, ok = _factor((A + ridge * R)[None])
        if bool(ok):
            return L, ridge
        ridge *= 100.0
    return None, np.inf


def sound_ridges(H: np.ndarray, ridge_matrix) -> np.ndarray:
    """For every system ``j`` of ``H`` (m, n, n), the ridge :func:`guarded_solve`
    would add (0 where ``H_j`` is sound, inf where no ridge up to
    ``ridge_matrix(j)`` itself makes it so): the regularisation of a model
    that is minimised some other way than by one solve (proximal Newton's
    active-set search), so that its minimiser exists."""
    H = np.ascontiguousarray(H, dtype=np.float64)
    A = torch.from_numpy(H)
    _, ok = _factor(A)
    out = np.zeros(len(H))
    for j in np.flatnonzero(~ok.numpy()):
        out[j] = _ridged_factor(A[j], ridge_matrix(j))[1]
    return out


def solve_l1_quadratic(H, c, z, lam) -> np.ndarray:
    """Minimise ``z_s'H_s z_s / 2 - c_s'z_s + sum_i lam_si |z_si|`` for every
    system ``s`` (``H`` (S, m, m) positive definite), from ``z`` (the
    iterate: its support and signs are the first guess).

    Feature-sign search (Lee, Battle, Raina and Ng, 2006), an active-set
    method: the model is solved exactly on the current support and signs,
    a move that would flip a sign stops at the best zero crossing, and a
    zero whose residual exceeds its threshold joins the support. Each round
    is one solve, whatever ``H``'s conditioning, where coordinate descent
    crawled (features with means far above their spread: a condition number
    of 1e7, 200 sweeps a step, each step a fraction of Newton's progress).
    """
    out = np.empty_like(z)
    for j in range(H.shape[0]):
        out[j] = _feature_sign(H[j], c[j], z[j].copy(), lam[j])
    return out


def _value(H, c, lam, z) -> float:
    return float(0.5 * z @ H @ z - c @ z + lam @ np.abs(z))


def _feature_sign(H, c, z, lam) -> np.ndarray:
    """:func:`solve_l1_quadratic` for one system."""
    m = len(c)
    free = lam == 0  # unpenalised coordinates: always in the support
    tol = 1e-12 * max(float(np.abs(c).max()), float(lam.max()), 1e-300)
    sign = np.sign(z)
    for _ in range(4 * m + 10):
        residual = c - H @ z  # minus the smooth part's gradient
        active = (sign != 0) | free
        # the support's conditions: residual = lam sign there
        off = np.abs(residual - lam * sign)[active]
        if off.size == 0 or off.max() <= tol:
            # optimal on the support: the worst zero joins it, or done
            gap = np.where(active, 0.0, np.abs(residual) - lam)
            i = int(np.argmax(gap))
            if gap[i] <= tol:
                return z
            sign[i] = np.sign(residual[i])
            active[i] = True
        idx = np.flatnonzero(active)
        A = H[np.ix_(idx, idx)][None]
        rhs = (c[idx] - lam[idx] * sign[idx])[None]
        sol, ok = guarded_solve(A, rhs, lambda _: np.eye(len(idx)))
        if not ok[0]:
            return z
        target = np.zeros(m)
        target[idx] = sol[0]
        z = _best_on_segment(H, c, lam, z, target, free)
        sign = np.sign(z)
    return z


def _best_on_segment(H, c, lam, z, target, free) -> np.ndarray:
    """The best of ``target`` and the points on the segment from ``z``
    where a penalised coordinate crosses zero (set exactly to zero)."""
    best, best_value = target, _value(H, c, lam, target)
    step = target - z
    cross = (~free) & (z != 0) & (np.sign(target) != np.sign(z))
    for i in np.flatnonzero(cross):
        t = z[i] / (z[i] - target[i])
        point = z + t * step
        point[i] = 0.0
        value = _value(H, c, lam, point)
        if value < best_value:
            best, best_value = point, value
    return best
