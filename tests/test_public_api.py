"""`import django_tracify as tracify`: the public names, and an import light enough for pytest's
plugin loading (before coverage starts and before Django's settings exist)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import django_tracify
import django_tracify.testing
from django_tracify.capture import tracking
from django_tracify.testing import capture


def test_every_public_name_is_the_implementation() -> None:
    for name in django_tracify.__all__:
        value = getattr(django_tracify, name)
        if name.startswith(("track", "atrack", "capture", "acapture")):
            assert value is getattr(tracking, name)
    for name in django_tracify.testing.__all__:
        assert getattr(django_tracify.testing, name) is getattr(capture, name)


def test_the_version_is_the_one_in_pyproject() -> None:
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE)
    assert declared is not None
    assert django_tracify.__version__ == declared.group(1)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'track_everything'"):
        django_tracify.track_everything  # noqa: B018


def test_loading_the_pytest_plugin_imports_neither_django_models_nor_tracking() -> None:
    code = (
        "import sys, django_tracify.testing.pytest_plugin\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('django_tracify'))\n"
        "print(loaded)\n"
        "assert 'django_tracify.capture.tracking' not in loaded, loaded\n"
        "assert 'django.db.models' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
