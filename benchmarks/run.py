"""Side-by-side benchmark of TorchSGDRegressor against its peers.

Run ``python benchmarks/run.py`` (about 40 minutes on 2 cores; half that with
``--no-one-thread``) or ``python benchmarks/run.py --quick`` (about three
minutes). Writes
``RESULTS.md``, ``results.json`` and ``gap_vs_time.png`` to ``--out``
(default ``benchmarks/results``).

What is measured, per workload (same data, same 2 threads for everyone; then
all of it again with one thread in every library, a column that machine load
distorts far less; each timing starts once other processes use under 0.3
cores, or after two minutes, marked):

* the optimum ``f*`` of the workload's objective, from a reference solver in
  float64 (normal equations, ElasticNet/HuberRegressor at tight tolerance,
  QuantileRegressor's exact LP), lowered to the best objective any contestant
  reached if one did better;
* for each contestant, in its own process: the wall time, final relative gap
  ``(f - f*) / |f*|`` and peak extra RSS (VmHWM reset before the fit, minus
  the RSS with the data loaded) of its own configuration; and the time to
  reach a relative gap of 1e-3, found by fitting with increasing budgets
  (epochs / iterations, doubling; every trajectory is a prefix of the longer
  ones) and refining between the last two budgets (from the per-epoch
  parameter history where the contestant has one, else by bisection). Short
  fits are timed best of 2-3;
* for our engine: seconds per epoch (the marginal cost of 10 more epochs) vs
  the bandwidth floor, bytes of X / read bandwidth measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _setup  # noqa: E402  (threads and import path)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _data import Objective, make_design  # noqa: E402
from _quiet import other_cpu, wait_until_quiet  # noqa: E402,F401

TARGET = 1e-3


# --------------------------------------------------------------- workloads
def workloads(quick):
    sq = dict(loss="squared_error", penalty="l2", alpha=1e-4)
    if quick:
        return [
            dict(name="squared 1e5x100 f32", n=100_000, d=100, dtype="float32", **sq),
            dict(
                name="huber 2e4x50 f32",
                n=20_000,
                d=50,
                dtype="float32",
                loss="huber",
                penalty="l2",
                noise="outliers",
            ),
            dict(
                name="elasticnet 2e4x50 f32",
                n=20_000,
                d=50,
                dtype="float32",
                loss="squared_error",
                penalty="elasticnet",
                alpha=1e-2,
                l1_ratio=0.5,
                sparse_coef=True,
            ),
            dict(
                name="quantile 5e3x20 f32",
                n=5_000,
                d=20,
                dtype="float32",
                loss="quantile",
                penalty="l1",
                alpha=1e-4,
                noise="laplace",
            ),
        ]
    out = []
    for n, d in [(100_000, 100), (1_000_000, 100), (200_000, 1000)]:
        for dt in ("float32", "float64"):
            tag = f"{n:.0e}x{d}".replace("+0", "").replace("+", "")
            out.append(
                dict(
                    name=f"squared {tag} {dt[5:] and 'f' + dt[5:]}",
                    n=n,
                    d=d,
                    dtype=dt,
                    **sq,
                )
            )
    out += [
        dict(
            name="squared scaled 2e5x100 f32 (pipeline)",
            n=200_000,
            d=100,
            dtype="float32",
            scales=True,
            pipeline=True,
            **sq,
        ),
        dict(
            name="huber 2e5x100 f32",
            n=200_000,
            d=100,
            dtype="float32",
            loss="huber",
            penalty="l2",
            noise="outliers",
        ),
        dict(
            name="elasticnet 2e5x100 f32",
            n=200_000,
            d=100,
            dtype="float32",
            loss="squared_error",
            penalty="elasticnet",
            alpha=1e-2,
            l1_ratio=0.5,
            sparse_coef=True,
        ),
        dict(
            name="quantile 1e4x20 f32",
            n=10_000,
            d=20,
            dtype="float32",
            loss="quantile",
            penalty="l1",
            alpha=1e-4,
            noise="laplace",
        ),
    ]
    return out


def complete_spec(w, quick):
    spec = dict(
        l1_ratio=0.15,
        epsilon=0.1,
        quantile=0.5,
        pipeline=False,
        scales=False,
        noise="gauss",
        sparse_coef=False,
        alpha=1e-4,
    )
    spec.update(w)
    spec["target"] = TARGET
    # time given to each contestant's search for the target (beyond its own fit)
    spec["time_cap"] = 3.0 if quick else 20.0
    spec["quick"] = quick
    spec["fast_max_iter"] = 100 if spec["loss"] == "squared_error" else 200
    return spec


def build_workload(spec, workdir, log):
    """Data on disk for the children, the objective, the reference optimum."""
    t0 = time.perf_counter()
    X, y, _ = make_design(
        spec["n"],
        spec["d"],
        seed=0,
        scales=spec["scales"],
        noise=spec["noise"],
        sparse_coef=spec["sparse_coef"],
    )
    dt = np.dtype(spec["dtype"])
    np.save(os.path.join(workdir, "X.npy"), X.astype(dt, copy=False))
    np.save(os.path.join(workdir, "y.npy"), y.astype(dt, copy=False))
    # the contestants see X in its dtype; the objective is evaluated on the
    # same numbers in float64 (standardised, for a pipeline workload)
    Xe = X.astype(dt).astype(np.float64)
    ye = y.astype(dt).astype(np.float64)
    del X
    if spec["pipeline"]:
        from sklearn.preprocessing import StandardScaler

        Xe = StandardScaler().fit_transform(Xe)
    n = spec["n"]
    ref_note = ""
    if spec["loss"] == "huber":
        # HuberRegressor estimates a scale sigma jointly with w; at its optimum
        # sigma*, its w minimises  mean huber_{eps sigma*}(r) + (alpha_h
        # sigma* / n) / 2 ||w||^2,  so that is our problem: same optimum.
        from sklearn.linear_model import HuberRegressor

        a_h = 1e-4 * n
        hr = HuberRegressor(epsilon=1.35, alpha=a_h, tol=1e-12, max_iter=20000)
        hr.fit(Xe, ye)
        spec.update(
            huber_eps=1.35,
            huber_alpha=a_h,
            epsilon=1.35 * hr.scale_,
            alpha=a_h * hr.scale_ / n,
        )
        ref = (hr.coef_, hr.intercept_)
        ref_note = f"HuberRegressor(tol=1e-12), sigma*={hr.scale_:.4f}"
    obj = Objective(
        Xe,
        ye,
        loss=spec["loss"],
        penalty=spec["penalty"],
        alpha=spec["alpha"],
        l1_ratio=spec["l1_ratio"],
        epsilon=spec["epsilon"],
        quantile=spec["quantile"],
    )
    if spec["loss"] == "squared_error" and spec["penalty"] == "l2":
        ref = obj.ridge_solution()
        ref_note = "normal equations, float64"
    elif spec["penalty"] == "elasticnet":
        from sklearn.linear_model import ElasticNet

        en = ElasticNet(
            alpha=spec["alpha"],
            l1_ratio=spec["l1_ratio"],
            tol=1e-12,
            max_iter=100_000,
            precompute=True,
        ).fit(Xe, ye)
        ref = (en.coef_, en.intercept_)
        ref_note = "ElasticNet(precompute=True, tol=1e-12), float64"
    elif spec["loss"] == "quantile":
        from sklearn.linear_model import QuantileRegressor

        qr = QuantileRegressor(
            quantile=spec["quantile"], alpha=spec["alpha"], solver="highs"
        ).fit(Xe, ye)
        ref = (qr.coef_, qr.intercept_)
        ref_note = "QuantileRegressor(highs) exact LP, float64"
    spec["f_ref"] = float(obj(*ref))
    spec["ref_note"] = ref_note
    L = obj.lipschitz()
    spec["lipschitz"] = L
    # settings given to the peers so that they can get close
    sq = spec["loss"] == "squared_error"
    nonsmooth = spec["loss"] == "quantile"
    # tutorial: the best constant step of full-batch GD, 1/L (MSELoss is twice
    # our data term, hence 1/(2L)); a smaller one for the subgradient method
    spec["tutorial_lr"] = (0.5 / L) if sq else ((0.05 / L) if nonsmooth else 1.0 / L)
    spec["tutorial_epochs"] = 50 if spec.get("quick") else 100
    # skorch: minibatch SGD (its DataLoader collates row by row, so a full
    # batch is no faster); lr 0.2/L at batch 1024 is about the largest that
    # still averages the gradient noise down to the target
    spec["skorch_batch"] = 1024
    spec["skorch_lr"] = (0.2 / L) if not nonsmooth else 0.02 / L
    spec["skorch_epochs"] = (
        2 if (n >= 500_000 or spec.get("quick")) else (5 if n >= 100_000 else 10)
    )
    if sq and spec["penalty"] == "l2":
        spec["ridge_solver"], spec["ridge_trial"] = ridge_trial(Xe, ye, spec)
    with open(os.path.join(workdir, "objective.pkl"), "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    with open(os.path.join(workdir, "spec.json"), "w") as f:
        json.dump(spec, f)
    log(
        f"  data + reference: {time.perf_counter() - t0:.1f}s  f*={spec['f_ref']:.6g}"
        f"  L={L:.3g}  ({ref_note})"
    )
    return spec


def ridge_trial(Xe, ye, spec):
    """Pick Ridge's fastest solver on a subsample (first 50k rows)."""
    from sklearn.linear_model import Ridge

    m = min(len(ye), 50_000)
    Xs = np.ascontiguousarray(Xe[:m], dtype=spec["dtype"])
    ys = ye[:m].astype(spec["dtype"])
    times = {}
    for solver in ("cholesky", "lsqr", "sparse_cg"):
        ts = []
        for _ in range(2):
            t0 = time.perf_counter()
            Ridge(alpha=spec["alpha"] * m, solver=solver).fit(Xs, ys)
            ts.append(time.perf_counter() - t0)
        times[solver] = min(ts)
    return min(times, key=times.get), times


