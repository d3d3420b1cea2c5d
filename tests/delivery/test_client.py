from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import requests
import responses

from django_tracify import __version__
from django_tracify.delivery.client import (
    Outcome,
    TracifyClient,
    body_size,
    classify,
    encode_body,
    encode_event,
    parse_retry_after,
)
from django_tracify.errors import TracifyConnectionError

ENDPOINT = "https://tracify.invalid/api/v1/events"
KEY = "sk-client-test-9c1d"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
EVENT = {"type": "pageview", "url": "https://shop.example.com/ü", "data": {"origin": "x"}}


def client(**kwargs: object) -> TracifyClient:
    options: dict[str, object] = {"endpoint": ENDPOINT, "api_key": KEY, "timeout": 3.5}
    options.update(kwargs)
    return TracifyClient(clock=lambda: NOW, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {"status": True}, Outcome.ACCEPTED),
        (201, {"status": True}, Outcome.ACCEPTED),
        (200, {"status": False, "error": "bad csid"}, Outcome.REJECTED),
        (400, {"status": False, "error": "bad"}, Outcome.REJECTED),
        (404, {}, Outcome.REJECTED),
        (413, {}, Outcome.REJECTED),
        (422, {}, Outcome.REJECTED),
        (401, {"status": False, "error": "invalid token"}, Outcome.UNAUTHORISED),
        (403, {}, Outcome.UNAUTHORISED),
        (408, {}, Outcome.RETRYABLE),
        (429, {}, Outcome.RETRYABLE),
        (500, {}, Outcome.RETRYABLE),
        (502, {}, Outcome.RETRYABLE),
        (503, {}, Outcome.RETRYABLE),
        (200, {"ok": 1}, Outcome.RETRYABLE),  # not Tracify's answer: delivery unknown
        (301, {}, Outcome.RETRYABLE),
    ],
)
def test_classify(status: int, body: dict[str, object], outcome: Outcome) -> None:
    answer = classify(status, json.dumps(body).encode(), now=NOW)
    assert (answer.outcome, answer.http_status) == (outcome, status)
    assert (answer.error == "") == (outcome is Outcome.ACCEPTED)


def test_classify_keeps_tracifys_error_message() -> None:
    answer = classify(200, b'{"status": false, "error": "customer_site_id unknown"}', now=NOW)
    assert answer.error == "HTTP 200 status false: customer_site_id unknown"
    assert classify(502, b"<html>\n Bad   gateway</html>", now=NOW).error == (
        "HTTP 502: <html> Bad gateway</html>"
    )


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Sat, 01 Mar 2025 12:01:30 GMT", 90.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_is_read_from_retryable_answers_only() -> None:
    assert classify(429, b"{}", "30", now=NOW).retry_after == 30.0
    assert classify(503, b"{}", "Sat, 01 Mar 2025 12:00:10 GMT", now=NOW).retry_after == 10.0
    assert classify(400, b"{}", "30", now=NOW).retry_after is None


def test_body_encoding_and_size() -> None:
    events = [encode_event(EVENT), encode_event({"type": "purchase"})]
    body = encode_body(events)
    assert json.loads(body) == {"events": [EVENT, {"type": "purchase"}]}
    assert body_size(events) == len(body)
    assert body_size([]) == len(encode_body([]))


@responses.activate
def test_send_posts_the_batch_with_token_user_agent_and_timeout() -> None:
    responses.post(ENDPOINT, json={"status": True})
    with client() as tracify:
        answer = tracify.send([EVENT, EVENT])
    assert answer.outcome is Outcome.ACCEPTED
    request = responses.calls[0].request
    assert request.headers["tracify-token"] == KEY
    assert request.headers["User-Agent"].startswith(f"django-tracify/{__version__} ")
    assert request.headers["Content-Type"] == "application/json"
    assert request.req_kwargs["timeout"] == 3.5
    assert json.loads(request.body) == {"events": [EVENT, EVENT]}


@responses.activate
def test_gzip_only_when_asked() -> None:
    responses.post(ENDPOINT, json={"status": True})
    client().send([EVENT])
    client(gzip=True).send([EVENT])
    plain, zipped = (call.request for call in responses.calls)
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(zipped.body)) == {"events": [EVENT]}


@responses.activate
def test_redirects_are_not_followed() -> None:
    responses.post(ENDPOINT, status=301, headers={"Location": "https://elsewhere.invalid/"})
    answer = client().send([EVENT])
    assert answer.outcome is Outcome.RETRYABLE
    assert "ENDPOINT" in answer.error
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize(
    ("raised", "problem"),
    [(requests.ConnectTimeout("slow"), "timed out"), (requests.ConnectionError("reset"), "failed")],
)
def test_no_answer_is_wrapped_and_retryable(raised: Exception, problem: str) -> None:
    responses.post(ENDPOINT, body=raised)
    tracify = client()
    with pytest.raises(TracifyConnectionError, match=problem) as info:
        tracify.post(b"{}")
    assert info.value.__cause__ is raised
    answer = tracify.send([EVENT])
    assert (answer.outcome, answer.http_status, answer.answered) == (Outcome.RETRYABLE, None, False)
    assert problem in answer.error


class DrippingServer:
    """A server on 127.0.0.1 that answers {"status": true}, one byte every DRIP_SECONDS."""

    DRIP_SECONDS = 0.05
    ANSWER = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
        b"Connection: close\r\n\r\n"
        b'{"status": true}'
    )  # about 6 s in all

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        self.finished = 0  # answers dripped to the end
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/v1/events"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)  # the request: small, in one piece on loopback
                try:
                    for byte in self.ANSWER:
                        if self.stopped.wait(self.DRIP_SECONDS):
                            return
                        conn.sendall(bytes([byte]))
                except OSError:
                    continue  # the client gave up
                self.finished += 1

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def dripping_server() -> Iterator[DrippingServer]:
    server = DrippingServer()
    yield server
    server.close()


def test_timeout_bounds_the_whole_request_not_each_read(dripping_server: DrippingServer) -> None:
    # Every read gets a byte well within the timeout; the whole answer takes ~12x longer.
    slow = TracifyClient(endpoint=dripping_server.endpoint, api_key=KEY, timeout=0.5)
    with slow:
        answer = slow.send([EVENT])
    assert answer.outcome is Outcome.RETRYABLE
    assert answer.http_status is None
    assert "no complete answer within 0.5s" in answer.error
    assert dripping_server.finished == 0
