"""scikit-learn's own SGD tests, run against sklearn-gd's estimators.

``generate.py`` writes ``tests/test_sklearn_sgd.py`` from the installed
scikit-learn's ``sklearn/linear_model/tests/test_sgd.py``; ``adapter.py``
holds what that file imports to build our estimators; ``table.py`` says
which of its tests cannot apply, and why.
"""