# -------------------------------------------------------------- measuring
def bandwidth(gib=2.0, reps=3):
    """Read bandwidth (bytes/s): torch sum over a ``gib`` GiB buffer, best of 3."""
    buf = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    best = np.inf
    for _ in range(reps + 1):  # the first one warms the pages
        t0 = time.perf_counter()
        float(buf.sum())
        best = min(best, time.perf_counter() - t0)
    nbytes = buf.numel() * 4
    del buf
    return nbytes / best


def run_workload_child(workdir, timeout, log, threads=None, name="results.json"):
    """All contestants of a workload in one fresh process (see _child.py),
    with ``threads`` threads in every library (None: _setup's default)."""
    out = os.path.join(workdir, name)
    cmd = [sys.executable, os.path.join(HERE, "_child.py"), workdir, out]
    env = dict(os.environ)
    if threads is not None:
        env["SKLEARN_GD_BENCH_THREADS"] = str(threads)
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    t0 = time.perf_counter()
    for line in p.stdout:  # one JSON line per finished contestant
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("error"):
            log(f"  {r['name']:26s} ERROR {r['error'][-300:]}")
        else:
            hit = r["hit"] and min(r["hit"]["times"])
            log(
                f"  {r['name']:26s} own {min(r['own']['times']):8.3f}s  "
                f"t2t={'-' if hit is None else f'{hit:.3f}s'}  "
                f"peak+{(r['peak'] or 0) / 2**20:.0f}MiB  ({r['wall']:.0f}s)"
            )
        if time.perf_counter() - t0 > timeout:
            p.kill()
            break
    err = p.stderr.read()
    p.wait()
    try:
        with open(out) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return [], {"error": err[-2000:] or "no output"}
    if isinstance(data, list):  # killed before the engine part
        return data, {"error": "not measured (timeout)"}
    return data["contestants"], data["engine"]


