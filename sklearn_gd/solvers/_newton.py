"""Damped Newton, each output on its own (generalised) Hessian."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..objective._linalg import guarded_solve
from ._quasi_newton import QuasiNewton

__all__ = ["Newton"]


class Newton(QuasiNewton):
    """Damped Newton: each output's direction solves its own (generalised)
    Hessian's system, ``H_j d_j = -g_j``, and each output takes its own
    Armijo step from ``t = 1`` (one-vs-rest outputs are separate problems:
    one needing a short step does not hold the others back).

    The loss, gradient and Hessians at an accepted point come from one pass
    over ``X`` (:meth:`~sklearn_gd.objective._direct.DirectOracle.derivatives`), and a
    trial point of the line search costs the loss alone. For dense data
    with few features (the oracle says when), where a Hessian costs about
    what a few gradients do and Newton's method needs about ten iterations,
    whatever the conditioning, against L-BFGS's tens to hundreds.
    Piecewise-quadratic losses (huber, squared_hinge, modified_huber, and
    the smoothings of the non-smooth ones) take their generalised Hessian,
    which can be singular (no row on a curved piece): then the smallest
    multiple of the preconditioner ``P`` that makes it positive definite is
    added. Its decrement ``g' H^-1 g / 2`` estimates the gap to the
    optimum.
    """

    check_every = 2  # its decrement is a close estimate of the gap

    def _certificate_reuse(self) -> tuple[tuple, dict]:
        """On float64 data, the Newton direction at the iterate (computed
        after each step) as the refined dual point's step, so that the
        certificate builds no Hessian of its own, and the objectives,
        predictions and loss derivatives found there (no pass of its own
        for them). In float32 none is the certificate's float64 arithmetic:
        a direction from float32 gradients left sweep seed 65
        (modified_huber, its fit within 1e-7) at a certified gap of 7e-4."""
        if self._param.dtype != torch.float64 or self._d is None:
            return (), {}
        return (self._d, self._columns, self._rows), {}

    def _forget(self):
        super()._forget()
        # the objectives and the rows' terms at the iterate, with _d
        self._columns = self._rows = None

    def setup(self, problem, theta) -> None:
        super().setup(problem, theta)
        (q, k), d = theta.shape, problem.d
        self._joint = problem.joint and k > 1  # one system over theta.T
        self._together = problem.joint or k == 1
        # the L2 part of the Hessian: its diagonal on the coefficients' rows
        self._ridge = None
        if problem.penalty.l2:
            l2 = torch.as_tensor(problem.penalty.l2, dtype=torch.float64)
            ridge = np.zeros((l2.numel(), q))
            ridge[:, :d] = l2.cpu().numpy().reshape(-1, 1)
            self._ridge = np.tile(ridge, (1, k)) if self._joint else ridge
        # a softmax is unchanged by one shift of every class's intercept: the
        # direction ``u`` its Hessian is singular along, whatever the penalty,
        # and the gradient is zero along; the loss's curvature bound ``c``
        # there (``c u u'``, ``u`` of unit norm) leaves the step without a
        # component along it
        self._shift = None
        if self._joint and q > d:
            self._shift = np.arange(k) * q + d, problem.oracle.loss.curvature / k

    @staticmethod
    def _objectives(problem, values, theta) -> torch.Tensor:
        """Each output's objective (float64): its mean loss ``values`` at
        ``theta`` plus its penalty."""
        W = problem.coef(theta)
        return (values + problem.penalty.column_values(W)).double()

    def _values(self, problem, theta) -> np.ndarray:
        """Each output's objective at ``theta`` (the loss alone, no pass for
        derivatives), on the host: the line search's one synchronisation."""
        values, _, _ = problem.oracle.derivatives(theta, order=0)
        return self._objectives(problem, values, theta).cpu().numpy()

    def _at(self, problem, theta, columns=None) -> None:
        """Gradient, Hessian, measure and Newton direction at ``theta``
        (``columns``: its per-output objectives, when already known).

        The passes over the data are the device's; the small dense algebra
        (a ``q x q`` system an output) is the host's, where an operation
        costs a microsecond rather than a tensor operation's several: one
        transfer each way."""
        values, g, H = problem.oracle.derivatives(theta, order=2)
        self._rows = getattr(problem.oracle, "last_rows", None)
        W = problem.coef(theta)
        problem.penalty.add_gradient_(g[: problem.d], W)
        host = [H, g.double()]
        if columns is None:
            host.append(self._objectives(problem, values, theta))
        H, g_host, *rest = (t.cpu().numpy() for t in host)
        columns = rest[0] if rest else columns
        Bg = self._P.inv_host(g_host)
        d, norm, self._slopes = self._step_direction(H, g_host, Bg, theta)
        self._measure(norm)
        self._slope = float(self._slopes.sum())
        self.gap_estimate = max(0.0, -0.5 * self._slope)
        self._columns, self._f, self._g = columns, float(columns.sum()), g
        self._d = torch.from_numpy(d).to(device=g.device, dtype=g.dtype)
        # a decrement (the gap's estimate, exact as Newton converges) below
        # what the objective resolves in the data's precision: no step can
        # show a decrease any more, and the gap is negligible (in float32 the
        # gradient's rounding keeps the measure near 1e-4 from there on)
        if not self._resolved(self.gap_estimate, self._f):
            self.stuck = self.at_precision = True

    def _step_direction(self, H, g, Bg, theta) -> tuple[np.ndarray, float, np.ndarray]:
        """The step from ``theta`` (host, ``g``'s shape), the optimality
        measure's norm (``<g, P^-1 g>``'s root, ``Bg = P^-1 g``) and each
        output's slope along the step (``<g_j, d_j>``: the decrease its
        linear model predicts, which the line search asks a fraction of)."""
        d = self._newton_direction(H, g, Bg)
        norm = math.sqrt(max(float((g * Bg).sum()), 0.0))
        return d, norm, (g * d).sum(0)

    def _regularise(self, H) -> None:
        """Add the L2 part's diagonal to ``H``, and for a softmax the
        curvature bound along the shift of every class's intercept (see
        :meth:`setup`), in place."""
        n = H.shape[1]
        if self._ridge is not None:
            H[:, np.arange(n), np.arange(n)] += self._ridge
        if self._shift is not None:
            i, c = self._shift
            H[0, i[:, None], i] += c

    def _newton_direction(self, H, g, Bg) -> np.ndarray:
        """``-H_j^-1 g_j`` for every output (or ``-H^-1 g`` for a joint
        loss), on the host (:func:`~sklearn_gd.objective._linalg.guarded_solve`:
        Cholesky, with the smallest ridge in ``P``'s metric where ``H_j`` is
        singular to rounding), or the metric's
        step ``-P^-1 g`` for an output where no ridge up to ``P`` itself
        helps. ``H`` is changed."""
        q, k = g.shape
        n = H.shape[1]
        self._regularise(H)
        G = g.T.reshape(1, n) if self._joint else g.T

        def metric(j):
            P = self._P.matrix()
            return np.kron(np.eye(k), P) if self._joint else P

        d, ok = guarded_solve(H, G, metric)
        d = -(d.reshape(k, q) if self._joint else d).T
        if not ok.all():
            good = np.repeat(ok, k) if self._joint else ok
            d[:, ~good] = -Bg[:, ~good]
        return d

    def step(self, problem, idx, lr):
        x = self._param
        if self._g is None:
            self._at(problem, x)
        found = self._search(problem, x, lr)
        if found is None:  # no decrease left at this precision: stay, say so
            self._stall(self._f)
            return self._f / problem.sum_scale, 1.0
        t, columns = found
        x.add_(self._d * t)
        self._at(problem, x, columns)
        return self._f / problem.sum_scale, 1.0

    def _search(self, problem, x, lr):
        """Armijo backtracking from ``lr`` along the Newton direction, each
        output on its own objective (or all together, for one output or a
        joint loss). Returns the steps (a float, or a (n_outputs,) tensor)
        and the objectives reached, or None when no step decreases the
        objective at this precision."""
        d, together = self._d, self._together
        f0 = self._columns.sum(keepdims=True) if together else self._columns
        slopes = np.array([self._slope]) if together else self._slopes
        t = np.full(f0.shape, float(lr))
        for _ in range(60):
            step = (
                float(t[0])
                if together
                else torch.as_tensor(t, dtype=d.dtype, device=d.device)
            )
            columns = self._values(problem, x + d * step)
            reached = columns.sum(keepdims=True) if together else columns
            ok = reached <= f0 + self.armijo * t * slopes
            if ok.all():
                return step, columns
            # halving, not the quadratic's minimiser: a piecewise-quadratic
            # loss's curvature jumps along a long direction, where the
            # quadratic through f0 and the slope asks for a step a hundred
            # times shorter than the one that decreases (the smallest alpha
            # of modified_huber on breast_cancer: 248 Newton steps for 32)
            t = np.where(ok, t, 0.5 * t)
            # the decrease steps this long can make (half the linear model's,
            # as :class:`QuasiNewton`'s search), not Armijo's fraction of it:
            # that one drops below float32's rounding while a long direction
            # (a nearly singular generalised Hessian) still has a decrease of
            # a few percent of the objective to make
            if not self._resolved(-0.5 * float((t * slopes).sum()), self._f):
                return None  # a decrease this small is rounding
        return None
