"""Sphinx configuration of the django-tracify documentation (Read the Docs builds it too)."""

from __future__ import annotations

import re
from pathlib import Path

_pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()

project = "django-tracify"
author = "django-tracify developers"
copyright = "django-tracify developers"
release = re.search(r'^version = "(.+)"$', _pyproject, flags=re.MULTILINE)[1]
version = release

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# `[text](page.md#a-heading)` links to headings down to ####; the build checks each one.
myst_heading_anchors = 4

html_theme = "furo"
html_title = f"django-tracify {release}"
html_static_path = ["_static"]