def summarise(spec, results):
    """Gaps against f* (= min of the reference and everything seen)."""
    f_ref = spec["f_ref"]
    seen = [
        p["obj"]
        for r in results
        if "ladder" in r
        for p in r["ladder"]
        if np.isfinite(p["obj"])
    ]
    seen += [
        r["own"]["obj"] for r in results if "own" in r and np.isfinite(r["own"]["obj"])
    ]
    f_star = min([f_ref] + seen)
    spec["f_star"] = f_star

    def gap(v):
        return (v - f_star) / abs(f_star) if np.isfinite(v) else float("inf")

    for r in results:
        if "own" not in r:
            continue
        r["own_gap"] = gap(r["own"]["obj"])
        r["own_time"] = min(r["own"]["times"])
        pts = [(min(p["times"]), gap(p["obj"])) for p in r["ladder"]]
        trace = list(pts)
        if "trace_epochs" in r:  # per-epoch history, times from t(1) + per-epoch
            trace = [
                (r["time_1_epoch"] + (k - 1) * r["time_per_epoch"], gap(v))
                for k, v in zip(r["trace_epochs"], r["trace_objs"])
            ] + pts
        trace.append((r["own_time"], r["own_gap"]))
        r["trace"] = sorted(trace, key=lambda p: p[0])  # stable: epoch order
        # the contestant's own fit counts too (a full run that gets there)
        ok = [t for t, g in pts + [(r["own_time"], r["own_gap"])] if g <= TARGET]
        r["t2t"] = min(ok) if ok else None
        # not reached: everything it ran says "more than the longest fit"
        r["t2t_lower"] = None if ok else max([t for t, _ in pts] + [r["own_time"]])
    return f_star


