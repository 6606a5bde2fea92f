"""The contestants of one workload, run one after the other in one process.

The peak memory of each is its RSS high-water mark (reset through
/proc/self/clear_refs just before its fit, after malloc_trim) minus the RSS
at that moment, with the data already loaded.

Usage: python _child.py WORKDIR OUT.json [NAME,NAME...]
Reads WORKDIR/spec.json, X.npy, y.npy, objective.pkl; writes OUT.json.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _setup  # noqa: E402,F401  (threads, sys.path: before numpy/torch work)
import numpy as np  # noqa: E402
from _contestants import contestants, history_of, params_of  # noqa: E402


def rss_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def timed_fit(make, budget, X, y, reps, history=False):
    """Best-of-``reps`` wall time of a fresh fit; returns (times, estimator)."""
    times, est = [], None
    for _ in range(max(reps, 0)):
        est = make(budget, history=history) if history else make(budget)
        t0 = time.perf_counter()
        est.fit(X, y)
        times.append(time.perf_counter() - t0)
        if times[-1] > 4.0:  # long enough to be its own average
            break
    return times, est


def reps_for(seconds):
    return 3 if seconds < 0.5 else (2 if seconds < 4.0 else 1)


def _malloc_trim():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def first_hit(evaluate, n_epochs, gap, target, lo=0):
    """First epoch in (lo, n_epochs] whose gap is <= target (bisection: the
    full-batch objectives are decreasing up to noise), or None."""
    if gap(evaluate(n_epochs)) > target:
        return None
    hi = n_epochs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if gap(evaluate(mid)) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def run_contestant(c, spec, X, y, objective):
    target, f_ref, cap = spec["target"], spec["f_ref"], spec["time_cap"]
    res = {"name": c.name, "note": c.note, "kind": c.kind, "ladder": []}

    def gap(v):
        return (v - f_ref) / abs(f_ref)

    # warm-up on a few rows: loads code and thread pools, so that neither the
    # timings nor the memory peak below include one-off process costs
    try:
        c.make(2).fit(X[:256], y[:256])
    except Exception:  # noqa: BLE001 (a solver may reject tiny data; harmless)
        pass
    # 1) the contestant's own configuration: wall time, quality, peak memory
    gc.collect()
    _malloc_trim()
    base = rss_status()["VmRSS"]
    ok = reset_peak()
    est = c.make(None)
    t0 = time.perf_counter()
    est.fit(X, y)
    t_first = time.perf_counter() - t0
    peak = rss_status()["VmHWM"]
    res["peak_extra_bytes"] = (peak - base) if ok else None
    more, _ = timed_fit(c.make, None, X, y, reps_for(t_first) - 1)
    times = [t_first] + more
    spent = sum(times)
    f = est[-1] if hasattr(est, "steps") else est
    n_iter = int(np.max(getattr(f, "n_iter_", 0) or 0))
    res["own"] = {"times": times, "obj": objective(*params_of(est)), "n_iter": n_iter}
    del est, f

    # 2) time to target
    hit = None
    if c.ladder is None:  # a direct solver
        res["ladder"].append({"budget": None, "times": times, "obj": res["own"]["obj"]})
        if gap(res["own"]["obj"]) <= target:
            hit = res["ladder"][-1]
    elif c.history:
        # one fit with the per-epoch parameters; budgets grow x4 until the
        # target is reached or the time cap; then the first epoch that reaches
        # it is timed on its own (best of 2-3)
        budget = min(n_iter, c.ladder[-1]) if n_iter else c.ladder[0]
        budget = max(budget, 1)
        while True:
            ts, e = timed_fit(c.make, budget, X, y, 1, history=True)
            spent += ts[0]
            hist = history_of(e)
            cache = {}

            def evaluate(k, hist=hist, cache=cache):
                if k not in cache:
                    cache[k] = objective(*hist[k - 1])
                return cache[k]

            n_done = len(hist)
            e_star = first_hit(evaluate, n_done, gap, target) if n_done else None
            # a trace for the plot: gaps of geometric epochs, times from a
            # linear model t(k) = t(1) + (k - 1) * per-epoch (measured below)
            res["trace_epochs"] = sorted(
                {
                    min(n_done, int(round(v)))
                    for v in np.geomspace(1, max(n_done, 1), 16)
                }
            )
            res["trace_objs"] = [evaluate(k) for k in res["trace_epochs"]]
            res["history_budget"] = {
                "budget": budget,
                "epochs_run": n_done,
                "time": ts[0],
            }
            if (
                e_star is not None
                or n_done < budget
                or budget >= c.ladder[-1]
                or spent + 4 * ts[0] > cap
            ):
                if e_star is None and n_done >= budget and budget < c.ladder[-1]:
                    res["stopped"] = f"time cap ({cap:.0f} s) at {budget} epochs"
                break
            budget = min(budget * 4, c.ladder[-1])
        t1, _ = timed_fit(c.make, 1, X, y, 1)
        res["time_1_epoch"] = t1[0]
        res["time_per_epoch"] = max(ts[0] - t1[0], 0.0) / max(n_done - 1, 1)
        if e_star is not None:
            ts, e = timed_fit(c.make, e_star, X, y, 1)
            ts += timed_fit(c.make, e_star, X, y, reps_for(ts[0]) - 1)[0]
            v = objective(*params_of(e))
            res["ladder"].append({"budget": e_star, "times": ts, "obj": v})
            hit = res["ladder"][-1]
    else:
        prev = 0
        for budget in c.ladder:
            ts, e = timed_fit(c.make, budget, X, y, 1)
            if ts[0] < 0.5:
                ts += timed_fit(c.make, budget, X, y, 1)[0]
            spent += sum(ts)
            v = objective(*params_of(e))
            res["ladder"].append({"budget": budget, "times": ts, "obj": v})
            if gap(v) <= target:
                hit = res["ladder"][-1]
                break
            if not np.isfinite(v):
                break
            if spent > cap or min(ts) > cap / 3:
                res["stopped"] = f"time cap ({cap:.0f} s) at budget {budget}"
                break
            prev = budget
        if hit is not None and hit["budget"] - prev > 1 and min(hit["times"]) < cap / 4:
            lo, hi = prev, hit["budget"]
            for _ in range(3):  # bisection, 3 steps at most
                if hi - lo <= 1:
                    break
                mid = (lo + hi) // 2
                ts, e = timed_fit(c.make, mid, X, y, 1)
                v = objective(*params_of(e))
                res["ladder"].append(
                    {"budget": mid, "times": ts, "obj": v, "refined": True}
                )
                if gap(v) <= target:
                    hi = mid
                else:
                    lo = mid
    res["hit"] = hit
    res["spent"] = spent
    return res


def main():
    workdir, out_path = sys.argv[1], sys.argv[2]
    only = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    warnings.simplefilter("ignore")
    with open(os.path.join(workdir, "spec.json")) as f:
        spec = json.load(f)
    X = np.load(os.path.join(workdir, "X.npy"))
    y = np.load(os.path.join(workdir, "y.npy"))
    with open(os.path.join(workdir, "objective.pkl"), "rb") as f:
        objective = pickle.load(f)
    results = []
    for c in contestants(spec):
        if only and c.name not in only:
            continue
        t0 = time.perf_counter()
        try:
            r = run_contestant(c, spec, X, y, objective)
        except Exception as exc:  # noqa: BLE001 (report, keep going)
            import traceback

            r = {
                "name": c.name,
                "kind": c.kind,
                "error": repr(exc),
                "traceback": traceback.format_exc()[-3000:],
            }
        r["wall"] = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "name": c.name,
                    "wall": r["wall"],
                    "own": r.get("own"),
                    "hit": r.get("hit"),
                    "peak": r.get("peak_extra_bytes"),
                    "error": r.get("error"),
                }
            ),
            flush=True,
        )
        results.append(r)
        with open(out_path + ".tmp", "w") as f:  # atomic: the parent may kill us
            json.dump(results, f)
        os.replace(out_path + ".tmp", out_path)
    del X
    gc.collect()
    try:
        eng = engine_measure(workdir, spec)
    except Exception as exc:  # noqa: BLE001
        eng = {"error": repr(exc)}
    with open(out_path, "w") as f:
        json.dump({"contestants": results, "engine": eng}, f)


def engine_measure(workdir, spec):
    """Seconds per epoch of our engine (marginal cost of 10 more epochs)."""
    from sklearn_gd import TorchSGDRegressor

    warnings.simplefilter("ignore")
    X = np.load(os.path.join(workdir, "X.npy"))
    y = np.load(os.path.join(workdir, "y.npy"))
    if spec["pipeline"]:
        from sklearn.preprocessing import StandardScaler

        X = StandardScaler().fit_transform(X)
    from _contestants import problem_params

    pp = problem_params(spec)

    def best(kw, k, reps=2 if spec.get("quick") else 3):
        ts = []
        for _ in range(reps):
            est = TorchSGDRegressor(**kw, max_iter=k, tol=None)
            t0 = time.perf_counter()
            est.fit(X, y)
            ts.append(time.perf_counter() - t0)
        return min(ts), ts

    res = {}
    k1, k2 = 2, 12
    t1, ts1 = best(pp, k1)
    t2, ts2 = best(pp, k2)
    res["default_first_fit_s"] = best(pp, 1)[0]  # max_iter=1: setup + first pass
    res["default_epoch_s"] = max(t2 - t1, 0.0) / (k2 - k1)
    res["default_times"] = {"k1": ts1, "k2": ts2}
    # the direct (row-reading) path on the squared loss: huber with an
    # infinite threshold is the squared loss through the direct oracle; an
    # explicit eta0 skips the step-size estimate
    kw = dict(pp, loss="huber", epsilon=1e30, eta0=1.0 / spec["lipschitz"])
    if spec["loss"] != "squared_error":
        kw = dict(pp, eta0=1.0 / spec["lipschitz"])
    t1, ts1 = best(kw, k1)
    t2, ts2 = best(kw, k2)
    res["direct_epoch_s"] = max(t2 - t1, 0.0) / (k2 - k1)
    res["direct_times"] = {"k1": ts1, "k2": ts2}
    return res


if __name__ == "__main__":
    main()
