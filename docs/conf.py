"""Sphinx configuration for the openraft_trio documentation site.

Build it with ``nox -s docs`` (warnings are errors), or by hand::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python docs/check_links.py docs/_build/html

Pages are MyST Markdown; the API reference (``api.md``) is generated from the docstrings
by autodoc, which reads Google-style sections through napoleon.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Document the package of this checkout, whether or not it is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "openraft_trio"
author = "the openraft_trio authors"
copyright = "the openraft_trio authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Fences without a language are diagrams, tables of numbers and output, not code.
highlight_language = "text"

# MyST: anchors for headings down to ###, so `page.md#a-heading` links resolve (and a
# missing anchor is a warning, hence an error in `nox -s docs`).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# autodoc + napoleon: docstrings are Google style (Args/Returns/Raises/Attributes).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Show `Config`, not `openraft_trio._config.Config`: private module paths are not API.
python_use_unqualified_type_names = True
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
# Attributes sections become :ivar: fields, so they do not clash with the members autodoc
# documents itself (no duplicate object descriptions).
napoleon_use_ivar = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "openraft_trio"
html_theme_options = {"navigation_with_keys": True}


def _skip_class_aliases(
    app: object, what: str, name: str, obj: object, skip: bool, options: object
) -> bool | None:
    """Skip a class attribute that only names a top-level class (``Fatal.StorageError`` is
    ``StorageError``): it is documented where it is defined, once."""
    if what in ("class", "exception") and isinstance(obj, type) and "." not in obj.__qualname__:
        return True
    return None


def setup(app: Any) -> None:
    app.connect("autodoc-skip-member", _skip_class_aliases)
