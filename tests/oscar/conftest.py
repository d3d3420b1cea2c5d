from __future__ import annotations

import os

# These tests need Oscar's INSTALLED_APPS: they run on their own, with
# `pytest --ds=tests.oscar.settings tests/oscar` (make test-oscar, tox -e oscar).
if os.environ.get("DJANGO_SETTINGS_MODULE") != "tests.oscar.settings":
    collect_ignore_glob = ["test_*.py"]
