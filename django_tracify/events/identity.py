"""Hashing of identity data, and the Identity value that holds only hashes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from django_tracify.errors import TracifyValidationError

KIND_EMAIL = 1
KIND_SESSION = 2
KIND_IP = 3
KIND_USER_AGENT = 4

KIND_NAMES = {
    KIND_EMAIL: "email",
    KIND_SESSION: "session",
    KIND_IP: "IP address",
    KIND_USER_AGENT: "user agent",
}

_HASH = re.compile(r"^[0-9a-f]{64}$")


def hash_identity(value: str) -> str:
    """Tracify's anonymisation: sha256 hex, drop its last 5 characters, sha256 hex again."""
    digest = hashlib.sha256(_to_bytes(value)).hexdigest()
    return hashlib.sha256(digest[:-5].encode("ascii")).hexdigest()


def _to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    # Header values can carry lone surrogates (ASGI, surrogateescape'd WSGI); hash them as-is.
    return value.encode("utf-8", "surrogatepass")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_email(email: str) -> str:
    return hash_identity(normalise_email(email))


def session_key(ip: str, user_agent: str) -> str:
    return f"{ip}|{user_agent}"


@dataclass(frozen=True)
class Identity:
    """The hashed identity inputs of one visitor. Never holds a raw value."""

    ip: str | None = None
    user_agent: str | None = None
    session: str | None = None
    email: str | None = None

    @classmethod
    def from_raw(
        cls,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        email: str | None = None,
    ) -> Identity:
        # An empty address is no address: its hash would make all such visitors one.
        ip = ip.strip() if ip and ip.strip() else None
        session = None
        if ip is not None and user_agent is not None:
            session = hash_identity(session_key(ip, user_agent))
        return cls(
            ip=hash_identity(ip) if ip is not None else None,
            user_agent=hash_identity(user_agent) if user_agent is not None else None,
            session=session,
            email=hash_email(email) if email and email.strip() else None,
        )

    def with_email(self, email: str | None) -> Identity:
        if not email or not email.strip():
            return self
        return Identity(self.ip, self.user_agent, self.session, hash_email(email))

    def as_identity_data(self) -> dict[str, int]:
        pairs = (
            (self.email, KIND_EMAIL),
            (self.session, KIND_SESSION),
            (self.ip, KIND_IP),
            (self.user_agent, KIND_USER_AGENT),
        )
        return {value: kind for value, kind in pairs if value}

    def to_dict(self) -> dict[str, str]:
        fields = {
            "ip": self.ip,
            "user_agent": self.user_agent,
            "session": self.session,
            "email": self.email,
        }
        return {name: value for name, value in fields.items() if value}

    @classmethod
    def from_dict(cls, data: Any, field: str = "identity") -> Identity:
        if not isinstance(data, dict):
            raise TracifyValidationError(field, f"expected a dict, got {type(data).__name__}")
        values: dict[str, str | None] = {}
        for name in ("ip", "user_agent", "session", "email"):
            value = data.get(name)
            if value is not None and not (isinstance(value, str) and _HASH.match(value)):
                raise TracifyValidationError(f"{field}.{name}", "is not a 64-character hex hash")
            values[name] = value
        return cls(**values)