# ----------------------------------------------------------------- GPU
def gpu_section(log, bw_cpu):
    if not torch.cuda.is_available():
        log("GPU section: skipped (torch.cuda.is_available() is False)")
        return {"skipped": "torch.cuda.is_available() is False"}
    from sklearn.linear_model import Ridge

    from sklearn_gd import TorchSGDRegressor

    n, d = 10_000_000, 100
    g = torch.Generator(device="cuda").manual_seed(0)
    Xg = torch.randn(n, d, device="cuda", generator=g)
    coef = torch.randn(d, device="cuda", generator=g)
    yg = Xg @ coef + 3.0 + torch.randn(n, device="cuda", generator=g)
    out = {"n": n, "d": d}
    for name, kw in [
        ("ours-default cuda", {}),
        ("ours-fast cuda", dict(tol=None, max_iter=100)),
    ]:
        ts = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            est = TorchSGDRegressor(**kw).fit(Xg, yg)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        out[name] = {"times": ts, "n_iter": int(est.n_iter_)}
        log(f"  {name}: best {min(ts):.3f}s")
    X = Xg.cpu().numpy()
    y = yg.cpu().numpy()
    del Xg, yg
    obj = Objective(X, y, loss="squared_error", penalty="l2", alpha=1e-4)
    fs = obj(*obj.ridge_solution())
    est = TorchSGDRegressor().fit(X[:1], y[:1])  # warm-up of the CPU path
    t0 = time.perf_counter()
    r = Ridge(alpha=1e-4 * n, solver="cholesky").fit(X, y)
    out["Ridge(cholesky) cpu"] = {
        "times": [time.perf_counter() - t0],
        "gap": (obj(r.coef_, r.intercept_) - fs) / fs,
    }
    log(f"  Ridge(cholesky) cpu: {out['Ridge(cholesky) cpu']['times'][0]:.3f}s")
    return out


# --------------------------------------------------------------- reporting
def fmt_t(r):
    if r is None or "own" not in r:
        return "error"
    if r["t2t"] is not None:
        return f"{r['t2t']:.3g}"
    return f"> {r['t2t_lower']:.3g} (not reached)"


def ratio(a, b):
    """ours / contestant time to target, with bounds when one did not get there."""
    if a is None or b is None or "own" not in a or "own" not in b:
        return "n/a"
    if a["t2t"] is not None and b["t2t"] is not None:
        return f"{a['t2t'] / b['t2t']:.3g}"
    if a["t2t"] is not None:
        return f"< {a['t2t'] / b['t2t_lower']:.3g}"
    if b["t2t"] is not None:
        return f"> {a['t2t_lower'] / b['t2t']:.3g}"
    return "neither reached"


