"""Every script in examples/ runs in fast mode and prints the seed figures.

A module fixture runs the scripts in subprocesses, as many at a time as
there are cores (``_scripts.py``), because each pays the torch/sklearn
import cost; the tests then read their own script's result. Fast mode
shrinks sizes and frames.
"""

import os
import re
from pathlib import Path

import pytest
from _scripts import run_scripts

# subprocesses / a cluster: run by .ci/run and `pytest -m slow`
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# the gallery's sections are sub-folders (the seed tutorials: examples/seeds)
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))
PATHS = {p.name: p for p in EXAMPLES}
TIMEOUT = 240


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run every example; map name -> (returncode, output, out_dir)."""
    env = dict(os.environ)
    env.update(SKLEARN_GD_FAST="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )
    jobs = {}
    for script in EXAMPLES:
        out = tmp_path_factory.mktemp(script.stem)
        jobs[script.name] = ([str(script)], out, {"SKLEARN_GD_EXAMPLES_OUT": str(out)})
    return {
        name: (run.returncode, run.output, run.folder)
        for name, run in run_scripts(jobs, env, TIMEOUT).items()
    }


def compared(stdout):
    """The ``label ours X seed Y`` lines as {label: (ours, seed)}."""
    pairs = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s*(.+?)\s+ours (.+?)\s+seed (.+)$", line)
        if m:
            pairs[m.group(1)] = (m.group(2).strip(), m.group(3).strip())
    return pairs


def numbers(text):
    return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", text)]


def test_examples_found():
    names = {p.name for p in EXAMPLES}
    for stem in ("000_linear_mapping", "001_y_equals_2x", "002_normal_equation"):
        assert f"plot_seed{stem}.py" in names
    assert {"plot_seed003_animated_fit.py", "plot_seed004_gradcheck.py"} <= names
    assert "plot_loss_curve.py" in names


@pytest.mark.parametrize("script", [p.name for p in EXAMPLES])
def test_example_runs(runs, script):
    rc, stdout, out = runs[script]
    assert rc == 0, stdout[-3000:]
    header = PATHS[script].read_text().split('"""')[1]
    # sphinx-gallery: a title underlined with "=" opens the docstring
    lines = header.strip().splitlines()
    assert set(lines[1]) == {"="} and len(lines[1]) >= len(lines[0])
    if script.startswith("plot_"):  # sphinx-gallery: plot_* scripts plot
        pytest.importorskip("matplotlib")
        assert list(out.glob("*.png")), "no figure written"


def test_seed000_losses_and_matrix(runs):
    rc, stdout, _ = runs["plot_seed000_linear_mapping.py"]
    assert rc == 0, stdout[-3000:]
    pairs = compared(stdout)
    for step in range(5):
        ours, seed = pairs[f"step {step} loss"]
        # float64, same arithmetic up to the order of a 16-term sum
        assert float(ours) == pytest.approx(float(seed), rel=1e-12)
    assert pairs["W2 max |diff| (4 dec.)"][0] == "0.0e+00"


def test_seed001_traces(runs):
    rc, stdout, _ = runs["plot_seed001_y_equals_2x.py"]
    assert rc == 0, stdout[-3000:]
    pairs = compared(stdout)
    for label, (ours, seed) in pairs.items():
        if "w, loss" in label:
            w_o, l_o = numbers(ours)
            w_s, l_s = numbers(seed)
            assert w_o == w_s, label  # printed to 3 decimals: identical
            # float32 losses: a few units in the 7th significant digit
            assert l_o == pytest.approx(l_s, rel=1e-6, abs=1e-7), label
    assert pairs["torch f(5)"] == ("9.61241", "9.61241")
    assert pairs["numpy f(5)"] == ("9.99895", "9.99895")


def test_seed002_gd_matches_ols(runs):
    rc, stdout, _ = runs["plot_seed002_normal_equation.py"]
    assert rc == 0, stdout[-3000:]
    pairs = compared(stdout)
    gd, ols = (
        numbers(pairs["GD (slope, intercept)"][0]),
        numbers(pairs["OLS (slope, intercept)"][0]),
    )
    assert gd == pytest.approx(ols, abs=1e-4)  # the seed's "about 4 digits"
    assert float(pairs["max |GD - OLS|"][0]) < 1e-4
    # re-drawn data: the test MSE estimates the noise variance 1/9
    assert 0.08 < float(pairs["test MSE"][0]) < 0.14


def test_seed003_losses(runs):
    rc, stdout, out = runs["plot_seed003_animated_fit.py"]
    assert rc == 0, stdout[-3000:]
    pairs = compared(stdout)
    losses = [float(pairs[f"step {t} MSE"][0]) for t in range(0, 100, 10)]
    # re-drawn data: start near E = 3.67 (seed 3.80), end near the noise
    # variance 1/12 (seed 0.091), decreasing all the way
    assert 3.0 < losses[0] < 4.5
    assert 0.06 < losses[-1] < 0.11
    assert all(a >= b for a, b in zip(losses, losses[1:]))
    slope, intercept = numbers(pairs["(slope, intercept)"][0])
    assert slope == pytest.approx(3, abs=0.2) and intercept == pytest.approx(
        2.5, abs=0.2
    )
    pytest.importorskip("matplotlib")
    assert (out / "seed003_animated_fit.gif").stat().st_size > 0
    assert (out / "seed003_loss_curve.png").stat().st_size > 0


def test_seed004_gradients_and_fit(runs):
    rc, stdout, _ = runs["plot_seed004_gradcheck.py"]
    assert rc == 0, stdout[-3000:]
    pairs = compared(stdout)
    for label in ("autograd", "hand-derived", "central diff. h=1e-6"):
        assert pairs[label][0] == "(1.3633, 0.1912)", label
    assert pairs["forward diff. h=1e-3"] == ("(1.3619, 0.1919)",) * 2
    assert "FAILED" not in stdout
    b0, b1 = numbers(pairs["(b0, b1)"][0])
    assert numbers(pairs["OLS (b0, b1)"][0]) == pytest.approx([b0, b1], abs=1e-4)
    assert b0 == pytest.approx(2, abs=0.4) and b1 == pytest.approx(1, abs=0.4)


def test_cv_path_matches_gridsearch(runs):
    rc, stdout, out = runs["plot_cv_path.py"]
    assert rc == 0, stdout[-3000:]
    m = re.search(
        r"chosen alpha: (\S+) \(GridSearchCV: (\S+)\);.*curves: (\S+)", stdout
    )
    assert m is not None, stdout[-3000:]
    assert m.group(1) == m.group(2)
    # the same search: ours solves each fit to a duality gap of 1e-12 yy,
    # the base estimator's default FISTA stops at a gradient mapping 1e-5 of
    # its first, 3e-5 of R^2 apart on this grid (measured)
    assert float(m.group(3)) < 1e-4
    pytest.importorskip("matplotlib")
    assert (out / "cv_path.png").stat().st_size > 0


def test_readme_figures(runs):
    rc, stdout, out = runs["plot_loss_curve.py"]
    assert rc == 0, stdout[-3000:]
    pytest.importorskip("matplotlib")
    assert (out / "loss_curve.png").stat().st_size > 0
    assert (out / "descent.gif").stat().st_size > 0
