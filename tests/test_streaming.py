"""Streaming: the partial_fit contract and out-of-core fits on memmaps.

Equalities are exact (``assert_array_equal``) where the streamed and the
in-memory fit perform the same floating-point operations on the same values
(CPU): batches of at most a chunk, the Gram path, early stopping. They are
approximate where a batch is summed chunk by chunk (rounding of a float64 sum
of a few chunks: rtol 1e-10) or where ``eta0="auto"`` is estimated from the
one-pass Gram instead of power iteration over X (rtol 1e-6 on float64).
"""

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import SGDRegressor

import sklearn_gd.objective._streaming as streaming
from sklearn_gd import TorchSGDRegressor
from sklearn_gd.objective._streaming import (
    HostChunkOracle,
    is_memory_mapped,
    should_stream,
)


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 6)
    y = X @ rng.randn(6) + 0.3 + 0.1 * rng.randn(300)
    return X, y


def _memmap(tmp_path, X, mode="r"):
    path = tmp_path / "X.bin"
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    return np.memmap(path, dtype=X.dtype, mode=mode, shape=X.shape)


# ------------------------------------------------------------- partial_fit
@pytest.mark.parametrize(
    "params",
    [
        dict(learning_rate="constant", eta0=0.01),
        dict(learning_rate="invscaling", eta0=0.05),
        # alpha 0.1: Bottou's first step (~0.6) is stable on this data; at
        # 1e-2 it is 1.65 and the epoch diverges
        dict(learning_rate="optimal", alpha=1e-1),
        dict(learning_rate="constant", eta0=0.01, momentum=0.9),
        # an explicit step: Adam's "auto" one is measured on the data the
        # first call sees (a chunk here, all rows in fit)
        dict(optimizer="adam", learning_rate="constant", eta0=1e-3),
        dict(learning_rate="constant", eta0=0.01, average=7),
        dict(learning_rate="constant", eta0=0.01, penalty="l1", alpha=1e-3),
    ],
    ids=["constant", "invscaling", "optimal", "momentum", "adam", "avg", "l1"],
)
def test_chunked_partial_fit_equals_one_epoch(data, params):
    # chunks that are whole numbers of batches make the same updates in the
    # same order as one epoch of fit: t_, the schedule, the optimizer and the
    # average carry over exactly
    X, y = data
    common = dict(batch_size=10, shuffle=False, **params)
    one = TorchSGDRegressor(max_iter=1, tol=None, **common).fit(X, y)
    reg = TorchSGDRegressor(**common)
    for start in range(0, 300, 50):
        reg.partial_fit(X[start : start + 50], y[start : start + 50])
    assert_array_equal(reg.coef_, one.coef_)
    assert_array_equal(reg.intercept_, one.intercept_)
    assert reg.t_ == one.t_ == 31
    assert reg.n_iter_ == 1 and len(reg.loss_curve_) == 6


def test_partial_fit_counts_like_sgdregressor(data):
    # t_ counts weight updates (plus one); with batch_size=1 that is
    # SGDRegressor's count of samples
    X, y = data
    ours = TorchSGDRegressor(batch_size=1, learning_rate="constant", eta0=1e-3)
    ref = SGDRegressor(learning_rate="constant", eta0=1e-3)
    for start in (0, 120):
        ours.partial_fit(X[start : start + 120], y[start : start + 120])
        ref.partial_fit(X[start : start + 120], y[start : start + 120])
        assert ours.t_ == ref.t_ and ours.n_iter_ == ref.n_iter_ == 1
    full = TorchSGDRegressor(batch_size=None).partial_fit(X, y).partial_fit(X, y)
    assert full.t_ == 3  # one full-batch update per call


def test_partial_fit_mismatches_raise_and_keep_state(data):
    X, y = data
    reg = TorchSGDRegressor().partial_fit(X, y)
    before = (reg.coef_.copy(), reg.t_)
    with pytest.raises(ValueError, match="X has 4 features, but TorchSGDRegressor"):
        reg.partial_fit(X[:, :4], y)
    with pytest.raises(ValueError, match="2 output"):
        reg.partial_fit(X, np.c_[y, y])
    assert_array_equal(reg.coef_, before[0])
    assert reg.t_ == before[1]
    # the output count, not the y shape, must agree: (n, 1) continues a 1-D y
    reg.partial_fit(X, y[:, None])
    assert reg.coef_.shape == (6,)


def test_partial_fit_float32_stream_stays_float32(data):
    X, y = data
    reg = TorchSGDRegressor().partial_fit(X[:100].astype(np.float32), y[:100])
    reg.partial_fit(X[100:], y[100:])  # a float64 chunk is cast, not promoted
    assert reg.coef_.dtype == np.float32 and reg.intercept_.dtype == np.float32
    assert reg.predict(X.astype(np.float32)).dtype == np.float32