def write_report(out_dir, meta, all_results, engine, gpu):
    by = {w["name"]: {r["name"]: r for r in res} for w, res in all_results}
    lines = ["# Benchmark results", ""]
    lines += [
        f"Command: `{meta['command']}` ({meta['mode']} mode), {meta['date']}.",
        f"Machine: {meta['machine']}; torch {meta['torch']}, scikit-learn "
        f"{meta['sklearn']}, skorch {meta['skorch']}; sklearn_gd from "
        f"`{meta['sklearn_gd_path']}` (commit {meta['commit']}).",
        f"Threads: {meta['threads']}.",
        "Read bandwidth (torch sum over 2 GiB, best of 3): "
        f"{meta['bandwidth'] / 1e9:.1f}"
        f" GB/s at start, {meta['bandwidth_end'] / 1e9:.1f} GB/s at end.",
        f"Load average at start / end: {meta['load_start']} / {meta['load_end']}; "
        "before each workload the run waits until other processes use under 0.3 "
        "cores (the cores used then are in results.json; a workload still busy "
        'after two minutes is marked in the summary). The "1 thread" columns '
        "rerun every contestant with one thread in every library, which load "
        "cannot slow as much.",
        f"Timing noise: short fits are timed best of 2-3; the median spread "
        f"(max/min - 1) over repeated timings of this run was "
        f"{meta['noise_median'] * 100:.0f}% (90th percentile "
        f"{meta['noise_p90'] * 100:.0f}%). Ratios below 1.5x either way are within "
        "noise.",
        "",
        f"Target: relative objective gap (f - f*) / |f*| <= {TARGET:g}. "
        '"time to target" is the wall time of the cheapest fit (smallest budget) '
        'that reaches it; "> t (not reached)" means no fit up to t seconds did. '
        "Ratios are ours / contestant (below 1: ours is faster).",
        "",
        "## Summary: time-to-target ratio, ours-fast / contestant (ours-default / "
        "contestant in brackets)",
        "",
    ]
    peers = ["SGDRegressor", "best sklearn", "skorch", "tutorial"]
    one = [
        p
        for p in ("SGDRegressor", "best sklearn")
        if any(w.get("results_1thread") for w, _ in all_results)
    ]
    lines.append(
        "| workload | ours-fast t2t (s) | ours-default t2t (s) | "
        + " | ".join(f"vs {p}" for p in peers)
        + "".join(f" | vs {p}, 1 thread" for p in one)
        + " |"
    )
    lines.append("|" + "---|" * (3 + len(peers) + len(one)))
    for w, res in all_results:
        rs = by[w["name"]]
        best = next((r for r in res if r.get("kind") == "sklearn-best"), None)
        cells = []
        for p in peers:
            c = best if p == "best sklearn" else rs.get(p)
            label = "" if p != "best sklearn" or c is None else f" ({c['name']})"
            cells.append(
                f"{ratio(rs.get('ours-fast'), c)} "
                f"[{ratio(rs.get('ours-default'), c)}]{label}"
            )
        res1 = w.get("results_1thread") or []
        rs1 = {r["name"]: r for r in res1}
        best1 = next((r for r in res1 if r.get("kind") == "sklearn-best"), None)
        for p in one:
            c = best1 if p == "best sklearn" else rs1.get(p)
            cells.append(
                f"{ratio(rs1.get('ours-fast'), c)} "
                f"[{ratio(rs1.get('ours-default'), c)}]"
            )
        busy = w.get("busy_cores")
        mark = f" (busy: {busy:.2f} cores)" if busy is not None and busy > 0.3 else ""
        lines.append(
            f"| {w['name']}{mark} | {fmt_t(rs.get('ours-fast'))} | "
            f"{fmt_t(rs.get('ours-default'))} | " + " | ".join(cells) + " |"
        )
    expected = {"ours-default", "ours-fast", "SGDRegressor", "skorch", "tutorial"}
    missing = [
        (w["name"], sorted(expected - set(by[w["name"]])))
        for w, _ in all_results
        if expected - set(by[w["name"]])
    ]
    if missing:
        lines += [
            "",
            "**Incomplete workloads** (the workload's process hit its time "
            "limit; the rows it finished before are kept, see run.log for the "
            "lines it printed): "
            + "; ".join(f"{n}: missing {', '.join(m)}" for n, m in missing)
            + ".",
        ]
    lines += ["", "## Per workload", ""]
    for w, res in all_results:
        rs = by[w["name"]]
        lines += [
            f"### {w['name']}",
            "",
            f"n={w['n']}, d={w['d']}, {w['dtype']}, loss={w['loss']}, "
            f"penalty={w['penalty']}, alpha={w['alpha']:.4g}"
            + (f", l1_ratio={w['l1_ratio']}" if w["penalty"] == "elasticnet" else "")
            + (f", epsilon={w['epsilon']:.4g}" if w["loss"] == "huber" else "")
            + (
                ", features scaled 1e-2..1e2, every contestant in "
                "make_pipeline(StandardScaler(), ...)"
                if w["pipeline"]
                else ""
            )
            + f". f* = {w['f_star']:.8g} (reference: {w['ref_note']}). "
            f"X is {w['n'] * w['d'] * np.dtype(w['dtype']).itemsize / 2**20:.0f}"
            " MiB.",
            "",
        ]
        if "ridge_trial" in w:
            lines += [
                "Ridge solver trial (50k-row subsample, best of 2): "
                + ", ".join(f"{k} {v:.3f}s" for k, v in w["ridge_trial"].items())
                + f" -> {w['ridge_solver']}.",
                "",
            ]
        lines.append(
            "| contestant | time to 1e-3 (s) | own config: wall (s) | "
            "own config: final gap | peak extra RSS (MiB) | t2t ratio "
            "ours-fast / this | t2t ratio ours-default / this | settings |"
        )
        lines.append("|" + "---|" * 8)
        for r in res:
            if "own" not in r:
                lines.append(
                    f"| {r['name']} | error | | | | | | {r.get('error', '')[-200:]!r} |"
                )
                continue
            pk = r.get("peak_extra_bytes")
            lines.append(
                f"| {r['name']} | {fmt_t(r)} | {r['own_time']:.3g} | "
                f"{r['own_gap']:.2e} | {'' if pk is None else f'{pk / 2**20:.0f}'} | "
                f"{ratio(rs.get('ours-fast'), r)} | {ratio(rs.get('ours-default'), r)}"
                f" | {r['note'].replace('|', '/')}"
                + (f"; {r['stopped']}" if r.get("stopped") else "")
                + " |"
            )
        lines.append("")
    lines += targets_section(meta, all_results, engine)
    lines += [
        "## Our engine: seconds per epoch vs the bandwidth floor",
        "",
        'floor = bytes of X / read bandwidth. "default epoch" is the '
        "marginal cost of one more epoch with default settings (the Gram "
        "path for the squared loss: O(d^2) per epoch after one pass); "
        '"direct epoch" the same through the row-reading path (squared '
        'loss as huber with epsilon=inf; eta0 given). "max_iter=1 fit" '
        "is a whole fit of one epoch: validation, step-size estimate, one "
        "pass (the Gram matrix for the squared loss).",
        "",
        "| workload | X (MiB) | floor (ms) | max_iter=1 fit (ms) | default "
        "epoch (ms) | direct epoch (ms) | direct / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, e in engine:
        if "error" in e:
            lines.append(f"| {w['name']} | error: {e['error'][-150:]!r} | | | | | |")
            continue
        xb = w["n"] * w["d"] * np.dtype(w["dtype"]).itemsize
        floor = xb / meta["bandwidth"]
        lines.append(
            f"| {w['name']} | {xb / 2**20:.0f} | {floor * 1e3:.1f} | "
            f"{e['default_first_fit_s'] * 1e3:.0f} | "
            f"{e['default_epoch_s'] * 1e3:.2f} | "
            f"{e['direct_epoch_s'] * 1e3:.1f} | {e['direct_epoch_s'] / floor:.2f} |"
        )
    lines += ["", "## GPU", ""]
    if "skipped" in gpu:
        lines.append(f"Skipped: {gpu['skipped']}.")
    else:
        lines.append("```\n" + json.dumps(gpu, indent=1) + "\n```")
    lines += ["", "![gap vs time](gap_vs_time.png)", ""]
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write("\n".join(lines))


def targets_section(meta, all_results, engine):
    """The issue's targets, checked on this run's numbers."""
    by = {w["name"]: (w, {r["name"]: r for r in res}) for w, res in all_results}
    eng = {w["name"]: e for w, e in engine}
    lines = ["## The issue's targets", ""]
    key = next((k for k in by if k.startswith("squared 1e6x100 f32")), None)
    if key is None:
        key = next((k for k in by if k.startswith("squared")), None)
    if key is not None:
        w, rs = by[key]
        xb = w["n"] * w["d"] * np.dtype(w["dtype"]).itemsize
        sgd = rs.get("SGDRegressor")
        ridge = next((r for r in rs.values() if r.get("kind") == "sklearn-best"), None)
        lines += [
            f"On **{key}**:",
            "",
            "| target | ours-default | ours-fast | verdict (ours-fast) |",
            "|---|---|---|---|",
        ]

        def t2t(r):
            return None if r is None or "own" not in r else r["t2t"]

        def cell(v, fmt="{:.3g} s"):
            return "not reached" if v is None else fmt.format(v)

        a, f = rs.get("ours-default"), rs.get("ours-fast")

        def verdict(v, lim):
            return "met" if v is not None and v <= lim else "NOT met"

        if sgd and "own" in sgd:
            lim = sgd["own_time"] / 10
            lines.append(
                f"| t2t <= SGDRegressor default fit time / 10 = {lim:.3g} s "
                f"| {cell(t2t(a))} | {cell(t2t(f))} | "
                f"{verdict(t2t(f), lim)}"
                " |"
            )
        if ridge and t2t(ridge) is not None:
            lim = t2t(ridge)
            lines.append(
                f"| t2t <= {ridge['name']} t2t = {lim:.3g} s | "
                f"{cell(t2t(a))} | {cell(t2t(f))} | "
                f"{verdict(t2t(f), lim)}"
                f" (ratio {ratio(f, ridge)}) |"
            )
        e = eng.get(key, {})
        if "direct_epoch_s" in e:
            floor = xb / meta["bandwidth"]
            lines.append(
                f"| epoch <= 2 x bandwidth floor ({floor * 1e3:.1f} ms) | default "
                f"(Gram) epoch {e['default_epoch_s'] * 1e3:.2f} ms; one-epoch fit "
                f"{e['default_first_fit_s'] * 1e3:.0f} ms = "
                f"{e['default_first_fit_s'] / floor:.1f} x floor | direct-path epoch "
                f"{e['direct_epoch_s'] * 1e3:.1f} ms = "
                f"{e['direct_epoch_s'] / floor:.1f} x floor | "
                f"{'met' if e['direct_epoch_s'] <= 2 * floor else 'NOT met'} "
                "(direct path) |"
            )
        pk = [r.get("peak_extra_bytes") for r in (a, f)]
        if None not in pk and a and f and "own" in a and "own" in f:
            lines.append(
                f"| extra memory <= 10% of X ({0.1 * xb / 2**20:.0f} MiB) | "
                f"{pk[0] / 2**20:.0f} MiB ({pk[0] / xb:.0%}) | {pk[1] / 2**20:.0f} MiB "
                f"({pk[1] / xb:.0%}) | {'met' if max(pk) <= 0.1 * xb else 'NOT met'} |"
            )
        lines.append("")
    lines += [
        ">= 5x faster than the tutorial loop (tutorial t2t / ours t2t):",
        "",
        "| workload | ours-fast | ours-default | verdict (ours-fast) |",
        "|---|---|---|---|",
    ]
    for name, (w, rs) in by.items():
        tut = rs.get("tutorial")
        cells = []
        for o in ("ours-fast", "ours-default"):
            r = ratio(tut, rs.get(o))  # tutorial / ours
            cells.append(r)
        f, tut_ok = rs.get("ours-fast"), tut is not None and "own" in tut
        verdict = "?"
        if f and "own" in f and tut_ok:
            if f["t2t"] is None:
                verdict = "ours not reached"
            elif tut["t2t"] is None:
                verdict = (
                    f"met (> {tut['t2t_lower'] / f['t2t']:.3g}x)"
                    if tut["t2t_lower"] / f["t2t"] >= 5
                    else f"unclear (tutorial not reached in {tut['t2t_lower']:.3g} s)"
                )
            else:
                verdict = "met" if tut["t2t"] / f["t2t"] >= 5 else "NOT met"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {verdict} |")
    lines.append("")
    return lines


def plot(out_dir, all_results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(all_results)
    cols = min(k, 4)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False
    )
    styles = {
        "ours-default": ("C0", "o-"),
        "ours-fast": ("C3", "s-"),
        "ours-lbfgs": ("C9", ".:"),
        "SGDRegressor": ("C1", "^-"),
        "skorch": ("C4", "v-"),
        "tutorial": ("C2", "d-"),
    }
    for ax, (w, res) in zip(axes.flat, all_results):
        for r in res:
            if "trace" not in r:
                continue
            t = [p[0] for p in r["trace"]]
            g = [max(p[1], 1e-12) if np.isfinite(p[1]) else np.nan for p in r["trace"]]
            c, m = styles.get(r["name"], ("C5", "x-"))
            ax.loglog(t, g, m, color=c, ms=3, lw=1, label=r["name"])
        ax.axhline(TARGET, color="k", lw=0.6, ls="--")
        ax.set_title(w["name"], fontsize=9)
        ax.set_xlabel("wall time (s)", fontsize=8)
        ax.set_ylabel("relative gap", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        else:
            ax.text(
                0.5,
                0.5,
                "no results (time limit)",
                ha="center",
                transform=ax.transAxes,
                fontsize=8,
            )
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "gap_vs_time.png"), dpi=110)


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, < 2 minutes")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="cuda: also run the GPU section (1e7 x 100 float32)",
    )
    ap.add_argument("--only", default=None, help="substring of workload names")
    ap.add_argument(
        "--no-one-thread",
        action="store_true",
        help="skip the second, one-thread timing of every workload",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite RESULTS.md and the plot from --out/results.json",
    )
    args = ap.parse_args()
    if args.report_only:
        path = os.path.join(args.out, "results.json")
        if not os.path.exists(path):
            path = os.path.join(args.out, "results.partial.json")
        with open(path) as f:
            data = json.load(f)
        data["meta"].setdefault("bandwidth_end", data["meta"]["bandwidth"])
        data["meta"].setdefault("load_end", float("nan"))
        data["meta"].setdefault("noise_median", float("nan"))
        data["meta"].setdefault("noise_p90", float("nan"))
        all_results = [(w["spec"], w["results"]) for w in data["workloads"]]
        for spec, results in all_results:
            # the derived fields, with today's rules (one f* for both columns)
            summarise(spec, results + (spec.get("results_1thread") or []))
        if path.endswith("results.json"):
            with open(path, "w") as f:
                json.dump(data, f, indent=1, default=float)
        engine = [
            (w["spec"], {k: v for k, v in e.items() if k != "workload"})
            for w, e in zip(data["workloads"], data["engine"])
        ]
        write_report(args.out, data["meta"], all_results, engine, data["gpu"])
        plot(args.out, all_results)
        return
    warnings.simplefilter("ignore")
    os.makedirs(args.out, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    import sklearn
    from threadpoolctl import threadpool_info

    import sklearn_gd

    try:
        import skorch

        skorch_v = skorch.__version__
    except ImportError:
        skorch_v = "not installed"
    commit = os.environ.get("SKLEARN_GD_COMMIT")  # set when testing a snapshot
    if not commit:
        try:
            commit = subprocess.run(
                ["git", "-C", _setup.ROOT, "describe", "--always", "--dirty"],
                capture_output=True,
                text=True,
            ).stdout.strip()
        except OSError:
            commit = "unknown"
    pools = ", ".join(
        f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()
    )
    threads = (
        f"torch.get_num_threads()={torch.get_num_threads()}; threadpoolctl: {pools}"
    )
    log(f"threads: {threads}")
    bw = bandwidth()
    log(f"read bandwidth: {bw / 1e9:.1f} GB/s")
    meta = dict(
        command=" ".join(["python", "benchmarks/run.py"] + sys.argv[1:]),
        mode="quick" if args.quick else "full",
        date=time.strftime("%Y-%m-%d %H:%M"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        torch=torch.__version__,
        sklearn=sklearn.__version__,
        skorch=skorch_v,
        sklearn_gd_path=os.path.dirname(sklearn_gd.__file__),
        commit=commit,
        threads=threads,
        bandwidth=bw,
        load_start=os.getloadavg()[0],
        target=TARGET,
    )
    if skorch_v == "not installed":
        log("skorch is not installed: its rows will show an error")

    all_results, engine = [], []
    for w in workloads(args.quick):
        if args.only and args.only not in w["name"]:
            continue
        spec = complete_spec(w, args.quick)
        log(f"workload: {spec['name']}")
        with tempfile.TemporaryDirectory(prefix="sgdbench_") as workdir:
            spec = build_workload(spec, workdir, log)
            # a generous limit: each contestant may use its own fit (repeated)
            # plus time_cap for the search; on a loaded machine big workloads
            # need it
            limit = 30 * spec["time_cap"] + 300
            spec["busy_cores"] = wait_until_quiet(log)
            results, e = run_workload_child(workdir, limit, log)
            engine.append((spec, e))
            results1 = []
            if not args.no_one_thread:
                log("  the same, one thread in every library:")
                wait_until_quiet(log)
                results1, _ = run_workload_child(
                    workdir, limit, log, threads=1, name="results1.json"
                )
        summarise(spec, results + results1)  # one f* for both
        spec["results_1thread"] = results1
        all_results.append((spec, results))
        # partial results after every workload (a long run can be inspected,
        # or salvaged with --report-only if it is interrupted)
        with open(os.path.join(args.out, "results.partial.json"), "w") as f:
            json.dump(
                {
                    "meta": meta,
                    "workloads": [{"spec": s, "results": r} for s, r in all_results],
                    "engine": [{"workload": s["name"], **e} for s, e in engine],
                    "gpu": {"skipped": "partial results"},
                },
                f,
                default=float,
            )

    gpu = (
        gpu_section(log, bw)
        if args.device == "cuda"
        else {"skipped": "run with --device cuda to include it"}
    )
    if args.device == "cuda" and "skipped" not in gpu:
        pass
    elif args.device == "cuda":
        print("GPU section skipped: torch.cuda.is_available() is False")
    meta["bandwidth_end"] = bandwidth()
    meta["load_end"] = os.getloadavg()[0]
    spreads = []
    for _, res in all_results:
        for r in res:
            for p in r.get("ladder", []) + ([r["own"]] if "own" in r else []):
                if len(p["times"]) > 1:
                    spreads.append(max(p["times"]) / min(p["times"]) - 1)
    meta["noise_median"] = float(np.median(spreads)) if spreads else 0.0
    meta["noise_p90"] = float(np.percentile(spreads, 90)) if spreads else 0.0
    meta["total_s"] = time.perf_counter() - t_start

    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(
            {
                "meta": meta,
                "workloads": [{"spec": s, "results": r} for s, r in all_results],
                "engine": [{"workload": s["name"], **e} for s, e in engine],
                "gpu": gpu,
            },
            f,
            indent=1,
            default=float,
        )
    write_report(args.out, meta, all_results, engine, gpu)
    plot(args.out, all_results)
    try:
        os.remove(os.path.join(args.out, "results.partial.json"))
    except OSError:
        pass
    log(f"wrote {args.out}/RESULTS.md, results.json, gap_vs_time.png")


if __name__ == "__main__":
    main()
