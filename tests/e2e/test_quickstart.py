"""The README's quick-start settings, pasted into a fresh `startproject` as a newcomer would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.common import REPO_ROOT

SNIPPET_START = "# settings.py: paste at the end"
CSID = "00000000-0000-4000-8000-000000000000"


def quick_start_settings() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    (snippet,) = [block for block in blocks if block.startswith(SNIPPET_START)]
    return snippet


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("newcomer")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "shop", str(root)],
        check=True,
        capture_output=True,
    )
    settings_file = root / "shop" / "settings.py"
    settings_file.write_text(settings_file.read_text() + "\n" + quick_start_settings())
    return root


def manage(project: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TRACIFY_", "DJANGO_SETTINGS"))
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(environ)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pasted_settings_pass_check_with_the_key_set(fresh_project: Path) -> None:
    result = manage(fresh_project, "check", TRACIFY_API_KEY="key-1", TRACIFY_CSID=CSID)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_pasted_settings_without_the_variables_run_and_say_why_tracking_is_off(
    fresh_project: Path,
) -> None:
    result = manage(fresh_project, "check")

    assert result.returncode == 0, result.stderr
    assert "tracify.W003" in result.stderr + result.stdout


def test_pasted_settings_migrate_and_flush_an_empty_outbox(fresh_project: Path) -> None:
    environ = {"TRACIFY_API_KEY": "key-1", "TRACIFY_CSID": CSID}

    migrate = manage(fresh_project, "migrate", "--noinput", **environ)
    assert migrate.returncode == 0, migrate.stderr
    assert "django_tracify" in migrate.stdout

    flush = manage(fresh_project, "tracify_flush", "--dry-run", **environ)
    assert flush.returncode == 0, flush.stderr
