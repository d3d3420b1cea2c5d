#!/usr/bin/env python
"""The example shop's manage.py: run it from anywhere, e.g. python example_project/manage.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    # The repository root too, so a fresh clone can run the shop before `pip install -e .`.
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