def test_partial_fit_keeps_adaptive_rate(data):
    # a diverging step shrinks "adaptive"'s rate; the next call starts there
    X, y = data
    # seeded: an unseeded shuffle order made this test depend on earlier tests
    reg = TorchSGDRegressor(
        eta0=10.0, batch_size=1, learning_rate="adaptive", random_state=0
    )
    reg.partial_fit(X, y)
    rate = reg._solver_state.rate
    assert rate < 10.0 and reg.eta0_ == 10.0
    reg.partial_fit(X, y)
    assert reg._solver_state.rate <= rate


# ---------------------------------------------------------------- memmaps
def test_memmap_detection(tmp_path, data):
    X, _ = data
    mm = _memmap(tmp_path, X)
    assert is_memory_mapped(mm) and is_memory_mapped(np.asarray(mm)[10:])
    assert not is_memory_mapped(X)
    cpu = __import__("torch").device("cpu")
    assert should_stream(np.asarray(mm), cpu) and not should_stream(X, cpu)
    assert should_stream(X, cpu, True) and not should_stream(mm, cpu, False)


@pytest.mark.parametrize("staged", [False, True], ids=["views", "staged"])
@pytest.mark.parametrize(
    "params",
    [
        dict(),  # full-batch squared loss: the Gram path
        dict(batch_size=32, eta0=0.01, random_state=0),  # shuffled minibatches
        dict(batch_size=32, eta0=0.01, shuffle=False, sample_weight=True),
        dict(batch_size=32, eta0=0.01, early_stopping=True, random_state=0),
        dict(loss="huber", batch_size=40, eta0=0.05, random_state=0, average=True),
    ],
    ids=["gram", "shuffled", "weighted", "early_stopping", "huber_avg"],
)
def test_memmap_fit_equals_in_memory(tmp_path, data, monkeypatch, staged, params):
    # staged runs the accelerators' double-buffered copies on the CPU
    monkeypatch.setattr(streaming, "_FORCE_STAGING", staged)
    X, y = data
    X32 = X.astype(np.float32)
    mm = _memmap(tmp_path, X32)
    params = dict(params, max_iter=4, tol=None)
    sw = None
    if params.pop("sample_weight", False):
        sw = np.random.RandomState(1).uniform(0.5, 2, size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no read-only-array warning from torch
        streamed = TorchSGDRegressor(**params).fit(mm, y, sample_weight=sw)
    ref = TorchSGDRegressor(**params).fit(X32, y, sample_weight=sw)
    assert streamed.coef_.dtype == np.float32
    if staged and not params.get("batch_size"):
        # an accelerator's Gram comes from staged chunks, centred, against
        # one uncentred GEMM in memory: the same statistics up to float32
        # rounding of the sums (eps 6e-8 times a few hundred terms)
        assert_allclose(streamed.coef_, ref.coef_, rtol=1e-5, atol=1e-6)
        assert_allclose(streamed.intercept_, ref.intercept_, rtol=1e-5, atol=1e-6)
        # objectives from those statistics: yy - 2 c'w + w'Gw cancels terms
        # of the all-zero model's objective E[y^2] / 2, so the error is
        # absolute at that scale: float32's 6e-8 times a few tens of terms
        zero = 0.5 * float(np.mean(np.asarray(y, dtype=np.float64) ** 2))
        assert_allclose(streamed.loss_curve_, ref.loss_curve_, atol=5e-6 * zero)
        return
    # a chunk is computed as a batch in memory is, through torch's products:
    # the same numbers to the bit
    assert_array_equal(streamed.coef_, ref.coef_)
    assert_array_equal(streamed.intercept_, ref.intercept_)
    assert streamed.loss_curve_ == ref.loss_curve_


def test_large_batches_are_chunked(tmp_path, data, monkeypatch):
    # batches larger than a chunk are accumulated chunk by chunk
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 64)
    monkeypatch.setattr(streaming, "_FORCE_STAGING", True)
    X, y = data
    mm = _memmap(tmp_path, X)
    params = dict(loss="huber", eta0=0.1, max_iter=5, tol=None, batch_size=200)
    streamed = TorchSGDRegressor(random_state=0, **params).fit(mm, y)
    ref = TorchSGDRegressor(random_state=0, **params).fit(X, y)
    # 10 steps whose 200-row sums are accumulated in chunks of 64 instead of
    # at once: a few ulps of the iterates' scale per step (coefficients and
    # losses of order 1, none near 0), < 1e-14 relative; 1e-10 is ample
    assert_allclose(streamed.coef_, ref.coef_, rtol=1e-10)
    assert_allclose(streamed.loss_curve_, ref.loss_curve_, rtol=1e-10)
    # eta0="auto" comes from a one-pass Gram (chunked) instead of power
    # iteration over X: the same number up to rounding
    auto = dict(batch_size=50, max_iter=2, tol=None, random_state=0)
    a = TorchSGDRegressor(**auto).fit(mm, y)
    b = TorchSGDRegressor(**auto).fit(X, y)
    assert_allclose(a.eta0_, b.eta0_, rtol=1e-6)
    assert_allclose(a.coef_, b.coef_, rtol=1e-5)


