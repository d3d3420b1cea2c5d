"""The manual in docs/: every setting, check id and command option is in it, and it builds.

The keys, ids and options are read from the code, so a new one fails here until it is written
down in its place: a setting in the Settings reference's tables, a check id in "System checks",
an option in the section of its command.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pytest
from django.core.management import find_commands, load_command_class
from django.core.management.base import BaseCommand

import django_tracify
from django_tracify.checks import MESSAGES
from django_tracify.conf import DEFAULTS, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
MANAGEMENT_DIR = Path(django_tracify.__file__).parent / "management"


def setting_keys() -> list[str]:
    """Every TRACIFY key conf.py knows: a default in DEFAULTS, or a property of Settings."""
    properties = {
        name
        for name, attribute in vars(Settings).items()
        if name.isupper() and isinstance(attribute, (property, cached_property))
    }
    return sorted(properties | set(DEFAULTS))


def command_options() -> list[tuple[str, str]]:
    """(command, option) for each option a tracify command adds to Django's common ones."""
    common = option_strings(BaseCommand().create_parser("manage.py", "base"))
    pairs = []
    for name in sorted(find_commands(str(MANAGEMENT_DIR))):
        parser = load_command_class("django_tracify", name).create_parser("manage.py", name)
        for option in sorted(option_strings(parser) - common):
            pairs.append((name, option))
    return pairs


def option_strings(parser: Any) -> set[str]:
    """The long spelling of each option of an argparse parser (its actions' longest string)."""
    return {max(a.option_strings, key=len) for a in parser._actions if a.option_strings}


@cache
def pages() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(DOCS.glob("*.md"))}


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each Markdown section, the body running to the next heading of the
    same or a higher level; headings inside code blocks do not count."""
    headings = []
    in_code = False
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"(#+) (.*)", line)):
            headings.append((number, len(match[1]), match[2]))
    found = []
    for index, (start, level, title) in enumerate(headings):
        end = next((n for n, lv, _ in headings[index + 1 :] if lv <= level), len(lines))
        found.append((title, "\n".join(lines[start + 1 : end])))
    return found


def section(title_contains: str) -> str:
    bodies = [
        body
        for text in pages().values()
        for title, body in sections(text)
        if title_contains in title
    ]
    assert bodies, f"no section of docs/ has {title_contains!r} in its heading"
    return "\n".join(bodies)


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell, with the other cells' text."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first, *rest = (cell.strip() for cell in line.strip("|").split("|"))
            rows[first] = rest
    return rows


def shown_as(value: Any) -> list[str]:
    """How a default may be written in the reference: `10.0` or `10`, each item of a tuple."""
    if isinstance(value, tuple):
        return [f"`{item}`" for item in value] if value else ["`()`"]
    spellings = {f"`{value}`"}
    if isinstance(value, float):
        spellings.add(f"`{value:g}`")
    return sorted(spellings)


@pytest.mark.parametrize("key", setting_keys())
def test_every_setting_is_in_the_settings_reference(key: str) -> None:
    rows = table_rows(pages()["settings.md"])

    assert f"`{key}`" in rows, f"TRACIFY[{key!r}] has no row in docs/settings.md"
    default, meaning = rows[f"`{key}`"][:2]
    assert default.strip() and meaning.strip(), f"TRACIFY[{key!r}]: default or meaning is empty"
    value = DEFAULTS.get(key)
    if isinstance(value, tuple):
        assert all(spelling in default for spelling in shown_as(value)), (key, default)
    elif value is not None:
        assert any(spelling in default for spelling in shown_as(value)), (key, default)


@pytest.mark.parametrize("check_id", sorted(MESSAGES))
def test_every_check_id_is_in_the_system_checks_table(check_id: str) -> None:
    assert f"`{check_id}`" in table_rows(section("System checks"))


@pytest.mark.parametrize(("command", "option"), command_options())
def test_every_command_option_is_in_its_commands_section(command: str, option: str) -> None:
    assert re.search(rf"`{re.escape(option)}\b", section(f"manage.py {command}")), (
        f"{option} of manage.py {command} is not in the section of docs/ about that command"
    )


def test_the_manual_builds_without_a_warning(tmp_path: Path) -> None:
    warnings_are_errors = ["-W", "--keep-going", "-n"]
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", *warnings_are_errors, "-q", "-b", "html", DOCS, tmp_path],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert build.returncode == 0, build.stderr
    assert (tmp_path / "settings.html").exists()
