"""The wheel and sdist that would go to PyPI: built from this checkout and checked as PyPI would."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.services.common import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_twine_check_strict_passes(dist: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.values())],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_metadata_names_license_urls_and_django_61(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
        names = wheel.namelist()

    assert metadata["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Changelog", "Issues", "Source"} <= urls.keys()
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = metadata.get_all("Classifier")
    assert "Framework :: Django :: 6.1" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)


def test_wheel_ships_what_the_app_needs_at_run_time(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())

    assert "django_tracify/py.typed" in names
    assert "django_tracify/migrations/0001_initial.py" in names
    assert "django_tracify/management/commands/tracify_flush.py" in names
    assert any(n.startswith("django_tracify/templates/admin/") for n in names)
    assert not any(n.startswith(("tests/", "example_project/", "benchmarks/")) for n in names)


def test_sdist_has_the_papers_and_no_tests_it_cannot_run(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}

    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"} <= names
    assert not any(name.startswith("tests/") for name in names)


def test_readme_images_use_absolute_urls() -> None:
    """PyPI shows the README without the repository beside it: relative images break there."""
    readme = (REPO_ROOT / "README.md").read_text()
    images = [line for line in readme.splitlines() if line.lstrip().startswith("![")]
    assert images
    for line in images:
        target = line[line.index("](") + 2 : line.rindex(")")]
        assert target.startswith("https://"), line
