"""``test_sklearn_sgd.py`` is what ``conformance/generate.py`` writes.

The conformance suite is scikit-learn's own ``test_sgd.py`` with our
estimators in its factories; these tests keep the committed copy and its
table of exceptions honest.
"""

import ast

import pytest
import sklearn
from conformance.generate import TARGET, generate, generated_version, sklearn_source
from conformance.table import TABLE


def test_committed_module_is_what_the_script_generates():
    committed = TARGET.read_text(encoding="utf-8")
    version = generated_version(committed)
    if version != sklearn.__version__:
        pytest.skip(
            f"{TARGET.name} was generated from scikit-learn {version}, and "
            f"{sklearn.__version__} is installed: its test_sgd.py may differ. "
            "Run `python tests/conformance/generate.py` to regenerate, then "
            "review the table (tests/conformance/table.py)."
        )
    assert committed == generate(*sklearn_source()), (
        f"{TARGET.name} is not what tests/conformance/generate.py writes from "
        "the installed scikit-learn: regenerate it (never edit it by hand)"
    )


def test_generation_is_reproducible():
    source, version = sklearn_source()
    assert generate(source, version) == generate(source, version)


def test_table_names_existing_tests():
    """Every entry of the table names a test of the generated module (a
    renamed or removed upstream test leaves no stale entry behind)."""
    tree = ast.parse(TARGET.read_text(encoding="utf-8"))
    tests = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }
    stale = sorted(key for key in TABLE if key.split("[")[0] not in tests)
    assert not stale, f"table entries without a test: {stale}"
