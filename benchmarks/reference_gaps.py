"""Relative objective gaps of TorchSGDRegressor against reference solvers.

Fits every pairing of ``tests/test_reference.py`` (the same data, settings and
reference solvers, scored by the one objective of ``tests/_objective.py``)
and prints a markdown table; also writes it to
``benchmarks/results/reference_gaps.md``. A positive gap means our objective is
above the reference's. Three extra rows measure L-BFGS with a constant rate
and momentum SGD with L1, which once converged to the wrong point.

Run from the repository root::

    python benchmarks/reference_gaps.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _objective import estimator_objective, objective  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from test_reference import (  # noqa: E402
    CASES,
    LBFGS_CASES,
    LBFGS_CONSTANT,
    MOMENTUM_L1,
    RTOL,
    SMOOTH,
    _full_params,
    diabetes,
    fit_case,
    ref_lasso,
    synthetic,
)

from sklearn_gd import TorchSGDRegressor  # noqa: E402


def _describe(params):
    p = _full_params(params)
    opt = params.get("optimizer", "sgd")
    if params.get("momentum"):
        opt += f" (momentum {params['momentum']})"
    return p["loss"], str(p["penalty"]), opt


def case_rows():
    for case in CASES:
        start = time.perf_counter()
        X, y, est, *_, f_ours, f_ref = fit_case(case.id)
        seconds = time.perf_counter() - start
        loss, penalty, opt = _describe(case.params)
        yield dict(
            pairing=case.id,
            loss=loss,
            penalty=penalty,
            optimizer=opt,
            reference=case.reference.__name__.removeprefix("ref_"),
            data=case.data,
            ours=f_ours,
            ref=f_ref,
            n_iter=est.n_iter_,
            seconds=seconds,
            note="",
        )


def regression_rows():
    """Settings that once exposed core bugs (a disabled L-BFGS line search,
    an L1 step not matched to momentum): their gaps today."""
    X, y = synthetic()
    for loss, params in LBFGS_CASES:
        start = time.perf_counter()
        ours = TorchSGDRegressor(loss=loss, **LBFGS_CONSTANT, **params).fit(X, y)
        gd = TorchSGDRegressor(loss=loss, **SMOOTH | params).fit(X, y)
        p = _full_params(params)
        yield dict(
            pairing=f"lbfgs-constant-{loss}",
            loss=loss,
            penalty=str(p["penalty"]),
            optimizer="lbfgs (learning_rate=constant, unread)",
            reference="full-batch GD",
            data="synthetic",
            ours=estimator_objective(ours, X, y),
            ref=estimator_objective(gd, X, y),
            n_iter=ours.n_iter_,
            seconds=time.perf_counter() - start,
            note="backtracking line search",
        )
    X, y = diabetes()
    start = time.perf_counter()
    params = dict(penalty="l1", alpha=0.05)
    est = TorchSGDRegressor(**MOMENTUM_L1).fit(X, y)
    coef, icpt = ref_lasso(X, y, _full_params(params))
    yield dict(
        pairing="lasso-momentum-diabetes",
        loss="squared_error",
        penalty="l1",
        optimizer="sgd (momentum 0.9)",
        reference="lasso",
        data="diabetes",
        ours=estimator_objective(est, X, y),
        ref=objective(coef, icpt, X, y, penalty_name="l1", alpha=0.05),
        n_iter=est.n_iter_,
        seconds=time.perf_counter() - start,
        note="L1 step lr / (1 - momentum)",
    )


def main():
    header = (
        "| pairing | loss | penalty | optimizer | reference | data | "
        "relative gap | within 1e-4 | epochs | seconds | note |"
    )
    lines = [header, "|" + " --- |" * 11]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for row in [*case_rows(), *regression_rows()]:
            gap = (row["ours"] - row["ref"]) / abs(row["ref"])
            lines.append(
                f"| {row['pairing']} | {row['loss']} | {row['penalty']} | "
                f"{row['optimizer']} | {row['reference']} | {row['data']} | "
                f"{gap:+.1e} | {'yes' if gap <= RTOL else 'NO'} | "
                f"{row['n_iter']} | {row['seconds']:.2f} | {row['note']} |"
            )
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results" / "reference_gaps.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Relative objective gaps against reference solvers\n\n"
        "Written by `benchmarks/reference_gaps.py`.\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()
