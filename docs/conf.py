"""Sphinx configuration for the mtlcvx documentation site.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors).
The gallery runs every script in ``examples/`` in quick mode (``MTLCVX_QUICK=1``) and
shows the figures each one saves.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import mtlcvx  # noqa: E402

project = "mtlcvx"
author = "the mtlcvx developers"
copyright = "2026, the mtlcvx developers"
release = version = mtlcvx.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.md5", "auto_examples/*.json"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "config.cache"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

html_theme = "alabaster"
# wider than the theme's 940 px so the tables and the gallery's figures stay legible
html_theme_options = {"page_width": "1240px", "sidebar_width": "230px"}


def _skip_routing_requests(app, what, name, obj, skip, options):
    """Hide scikit-learn's generated ``set_*_request`` methods (metadata routing)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_routing_requests)
html_title = f"mtlcvx {release}"

# ---------------------------------------------------------------- gallery
os.environ["MTLCVX_QUICK"] = "1"  # every example's run() reads it
_saved: list[Path] = []


def _record_savefig() -> None:
    """Remember every file a figure is saved to, so closed figures still reach the page."""
    from matplotlib.figure import Figure

    original = Figure.savefig
    if getattr(original, "_mtlcvx_recording", False):
        return

    def savefig(self, fname, *args, **kwargs):
        result = original(self, fname, *args, **kwargs)
        if isinstance(fname, (str, os.PathLike)):
            _saved.append(Path(fname))
        return result

    savefig._mtlcvx_recording = True  # type: ignore[attr-defined]
    Figure.savefig = savefig


_record_savefig()


def saved_figure_scraper(block, block_vars, gallery_conf):
    """Copy the PNG files the code block saved into the gallery and show them."""
    from sphinx_gallery.scrapers import figure_rst

    images = []
    for source in _saved:
        if source.suffix.lower() == ".png" and source.exists():
            target = Path(next(block_vars["image_path_iterator"]))
            shutil.copyfile(source, target)
            images.append(str(target))
    _saved.clear()
    return figure_rst(images, gallery_conf["src_dir"])


sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",
    "ignore_pattern": r"__init__\.py",
    "image_scrapers": ("matplotlib", saved_figure_scraper),
    "download_all_examples": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
}
