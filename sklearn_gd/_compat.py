"""The module paths of release 0.1.0, for its pickles.

A pickle names the module of every class it holds. Release 0.1.0 kept its
modules flat (``sklearn_gd._regressor``, ``sklearn_gd._state``, ...); they
now live in the layers' subpackages. Each old path that a 0.1.0 pickle can
name is registered as an alias of the module that holds its classes now, so
that ``pickle.load`` finds them (``tests/test_pickle_compat.py`` loads a
pickle written by 0.1.0).
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["register_old_paths"]

# old module -> its module now (only those whose objects a pickle names:
# the estimators, the search's plan, the fitted solver state)
OLD_PATHS = {
    "sklearn_gd._regressor": "sklearn_gd.estimators._regressor",
    "sklearn_gd._classifier": "sklearn_gd.estimators._classifier",
    "sklearn_gd._cv": "sklearn_gd.estimators._cv",
    "sklearn_gd._cv_search": "sklearn_gd.search._cv_search",
    "sklearn_gd._state": "sklearn_gd.engine._state",
}


def register_old_paths() -> None:
    """Alias each old module path to its module now."""
    for old, new in OLD_PATHS.items():
        sys.modules.setdefault(old, importlib.import_module(new))
