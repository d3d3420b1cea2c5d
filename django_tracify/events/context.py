"""The context an event is built from: the hashed identity, URL, origin and referer.

Capture makes one per request (django_tracify.capture.context); a shop may keep one on its order
as a snapshot (capture_identity()) and build a later event from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.utils.encoding import iri_to_uri

from django_tracify.errors import TracifyValidationError
from django_tracify.events.identity import Identity

MAX_URL_LENGTH = 2048


SNAPSHOT_VERSION = 1


@dataclass
class ParamsDelivery:
    """Where the pending URL parameters stand: kept in the session, and carried by an event."""

    kept: dict[str, str] = field(default_factory=dict)
    carried: bool = False


@dataclass
class PageviewOfRequest:
    """The request's pageview, once stored: one per request, whoever asks (view, middleware)."""

    stored: bool = False
    row: Any = None


@dataclass(frozen=True)
class RequestContext:
    identity: Identity
    url: str | None = None
    origin: str | None = None
    referer: str | None = None
    # The pending landing URL parameters; every event built from this context carries them.
    url_params: dict[str, str] = field(default_factory=dict)
    consented: bool = True
    delivery: ParamsDelivery = field(default_factory=ParamsDelivery, compare=False, repr=False)
    pageview: PageviewOfRequest = field(
        default_factory=PageviewOfRequest, compare=False, repr=False
    )
    # Why a request gave no url (a host Django refused), for the error that follows.
    url_problem: str | None = field(default=None, compare=False, repr=False)

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy (hashes only) a shop can keep on its order."""
        snapshot: dict[str, Any] = {"v": SNAPSHOT_VERSION, "identity": self.identity.to_dict()}
        for name in ("url", "origin", "referer"):
            value = getattr(self, name)
            if value:
                snapshot[name] = value
        return snapshot

    @classmethod
    def from_snapshot(cls, snapshot: Any) -> RequestContext:
        if isinstance(snapshot, RequestContext):
            return snapshot
        if isinstance(snapshot, Identity):
            return cls(identity=snapshot)
        if not isinstance(snapshot, dict):
            raise TracifyValidationError(
                "identity", f"expected capture_identity()'s dict, got {type(snapshot).__name__}"
            )
        identity = Identity.from_dict(snapshot.get("identity", {}), "identity.identity")
        texts: dict[str, str | None] = {}
        for name in ("url", "origin", "referer"):
            value = snapshot.get(name)
            if value is not None and not isinstance(value, str):
                raise TracifyValidationError(f"identity.{name}", "is not a string")
            texts[name] = cut(value, MAX_URL_LENGTH) if value and is_parsable(value) else None
        return cls(
            identity=identity, url=texts["url"], origin=texts["origin"], referer=texts["referer"]
        )


def is_parsable(url: str) -> bool:
    try:
        urlsplit(url)
    except ValueError:  # "http://[x": an unclosed IPv6 bracket
        return False
    return True


def cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def without_query(url: str) -> str:
    """Domain and path only: query strings can carry personal data (emails, tokens).

    An empty string for what is not an absolute URL (a malformed Referer is dropped).
    """
    if not is_parsable(url):
        return ""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return cut(f"{parts.scheme}://{parts.netloc}{iri_to_uri(parts.path)}", MAX_URL_LENGTH)