def test_chunks_are_bounded_in_bytes(tmp_path):
    # a chunk is CHUNK_ROWS rows, fewer for a wide X: 20k float64 features
    # would otherwise make 2.6 GB staging buffers (two pinned, two on device)
    from sklearn_gd.data._data import CHUNK_BYTES, CHUNK_ROWS
    from sklearn_gd.objective._streaming import HostRows

    narrow = np.zeros((10, 100), dtype=np.float32)
    assert HostRows(narrow, "cpu", torch.float32).chunk_rows == CHUNK_ROWS
    wide = np.lib.format.open_memmap(
        tmp_path / "wide.npy", mode="w+", dtype=np.float64, shape=(10, 20_000)
    )
    rows = HostRows(wide, "cpu", torch.float64).chunk_rows
    assert rows == CHUNK_BYTES // (20_000 * 8) and rows * 20_000 * 8 <= CHUNK_BYTES


def test_streaming_oracle_is_used(tmp_path, data, monkeypatch):
    X, y = data
    mm = _memmap(tmp_path, X)
    seen = []
    orig = HostChunkOracle.__init__

    def spy(self, *args, **kwargs):
        seen.append(type(args[0]).__name__)
        orig(self, *args, **kwargs)

    monkeypatch.setattr(HostChunkOracle, "__init__", spy)
    TorchSGDRegressor(batch_size=16, max_iter=1, tol=None).fit(mm, y)
    TorchSGDRegressor(batch_size=16, max_iter=1, tol=None, out_of_core=True).fit(X, y)
    TorchSGDRegressor(batch_size=16, max_iter=1, tol=None, out_of_core=False).fit(mm, y)
    assert seen == ["HostRows", "HostRows"]


_PEAK_SCRIPT = """
import json, resource, sys
import numpy as np
from sklearn_gd import TorchSGDRegressor
from sklearn_gd.objective._streaming import peak_bound_bytes

path, n, d, option, params = sys.argv[1:6]
n, d = int(n), int(d)
X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
y = np.random.default_rng(0).standard_normal(n).astype(np.float32)
# warm up torch's allocators and BLAS thread buffers before the baseline
W = np.random.default_rng(1).standard_normal((20_000, d)).astype(np.float32)
TorchSGDRegressor(max_iter=2).fit(W, W[:, 0])
TorchSGDRegressor(max_iter=1, batch_size=2000).fit(W, W[:, 0])
del W
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
base = status("VmRSS")
# reset the high-water mark so the warm-up's peak does not count
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
out_of_core = {"auto": "auto", "off": False}[option]
TorchSGDRegressor(out_of_core=out_of_core, **json.loads(params)).fit(X, y)
if reset:
    peak = status("VmHWM")
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"extra": peak - base, "bound": peak_bound_bytes(n, d, 1, 4)}))
"""


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and ru_maxrss")
def test_memmap_peak_memory(tmp_path):
    # ru_maxrss counts the mapped file's resident pages: a streamed fit stays
    # within X's size plus the documented bound, a converting fit pays a copy
    n, d = 100_000, 250  # 100 MB of float32
    path = tmp_path / "big.bin"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    rng = np.random.default_rng(0)
    for a in range(0, n, 50_000):
        mm[a : a + 50_000] = rng.standard_normal((50_000, d), dtype=np.float32)
    mm.flush()
    del mm
    script = tmp_path / "peak.py"
    script.write_text(textwrap.dedent(_PEAK_SCRIPT))

    def start(option, params):
        return subprocess.Popen(
            [sys.executable, str(script), str(path), str(n), str(d), option]
            + [json.dumps(params)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(proc):
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-2000:]
        return json.loads(stdout.strip().splitlines()[-1])

    nbytes = n * d * 4
    # the three processes run at once: each pays the torch import
    procs = [
        start("auto", dict(max_iter=3, tol=None)),
        start("auto", dict(batch_size=2000, max_iter=1, tol=None)),
        start("off", dict(max_iter=3, tol=None)),
    ]
    gram, minibatch, copied = (result(p) for p in procs)
    for run in (gram, minibatch):
        assert run["extra"] <= nbytes + run["bound"], (run, nbytes)
    assert copied["extra"] > 1.6 * nbytes, (copied, nbytes)
