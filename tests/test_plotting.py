"""The display objects of sklearn_gd.plotting."""

import subprocess
import sys

import numpy as np
import pytest

from sklearn_gd import TorchSGDRegressor

# animations built only to inspect their frames are never rendered
pytestmark = [
    pytest.mark.filterwarnings("ignore:Animation was deleted:UserWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

from sklearn_gd.plotting import DescentDisplay, LossCurveDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def line_data():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(40, 1))
    y = 3 * X[:, 0] + 2 + 0.1 * rng.randn(40)
    return X, y


def gd(**kw):
    params = dict(penalty=None, learning_rate="constant", eta0=0.2, tol=None)
    params.update(kw)
    return TorchSGDRegressor(**params)


@pytest.mark.slow  # a subprocess
def test_package_imports_without_matplotlib():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import sklearn_gd, sklearn_gd.plotting, sklearn_gd.gradcheck\n"
        "from sklearn_gd.plotting import LossCurveDisplay\n"
        "d = LossCurveDisplay(loss_curve=[1.0])\n"
        "try:\n    d.plot()\nexcept ImportError as e:\n    print('ImportError', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "requires matplotlib" in out.stdout


def test_loss_curve_from_estimator(line_data):
    X, y = line_data
    reg = gd(max_iter=15).fit(X, y)
    disp = LossCurveDisplay.from_estimator(reg)
    assert disp.figure_ is disp.ax_.figure
    np.testing.assert_array_equal(disp.line_.get_xdata(), np.arange(1, 16))
    np.testing.assert_allclose(disp.line_.get_ydata(), reg.loss_curve_)
    assert disp.validation_line_ is None and disp.validation_ax_ is None
    assert disp.ax_.get_yscale() == "linear"
    assert disp.estimator_name == "TorchSGDRegressor"


def test_loss_curve_validation_scores_and_log_scale(line_data):
    X, y = line_data
    reg = gd(max_iter=10, early_stopping=True, random_state=0)
    reg.fit(np.vstack([X] * 3), np.concatenate([y] * 3))
    disp = LossCurveDisplay.from_estimator(reg, log_scale=True, name="m")
    assert disp.ax_.get_yscale() == "log"
    assert disp.validation_ax_ is not None and disp.validation_ax_ is not disp.ax_
    np.testing.assert_allclose(
        disp.validation_line_.get_ydata(), reg.validation_scores_
    )
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert labels == ["m training loss", "m validation score"]


def test_loss_curve_pipeline_and_shared_ax(line_data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = line_data
    pipe = make_pipeline(StandardScaler(), gd(max_iter=5)).fit(X, y)
    _, ax = plt.subplots()
    d1 = LossCurveDisplay.from_estimator(pipe, ax=ax)
    d2 = LossCurveDisplay(loss_curve=[3.0, 2.0, 1.0]).plot(ax=ax, name="other")
    assert d1.ax_ is d2.ax_ is ax
    assert len(ax.get_lines()) == 2


def test_loss_curve_needs_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(TorchSGDRegressor())


def test_descent_display_lines(line_data):
    X, y = line_data
    reg = gd(max_iter=20).fit(X, y)
    disp = DescentDisplay.from_estimator(reg, X, y, grid_resolution=7)
    xs, ys = disp.line_.get_xdata(), disp.line_.get_ydata()
    assert len(xs) == 7 and xs[0] == X.min() and xs[-1] == X.max()
    np.testing.assert_allclose(ys, reg.coef_[0] * xs + reg.intercept_[0], rtol=1e-5)
    np.testing.assert_allclose(disp.scatter_.get_offsets(), np.c_[X[:, 0], y])
    assert disp.lines_ == [disp.line_] and disp.scatters_ == [disp.scatter_]
    assert disp.path is None
    with pytest.raises(ValueError, match="record_history"):
        disp.animate()


def test_descent_display_rejects_several_features(line_data):
    X, y = line_data
    X2 = np.hstack([X, X])
    reg = gd(max_iter=2).fit(X2, y)
    with pytest.raises(ValueError, match="one feature"):
        DescentDisplay.from_estimator(reg, X2, y)


def test_animate_frames_follow_coef_path(line_data):
    X, y = line_data
    reg = gd(max_iter=12, record_history=True).fit(X, y)
    disp = DescentDisplay.from_estimator(reg, X, y)
    anim = disp.animate()
    assert isinstance(anim, FuncAnimation) and disp.animation_ is anim
    frames = list(anim.new_frame_seq())
    assert frames == list(range(12))
    # frame e draws the line after epoch e + 1
    xs = disp.line_.get_xdata()
    for e in (0, 5, 11):
        anim._func(e)
        expected = reg.coef_path_[e, 0] * xs + reg.intercept_path_[e, 0]
        np.testing.assert_allclose(disp.line_.get_ydata(), expected, rtol=1e-5)
    assert list(disp.animate(frames=4).new_frame_seq()) == [0, 4, 7, 11]
    assert list(disp.animate(frames=[0, -1]).new_frame_seq()) == [0, 11]


def test_animate_saves_gif_and_html(line_data, tmp_path):
    from matplotlib.animation import PillowWriter

    X, y = line_data
    reg = gd(max_iter=3, record_history=True).fit(X, y)
    anim = DescentDisplay.from_estimator(reg, X, y).animate()
    anim.save(tmp_path / "d.gif", writer=PillowWriter(fps=5), dpi=30)
    assert (tmp_path / "d.gif").read_bytes()[:3] == b"GIF"
    assert "<script" in anim.to_jshtml()


def test_descent_display_multi_output(line_data):
    X, y = line_data
    Y = np.column_stack([y, -y])
    reg = gd(max_iter=8, record_history=True).fit(X, Y)
    disp = DescentDisplay.from_estimator(reg, X, Y, grid_resolution=5)
    assert len(disp.lines_) == 2 and len(disp.scatters_) == 2
    xs = disp.lines_[1].get_xdata()
    np.testing.assert_allclose(
        disp.lines_[1].get_ydata(), reg.coef_[1, 0] * xs + reg.intercept_[1], rtol=1e-5
    )
    assert disp.path.shape == (8, 5, 2)
    anim = disp.animate()
    anim._func(2)
    expected = reg.coef_path_[2, 1, 0] * xs + reg.intercept_path_[2, 1]
    np.testing.assert_allclose(disp.lines_[1].get_ydata(), expected, rtol=1e-5)


def test_descent_display_pipeline_path(line_data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = line_data
    pipe = make_pipeline(StandardScaler(), gd(max_iter=30, record_history=True))
    pipe.fit(X * 10 + 5, y)
    disp = DescentDisplay.from_estimator(pipe, X * 10 + 5, y)
    # the last recorded epoch is the fitted model: same line as predict
    np.testing.assert_allclose(disp.path[-1], disp.y_grid, rtol=1e-5, atol=1e-6)


def test_descent_display_dataframe_keeps_names(line_data):
    pd = pytest.importorskip("pandas")
    import warnings

    X, y = line_data
    Xdf = pd.DataFrame(X, columns=["x"])
    reg = gd(max_iter=3).fit(Xdf, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DescentDisplay.from_estimator(reg, Xdf, y)


@pytest.mark.parametrize("namespace", ["torch", "array_api_strict"])
def test_descent_display_under_array_api_dispatch(line_data, namespace):
    # a model fitted on tensors (or any namespace) under dispatch holds its
    # path in that namespace and predicts only on it: the display draws it
    import sklearn

    X, y = line_data
    if namespace == "torch":
        import torch

        Xs, ys = torch.from_numpy(X), torch.from_numpy(y)
    else:
        xp = pytest.importorskip("array_api_strict")
        device = xp.Device("device1")  # np.asarray refuses it
        Xs, ys = xp.asarray(X, device=device), xp.asarray(y, device=device)
    ref = gd(max_iter=10, record_history=True).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        reg = gd(max_iter=10, record_history=True).fit(Xs, ys)
        disp = DescentDisplay.from_estimator(reg, Xs, ys, grid_resolution=5)
    want = DescentDisplay.from_estimator(ref, X, y, grid_resolution=5)
    # the same float64 computation on the same numbers
    np.testing.assert_allclose(disp.path, want.path, rtol=1e-12)
    np.testing.assert_allclose(disp.line_.get_ydata(), want.line_.get_ydata())
