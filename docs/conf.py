"""Sphinx configuration of the sklearn-gd documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (the
README's docs command). The gallery runs ``examples/plot_*.py`` in their
fast mode (``SKLEARN_GD_FAST=1``) unless the environment says otherwise:
``SKLEARN_GD_FAST=0`` builds it with the full sizes.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the examples read these when sphinx-gallery runs them: small sizes, and the
# files they save go to a scratch folder rather than into the source tree
os.environ.setdefault("SKLEARN_GD_FAST", "1")
os.environ.setdefault(
    "SKLEARN_GD_EXAMPLES_OUT", tempfile.mkdtemp(prefix="sklearn_gd_docs_")
)
os.environ.setdefault("MPLBACKEND", "Agg")

import sklearn_gd  # noqa: E402

project = "sklearn-gd"
author = "The sklearn-gd developers"
copyright = "The sklearn-gd developers"
release = sklearn_gd.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]
root_doc = "index"

# -- API reference ----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
# numpydoc renders the Parameters / Attributes sections; autosummary's own
# member tables would list every inherited sklearn method a second time
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Markdown (the user guide) ----------------------------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- Gallery ----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "examples")],
    "gallery_dirs": ["auto_examples"],
    # run the plotting scripts; quickstart.py and out_of_core.py (a Dask
    # cluster) are shown with their code only
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "reference_url": {"sklearn_gd": None},
    "doc_module": ("sklearn_gd",),
    "backreferences_dir": "generated/backreferences",
    "matplotlib_animations": False,
    "show_memory": False,
    "plot_gallery": "True",
}

# -- Links to other projects --------------------------------------------------
# no network on the build machines: the inventories are not fetched, so
# links into scikit-learn's docs stay plain text rather than failing -W
intersphinx_mapping = {}

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-gd {release}"
html_static_path = []
html_theme_options = {
    "github_url": "https://github.com/sklearn-gd/sklearn-gd",
    "navbar_end": ["navbar-icon-links"],
    "show_prev_next": False,
    "navigation_with_keys": False,
}
html_context = {"default_mode": "light"}


def _skip_sklearn_members(app, what, name, obj, skip, options):
    """Document the members this package defines, not those it inherits
    from scikit-learn (``score``, ``get_params``, the metadata-routing
    setters): their docstrings cross-reference scikit-learn's own pages."""
    module = getattr(obj, "__module__", None) or ""
    if module == "sklearn" or module.startswith("sklearn."):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_members)
