"""A shop's own tests with django_tracify.testing: the example shop's checkout tests
(example_project/shop/tests/), run by pytest as the shop runs them, with its own settings."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

from tests.services import REPO_ROOT

PLUGIN = "django_tracify.testing.pytest_plugin"
OPTIONS = ("-p", "no:cacheprovider", "-v", "shop/tests")


def test_the_example_shops_tracking_tests_pass() -> None:
    example = REPO_ROOT / "example_project"
    # Installed, the package's pytest11 entry point loads the plugin; a source checkout whose
    # install predates it names the plugin, as docs/testing.md says.
    installed = any(point.name == PLUGIN for point in entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", PLUGIN]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "--ds=demo_site.settings", *OPTIONS],
        cwd=example,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(example), str(REPO_ROOT)])},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_checkout_tracks_the_purchase PASSED" in done.stdout
    assert "test_an_invalid_checkout_tracks_no_purchase PASSED" in done.stdout
