"""The documentation's sources cover the public API.

Every name exported by the package (``sklearn_gd.__all__``) and by its public
submodules (those without a leading underscore that declare ``__all__``:
``sklearn_gd.plotting``, ``sklearn_gd.gradcheck``) appears in the API
reference's source, ``docs/api.rst``, and every public object's docstring
has an ``Examples`` section (run by ``pytest --doctest-modules sklearn_gd``,
which the default test run includes through ``testpaths``). The build itself,
``sphinx-build -W``, runs in ``.ci/run``.
"""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import sklearn_gd

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.rst"

# the layers (estimators, search, planning, engine, solvers, objective, data,
# model) are the package's internals, documented in CONTRIBUTING.md; the
# public face is the package itself and these modules
PUBLIC_SUBMODULES = ["sklearn_gd.plotting", "sklearn_gd.gradcheck"]
LAYERS = {
    "data",
    "engine",
    "estimators",
    "model",
    "objective",
    "planning",
    "search",
    "solvers",
}


def public_names():
    names = [("sklearn_gd", n) for n in sklearn_gd.__all__]
    for module in PUBLIC_SUBMODULES:
        names += [(module, n) for n in importlib.import_module(module).__all__]
    return names


def test_public_submodules_listed():
    """A new public module (no underscore, not a layer) joins the list."""
    found = {
        f"sklearn_gd.{m.name}"
        for m in pkgutil.iter_modules(sklearn_gd.__path__)
        if not m.name.startswith("_") and m.name not in LAYERS
    }
    assert found == set(PUBLIC_SUBMODULES)


@pytest.mark.parametrize("module, name", public_names())
def test_name_in_api_reference(module, name):
    text = API.read_text()
    if name == "__version__":
        assert "sklearn_gd.__version__" in text
        return
    # an autosummary entry under the module's currentmodule, or a full path
    assert re.search(rf"^\s+{re.escape(name)}\s*$", text, re.M) or (
        f"{module}.{name}" in text
    ), f"{module}.{name} is missing from docs/api.rst"


@pytest.mark.parametrize(
    "module, name", [(m, n) for m, n in public_names() if n != "__version__"]
)
def test_docstring_has_examples(module, name):
    obj = getattr(importlib.import_module(module), name)
    doc = obj.__doc__ or ""
    assert re.search(r"^\s*Examples\n\s*-{8}", doc, re.M), f"{name}: no Examples"
    assert ">>>" in doc


def _modules_with_doctests():
    finder = doctest.DocTestFinder()
    found = []
    for info in pkgutil.walk_packages(sklearn_gd.__path__, "sklearn_gd."):
        module = importlib.import_module(info.name)
        if any(t.examples for t in finder.find(module)):
            found.append(info.name)
    return found


@pytest.mark.parametrize("name", _modules_with_doctests())
def test_doctests(name, monkeypatch, tmp_path):
    """What ``pytest --doctest-modules sklearn_gd`` runs, in the default suite
    (its options: ELLIPSIS; a headless matplotlib)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
