"""The HTTP client for Tracify's events endpoint, and how its answers are classified."""

from __future__ import annotations

import enum
import gzip
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import requests

from django_tracify import __version__
from django_tracify.conf import settings, without_api_key
from django_tracify.delivery.request_deadline import DeadlineAdapter, deadline
from django_tracify.errors import MAX_CLIENT_ERROR_LENGTH, TracifyConnectionError

USER_AGENT = f"django-tracify/{__version__} python-requests/{requests.__version__}"
TOKEN_HEADER = "tracify-token"  # noqa: S105 (a header name, not a secret)
UNAUTHORISED_STATUSES = frozenset({401, 403})
RETRYABLE_STATUSES = frozenset({408, 429})
GZIP_LEVEL = 6

_BODY_START = b'{"events":['
_BODY_END = b"]}"
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNAUTHORISED = "unauthorised"
    RETRYABLE = "retryable"


@dataclass(frozen=True)
class Answer:
    """What became of one request: its outcome, and why when it was not accepted."""

    outcome: Outcome
    http_status: int | None = None  # None: no HTTP answer (timeout, refused, reset)
    error: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header

    @property
    def answered(self) -> bool:
        return self.http_status is not None


def encode_event(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def encode_body(events: Sequence[bytes]) -> bytes:
    return _BODY_START + b",".join(events) + _BODY_END


def body_size(events: Sequence[bytes]) -> int:
    """len(encode_body(events)) without building it."""
    commas = max(len(events) - 1, 0)
    return len(_BODY_START) + len(_BODY_END) + commas + sum(len(event) for event in events)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def classify(
    status: int, content: bytes, retry_after: str | None = None, *, now: datetime
) -> Answer:
    """The outcome of an HTTP answer from the events endpoint."""
    seconds = parse_retry_after(retry_after, now)
    message = _answer_error(content)
    if 200 <= status < 300:
        answer_status = _answer_status(content)
        if answer_status is True:
            return Answer(Outcome.ACCEPTED, status)
        if answer_status is False:
            return Answer(Outcome.REJECTED, status, f"HTTP {status} status false: {message}")
        # Not Tracify's answer (a proxy page?): whether it arrived is unknown, so try again.
        return Answer(Outcome.RETRYABLE, status, f"HTTP {status} unexpected answer: {message}")
    error = f"HTTP {status}: {message}"
    if status in UNAUTHORISED_STATUSES:
        return Answer(Outcome.UNAUTHORISED, status, error)
    if status in RETRYABLE_STATUSES or status >= 500:
        return Answer(Outcome.RETRYABLE, status, error, seconds)
    if 400 <= status < 500:
        return Answer(Outcome.REJECTED, status, error)
    # 1xx/3xx: redirects are not followed (a POST would turn into a GET).
    return Answer(Outcome.RETRYABLE, status, error + " (is TRACIFY['ENDPOINT'] the final URL?)")


def _decoded(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _answer_status(content: bytes) -> bool | None:
    decoded = _decoded(content)
    status = decoded.get("status") if isinstance(decoded, dict) else None
    return status if isinstance(status, bool) else None


def _answer_error(content: bytes) -> str:
    decoded = _decoded(content)
    if isinstance(decoded, dict) and decoded.get("error"):
        return str(decoded["error"])
    text = content.decode("utf-8", "replace").strip()
    return " ".join(text.split()) or "(empty answer)"


class TracifyClient:
    """POSTs batches of events to Tracify; one instance (one requests.Session) per flush.

    Use it as a context manager, or call close().
    """

    def __init__(
        self,
        *,
        endpoint: str,
        api_key: str,
        timeout: float,
        gzip: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.gzip = gzip
        self._api_key = api_key
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self.session = requests.Session()
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, DeadlineAdapter())
        self.session.headers.update(
            {
                TOKEN_HEADER: api_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        )

    @classmethod
    def from_settings(cls, *, clock: Callable[[], datetime] | None = None) -> TracifyClient:
        return cls(
            endpoint=settings.ENDPOINT,
            api_key=settings.API_KEY,
            timeout=settings.TIMEOUT,
            gzip=settings.GZIP,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"<TracifyClient {self.endpoint} timeout={self.timeout:g}s gzip={self.gzip}>"

    def __enter__(self) -> TracifyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def send(self, events: Sequence[Mapping[str, Any]]) -> Answer:
        """Send events in one request and classify the answer; never raises for HTTP trouble."""
        return self.send_encoded([encode_event(event) for event in events])

    def send_encoded(self, events: Sequence[bytes]) -> Answer:
        """send() for events already encoded with encode_event()."""
        try:
            response = self.post(encode_body(events))
        except TracifyConnectionError as err:
            return Answer(Outcome.RETRYABLE, None, str(err))
        answer = classify(
            response.status_code,
            response.content,
            response.headers.get("Retry-After"),
            now=self._clock(),
        )
        return Answer(
            answer.outcome, answer.http_status, self._safe(answer.error), answer.retry_after
        )

    def post(self, body: bytes) -> requests.Response:
        """POST a JSON body; raises TracifyConnectionError when no answer comes."""
        headers = {}
        if self.gzip:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        # TIMEOUT bounds the whole request, so it ends well within the lease on its rows.
        with deadline(self.timeout) as watch:
            try:
                return self.session.post(
                    self.endpoint,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as err:
                if watch.expired:
                    message = (
                        f"POST {self.endpoint} timed out: no complete answer within "
                        f"{self.timeout:g}s (TRACIFY['TIMEOUT'])"
                    )
                else:
                    problem = "timed out" if isinstance(err, requests.Timeout) else "failed"
                    message = f"POST {self.endpoint} {problem}: {type(err).__name__}: {err}"
                raise TracifyConnectionError(self._safe(message)) from err

    def _safe(self, text: str) -> str:
        """Cut to length, and never echo the key (a server or proxy might put it in an error)."""
        return without_api_key(text, self._api_key)[:MAX_CLIENT_ERROR_LENGTH]
