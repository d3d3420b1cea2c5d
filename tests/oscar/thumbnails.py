from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from oscar.core.thumbnails import AbstractThumbnailer


class SourceImage(AbstractThumbnailer):  # type: ignore[misc]
    """No thumbnail library in the test shop: images are shown as they are."""

    def generate_thumbnail(self, source: Any, **options: Any) -> Any:
        return SimpleNamespace(url=str(getattr(source, "name", source)))

    def delete_thumbnails(self, source: Any) -> None:
        pass
