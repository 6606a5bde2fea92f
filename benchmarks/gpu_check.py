"""One script for a CUDA machine: tests, array API checks, streaming, speed.

Run it where ``torch.cuda.is_available()`` is True::

    python benchmarks/gpu_check.py --out benchmarks/results

It runs, each in its own guarded section (a failure is reported, the rest
goes on), within about 8 minutes on an H100:

1. every ``gpu``-marked test and sklearn's array API checks for torch on
   CUDA (``tests/test_common.py``), in subprocesses;
2. the bandwidth floors: a read of ``X`` on the device, a device-to-device
   copy, host-to-device copies from pinned and pageable memory;
3. the 1e7 x 100 float32 squared-loss default on the GPU, against the CPU
   peers timed on the same machine (Ridge's Cholesky solve with every core),
   each with its relative objective gap;
4. row-reading epochs (huber, log_loss; full batch and minibatch) against the
   device's read floor;
5. the streaming path: a memmap larger than half the GPU's free memory (free
   memory is reduced by a ballast allocation so that the file stays small),
   peak device memory against ``peak_bound_bytes``, and throughput against
   the host-to-device bandwidth.

It prints one summary table and writes it to ``<out>/GPU.md`` (and the raw
figures to ``<out>/gpu_check.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

T0 = time.perf_counter()
ROWS: list[tuple[str, str, str, str]] = []  # (section, what, figure, target)
RAW: dict = {}


def log(msg):
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def row(section, what, figure, target=""):
    ROWS.append((section, what, figure, target))
    log(f"{section} | {what} | {figure} | {target}")


DEV = "cuda"  # --device cpu runs a smoke test of the script itself


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def mem_info():
    if DEV == "cuda":
        return torch.cuda.mem_get_info()
    return 24 * 2**30, 24 * 2**30


def allocated(peak=False):
    if DEV != "cuda":
        return 0
    if peak:
        return torch.cuda.max_memory_allocated()
    return torch.cuda.memory_allocated()


def best_of(fn, reps=3):
    ts = []
    out = None
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return min(ts), out


def section(name, budget_end):
    """Decorator: run a section unless the time budget is spent; log errors."""

    def wrap(fn):
        def run(*args, **kwargs):
            if time.perf_counter() - T0 > budget_end:
                row(name, "skipped", "time budget spent")
                return None
            log(f"--- {name}")
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # report and go on: one run, many answers
                traceback.print_exc()
                row(name, "ERROR", f"{type(exc).__name__}: {exc}"[:200])
                return None
            finally:
                if DEV == "cuda":
                    torch.cuda.empty_cache()

        return run

    return wrap


# ----------------------------------------------------------------- tests
def pytest_section(args):
    @section("tests", args.budget * 0.35)
    def run():
        env = dict(
            os.environ,
            PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
            SCIPY_ARRAY_API="1",
        )
        jobs = [
            ("gpu-marked tests", ["-m", "gpu"]),
            (
                "array API checks (torch, cuda)",
                ["tests/test_common.py", "-k", "array_api and cuda"],
            ),
            (
                "data, streaming, robustness suites on a CUDA machine",
                [
                    "tests/test_data.py",
                    "tests/test_streaming.py",
                    "tests/test_robustness.py",
                    "-x",
                ],
            ),
        ]
        for what, extra in jobs:
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *extra,
            ]
            t0 = time.perf_counter()
            p = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
            )
            tail = p.stdout.strip().splitlines()
            print("\n".join(tail[-40:]), flush=True)
            if p.returncode not in (0, 5):
                print(p.stderr[-3000:], flush=True)
            summary = tail[-1] if tail else p.stderr[-200:]
            row(
                "tests",
                what,
                f"rc {p.returncode}: {summary} ({time.perf_counter() - t0:.0f} s)",
                "rc 0",
            )
            RAW.setdefault("tests", {})[what] = {"rc": p.returncode, "summary": summary}

    run()


# ------------------------------------------------------------- bandwidth
def copy_time(dst, src, reps):
    return best_of(lambda: dst.copy_(src, non_blocking=src.is_pinned()), reps)[0]


def bandwidth_section(args):
    @section("bandwidth", args.budget)
    def run():
        n, d = args.n, args.d
        X = torch.empty(n, d, device=DEV)
        X.normal_(generator=torch.Generator(DEV).manual_seed(0))
        t_read, _ = best_of(lambda: X.sum(), 5)
        read = X.numel() * 4 / t_read
        t_copy = copy_time(torch.empty_like(X), X, 5)
        dev = torch.empty(2**28, device=DEV)  # 1 GiB
        t_pin = copy_time(dev, torch.empty(2**28, pin_memory=DEV == "cuda"), 5)
        t_page = copy_time(dev, torch.empty(2**28), 3)
        RAW["bandwidth"] = {
            "read_GBps": read / 1e9,
            "d2d_GBps": 2 * X.numel() * 4 / t_copy / 1e9,
            "h2d_pinned_GBps": 2**30 / t_pin / 1e9,
            "h2d_pageable_GBps": 2**30 / t_page / 1e9,
            "read_X_s": t_read,
        }
        b = RAW["bandwidth"]
        row(
            "bandwidth",
            f"read of X ({n:.0e} x {d} f32, {X.numel() * 4 / 1e9:.1f} GB)",
            f"{t_read * 1e3:.2f} ms, {b['read_GBps']:.0f} GB/s",
        )
        row(
            "bandwidth",
            "device-to-device copy (read + write)",
            f"{b['d2d_GBps']:.0f} GB/s",
        )
        row(
            "bandwidth",
            "host-to-device, pinned / pageable",
            f"{b['h2d_pinned_GBps']:.1f} / {b['h2d_pageable_GBps']:.1f} GB/s",
        )
        return X

    return run()


# ----------------------------------------------------------------- speed
def make_problem(X, seed=0):
    g = torch.Generator(DEV).manual_seed(seed)
    coef = torch.randn(X.shape[1], device=DEV, generator=g)
    y = X @ coef + 3.0 + torch.randn(X.shape[0], device=DEV, generator=g)
    return y


def ridge_gap_fn(X, y, alpha):
    """Relative objective gap of (w, b) for SGDRegressor's squared + l2
    objective, from float64 centred moments computed on the device."""
    n, d = X.shape
    mx = X.double().mean(0) if X.numel() < 2**31 else None
    if mx is None:
        mx = sum(X[s : s + 2**20].double().sum(0) for s in range(0, n, 2**20)) / n
    my = y.double().mean()
    G = torch.zeros(d, d, device=X.device, dtype=torch.float64)
    c = torch.zeros(d, device=X.device, dtype=torch.float64)
    yy = torch.zeros((), device=X.device, dtype=torch.float64)
    for s in range(0, n, 2**20):
        Xc = X[s : s + 2**20].double() - mx
        yc = y[s : s + 2**20].double() - my
        G += Xc.T @ Xc
        c += Xc.T @ yc
        yy += yc @ yc
    G, c, yy = G / n, c / n, yy / n

    def obj(w, b):
        w = torch.as_tensor(np.asarray(w, dtype=np.float64).ravel(), device=X.device)
        b = float(np.asarray(b, dtype=np.float64).ravel()[0])
        off = my - mx @ w - b
        return float(
            0.5 * (yy - 2 * c @ w + w @ G @ w + off * off) + 0.5 * alpha * w @ w
        )

    w_star = torch.linalg.solve(
        G + alpha * torch.eye(d, device=X.device, dtype=torch.float64), c
    )
    f_star = obj(w_star.cpu().numpy(), float(my - mx @ w_star))
    return lambda w, b: (obj(w, b) - f_star) / abs(f_star)


def to_np(a):
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)


def speed_section(args, X):
    @section("speed 1e7", args.budget * 0.7)
    def run():
        from sklearn.linear_model import Ridge

        from sklearn_gd import TorchSGDRegressor

        n = X.shape[0]
        y = make_problem(X)
        gap = ridge_gap_fn(X, y, 1e-4)
        TorchSGDRegressor().fit(X[:1000], y[:1000])  # CUDA context, kernels
        t_ours, est = best_of(lambda: TorchSGDRegressor().fit(X, y), 3)
        g_ours = gap(to_np(est.coef_), to_np(est.intercept_))
        row(
            "speed 1e7",
            "ours default, X a CUDA tensor",
            f"{t_ours:.3f} s, gap {g_ours:.1e}, {est.n_iter_} epochs",
            "gap <= 1e-4",
        )
        Xh, yh = X.cpu().numpy(), y.cpu().numpy()
        t_host, est_h = best_of(lambda: TorchSGDRegressor(device=DEV).fit(Xh, yh), 2)
        g_host = gap(to_np(est_h.coef_), to_np(est_h.intercept_))
        row(
            "speed 1e7",
            "ours default, X numpy on the host, device='cuda'",
            f"{t_host:.3f} s, gap {g_host:.1e}",
        )
        t_ridge, r = best_of(
            lambda: Ridge(alpha=1e-4 * n, solver="cholesky").fit(Xh, yh), 2
        )
        g_ridge = gap(r.coef_, r.intercept_)
        cores = os.cpu_count()
        row(
            "speed 1e7",
            f"Ridge(cholesky), CPU ({cores} cores, same machine)",
            f"{t_ridge:.3f} s, gap {g_ridge:.1e}",
        )
        row(
            "speed 1e7",
            "speed-up over the best CPU peer (X on the GPU)",
            f"{t_ridge / t_ours:.1f}x",
            ">= 50x",
        )
        row(
            "speed 1e7",
            "speed-up over the best CPU peer (X on the host)",
            f"{t_ridge / t_host:.1f}x",
        )
        RAW["speed"] = {
            "ours_s": t_ours,
            "ours_gap": g_ours,
            "ours_host_s": t_host,
            "ridge_s": t_ridge,
            "ridge_gap": g_ridge,
            "cores": cores,
        }
        return y

    return run()


def epoch_section(args, X, y):
    @section("epochs", args.budget * 0.8)
    def run():
        from sklearn_gd import TorchSGDClassifier, TorchSGDRegressor

        floor = RAW["bandwidth"]["read_X_s"]
        yb = (y > y.median()).float()
        cases = [
            ("huber, full batch", TorchSGDRegressor, dict(loss="huber"), y),
            (
                "huber, batch_size=65536",
                TorchSGDRegressor,
                dict(loss="huber", batch_size=65536),
                y,
            ),
            ("log_loss, full batch", TorchSGDClassifier, dict(loss="log_loss"), yb),
            (
                "log_loss, batch_size=65536",
                TorchSGDClassifier,
                dict(loss="log_loss", batch_size=65536),
                yb,
            ),
        ]
        for what, cls, kw, target in cases:

            def fit(k, cls=cls, kw=kw, target=target):
                return cls(max_iter=k, tol=None, random_state=0, **kw).fit(X, target)

            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit(1)
                hi = 22 if DEV == "cuda" else 6  # a GPU epoch takes milliseconds
                t2, _ = best_of(lambda: fit(2), 3)
                t_hi, _ = best_of(lambda: fit(hi), 3)
            per = (t_hi - t2) / (hi - 2)
            row(
                "epochs",
                f"{what}: one epoch (fits of {hi} and 2 epochs differenced)",
                f"{per * 1e3:.1f} ms = {per / floor:.2f}x the read floor",
                "<= 2x",
            )
            RAW.setdefault("epochs", {})[what] = {"epoch_s": per, "floor_s": floor}

    run()


# ------------------------------------------------------------- streaming
def streaming_section(args):
    @section("streaming", args.budget * 0.9)
    def run():
        import warnings

        from sklearn_gd import TorchSGDRegressor
        from sklearn_gd.objective._streaming import peak_bound_bytes

        sync()
        free, total = mem_info()
        target_free = int(args.stream_gib * 2**30 * 1.6)  # file > free / 2
        ballast = None
        if DEV == "cuda" and free > target_free + 2**30:
            ballast = torch.empty(free - target_free, dtype=torch.uint8, device=DEV)
        free_after, _ = mem_info()
        d = 100
        n = int(args.stream_gib * 2**30 // (4 * d))
        path = os.path.join(tempfile.gettempdir(), "gpu_check_X.f32")
        Xm = np.lib.format.open_memmap(
            path + ".npy", mode="w+", dtype=np.float32, shape=(n, d)
        )
        g = torch.Generator(DEV).manual_seed(1)
        coef = torch.randn(d, device=DEV, generator=g)
        y = np.empty(n, dtype=np.float32)
        step = 2**20
        for s in range(0, n, step):
            m = min(step, n - s)
            chunk = torch.randn(m, d, device=DEV, generator=g)
            Xm[s : s + m] = chunk.cpu().numpy()
            y[s : s + m] = (
                (chunk @ coef + 1.0 + torch.randn(m, device=DEV, generator=g))
                .cpu()
                .numpy()
            )
            del chunk
        Xm.flush()
        del Xm
        X = np.load(path + ".npy", mmap_mode="r")
        row(
            "streaming",
            "memmap X / GPU free memory (after the ballast)",
            f"{X.nbytes / 2**30:.1f} GiB / {free_after / 2**30:.1f} GiB",
            "X > free / 2",
        )
        X.sum(dtype=np.float64)  # page the file in: time the link, not the disk
        base = allocated()
        bound = peak_bound_bytes(n, d, 1, 4, staged=True)
        for what, kw, passes in [
            ("squared default (Gram: 2 passes, centred)", {}, 2),
            (
                "huber, full batch, 4 epochs",
                dict(loss="huber", max_iter=4, tol=None),
                4,
            ),
        ]:
            if DEV == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sync()
                t0 = time.perf_counter()
                est = TorchSGDRegressor(device=DEV, **kw).fit(X, y)
                sync()
                t = time.perf_counter() - t0
            peak = allocated(peak=True) - base
            k = passes or 1
            gbps = k * X.nbytes / t / 1e9
            h2d = RAW.get("bandwidth", {}).get("h2d_pinned_GBps", float("nan"))
            row(
                "streaming",
                f"{what}: time, rate, peak device memory",
                f"{t:.2f} s, {gbps:.1f} GB/s = {gbps / h2d:.0%} of pinned H2D; "
                f"peak {peak / 2**20:.0f} MiB vs bound {bound / 2**20:.0f} MiB",
                ">= 70% of H2D; peak <= bound",
            )
            RAW.setdefault("streaming", {})[what] = {
                "s": t,
                "GBps": gbps,
                "peak": peak,
                "bound": bound,
                "n_iter": int(est.n_iter_),
            }
        del ballast
        os.remove(path + ".npy")

    run()


# ------------------------------------------------------------ diagnostics
def diagnose_section(args, X, y):
    """Where time goes: host syncs in a minibatch epoch (torch's sync debug
    mode) and a profile of the fit from host memory."""

    @section("diagnose", args.budget * 0.85)
    def run():
        import cProfile
        import io
        import pstats
        import warnings

        from sklearn_gd import TorchSGDRegressor

        est = TorchSGDRegressor(
            loss="huber", batch_size=65536, max_iter=1, tol=None, random_state=0
        )
        sites: dict[str, int] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                est.fit(X, y)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        for w in caught:
            if "synchroniz" not in str(w.message):
                continue
            key = f"{os.path.basename(w.filename)}:{w.lineno}"
            sites[key] = sites.get(key, 0) + 1
        row(
            "diagnose",
            "host syncs in one huber epoch of 153 batches",
            ", ".join(f"{k} x{v}" for k, v in sorted(sites.items())) or "none",
        )
        Xh, yh = X.cpu().numpy(), y.cpu().numpy()
        prof = cProfile.Profile()
        prof.enable()
        TorchSGDRegressor(device=DEV).fit(Xh, yh)
        sync()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
        print(buf.getvalue(), flush=True)
        RAW["profile_host_fit"] = buf.getvalue()

    run()


# ----------------------------------------------------------------- report
def env_rows():
    import sklearn

    if DEV == "cuda":
        p = torch.cuda.get_device_properties(0)
        free, total = mem_info()
        row(
            "machine",
            "GPU",
            f"{p.name}, {total / 2**30:.0f} GiB, {p.multi_processor_count} SMs",
        )
    row(
        "machine",
        "software",
        f"torch {torch.__version__}, sklearn "
        f"{sklearn.__version__}, numpy {np.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPU cores",
    )


def write(out):
    os.makedirs(out, exist_ok=True)
    lines = [
        "# GPU check",
        "",
        f"`python benchmarks/gpu_check.py`, {time.strftime('%Y-%m-%d')}, "
        f"{time.perf_counter() - T0:.0f} s in all.",
        "",
        "| section | what | figure | target |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c.replace('|', '/')} | {d} |" for a, b, c, d in ROWS]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "GPU.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "gpu_check.json"), "w") as f:
        json.dump(RAW, f, indent=1, default=str)
    print("\n" + text, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument(
        "--budget",
        type=float,
        default=450.0,
        help="seconds; sections not started by their share are skipped",
    )
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--stream-gib", type=float, default=6.0)
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument(
        "--device",
        default="cuda",
        choices=["cuda", "cpu"],
        help="cpu: a small smoke test of this script",
    )
    args = ap.parse_args()
    global DEV
    DEV = args.device
    if DEV == "cuda" and not torch.cuda.is_available():
        print("torch.cuda.is_available() is False: nothing to check here.")
        return 0
    env_rows()
    try:
        if not args.skip_tests:
            pytest_section(args)
        X = bandwidth_section(args)
        if X is not None:
            y = speed_section(args, X)
            if y is not None:
                epoch_section(args, X, y)
                if DEV == "cuda":
                    diagnose_section(args, X, y)
            del X, y
        streaming_section(args)
    finally:
        write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
