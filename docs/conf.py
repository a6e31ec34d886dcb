"""Sphinx configuration of the simam-ref book.

Build (offline, warnings are errors)::

    python -m sphinx -W -b html docs docs/_build/html

The five notebooks in ``notebooks/`` (reached through the ``docs/notebooks`` symlink)
are executed by myst-nb at build time; their outputs are cached in
``docs/_build/.jupyter_cache`` so an unchanged notebook is not run again. The
claims page runs ``simam verify --json`` at build time (``_ext/simam_claims.py``).
MathJax is served from the built site itself (``sphinx-mathjax-offline``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# the package and the local extension import from the checkout, installed or not
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
# ... and so do the notebook kernels (subprocesses inherit the environment)
_paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(_paths))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", str(DOCS / "_build" / ".numba_cache"))

project = "simam-ref"
author = "the simam-ref developers"
copyright = "2026, the simam-ref developers"  # noqa: A001 - Sphinx's name
release = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx-mathjax-offline",  # the package's module name has dashes
    "simam_claims",
]

root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "notebooks/*.md", "notebooks/*.py"]
suppress_warnings: list[str] = []

# --- MyST and notebooks ----------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "cache"
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 900
nb_execution_in_temp = True  # nothing is read by relative path
nb_execution_raise_on_error = True  # a failing notebook (its own asserts) fails the build
nb_execution_show_tb = True
nb_merge_streams = True
# Markdown outputs (IPython.display.Markdown) are parsed as MyST, so their $...$ is math
nb_render_markdown_format = "myst"

# --- API reference ---------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- HTML ------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "simam-ref"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
# a defined colour mode (the theme logs a console error for an empty one); matplotlib
# figures have white backgrounds
html_context = {"default_mode": "light"}
