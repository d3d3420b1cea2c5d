"""The HTTP server: the events endpoint, /_control, the page and /api/v1/received."""

from __future__ import annotations

import gzip
import hmac
import json
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from tracify_receiver.faults import Fault, FaultPlan
from tracify_receiver.page import render_page
from tracify_receiver.recorder import (
    Event,
    EventKey,
    RecordedRequest,
    Recorder,
    event_fingerprint,
)
from tracify_receiver.validation import validate_body

EVENTS_PATH = "/api/v1/events"
RECEIVED_PATH = "/api/v1/received"
CONTROL_PATH = "/_control"
TOKEN_HEADER = "tracify-token"
MAX_PROBLEMS_IN_ERROR = 20
_MAX_LINE = 65537

_FAULT_ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "status_false": (200, {"status": False, "error": "rejected (status_false fault)"}),
    "http_400": (400, {"status": False, "error": "bad request (http_400 fault)"}),
    "http_401": (401, {"status": False, "error": "invalid token"}),
    "http_429": (429, {"status": False, "error": "too many requests (http_429 fault)"}),
    "http_500": (500, {"status": False, "error": "internal server error (http_500 fault)"}),
    # A hang exists to make the client time out; its late answer records nothing, so a test
    # can tell the retried delivery apart from one the client abandoned.
    "hang": (200, {"status": True}),
    "reset": (0, {}),  # never sent: the connection is aborted instead
}


class Receiver:
    """A local Tracify-compatible events API that records what it is sent.

    Serves on a background thread between start() and stop(), or inside a with block.
    """

    def __init__(
        self,
        token: str = "demo-key",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the receiver needs a non-empty token")
        self.token = token
        self.host = host
        self.port = port
        self.faults = FaultPlan()
        self.recorder = Recorder()
        self.log = log
        self.stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Receiver:
        """Bind and serve on a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the receiver is already started")
        self.stopping.clear()
        server = _Server((self.host, self.port), self)
        host, port = server.socket.getsockname()[:2]
        self._address = (host, port)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"tracify-receiver-{port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; requests still hanging are cut short."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8765 (known once started)."""
        if self._address is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        """The events endpoint, to use as the Tracify API URL."""
        return self.url + EVENTS_PATH

    @property
    def control_url(self) -> str:
        return self.url + CONTROL_PATH

    def configure(self, control: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a /_control body; returns the fault config. ValueError changes nothing.

        {"reset": true} clears recorded requests and events and all faults before the rest
        applies; {"clear": true} clears only what was recorded. See FaultPlan.configure.
        """
        flags = {key: control[key] for key in ("reset", "clear") if key in control}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"{key} {value!r} is not true or false")
        fault_keys = {key: value for key, value in control.items() if key not in flags}
        FaultPlan().configure(fault_keys)
        if flags.get("reset"):
            self.reset()
        if flags.get("clear"):
            self.clear()
        self.faults.configure(fault_keys)
        return self.faults.config()

    def script(self, *faults: Fault | str | Mapping[str, Any]) -> None:
        """Queue the next answers, e.g. script("http_500", {"kind": "hang", "seconds": 2})."""
        self.faults.push(*faults)

    def requests(self) -> list[RecordedRequest]:
        return self.recorder.requests()

    def accepted_events(self) -> list[Event]:
        return self.recorder.accepted_events()

    def count_by(self, key: EventKey) -> Counter[Hashable]:
        return self.recorder.count_by(key)

    def duplicates(self, key: EventKey = event_fingerprint) -> dict[Hashable, int]:
        return self.recorder.duplicates(key)

    def counters(self) -> dict[str, Any]:
        return self.recorder.counters()

    def clear(self) -> None:
        """Forget recorded requests and events; faults stay."""
        self.recorder.clear()

    def reset(self) -> None:
        """Forget recorded requests and events, and clear every fault."""
        self.recorder.clear()
        self.faults.reset()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a machine
        # without working DNS; the receiver never uses that name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name, self.server_port = host, port

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a flusher killed, a timeout) is not the
        # receiver's fault: one line instead of a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError)):
            print(f"tracify_receiver: {client_address[0]} went away: {error}", file=sys.stderr)
            return
        super().handle_error(request, client_address)


class _BodyError(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tracify-receiver"
    # Headers and body leave in two writes: with Nagle on, a keep-alive client's delayed ACK
    # holds every answer back ~40 ms.
    disable_nagle_algorithm = True

    @property
    def receiver(self) -> Receiver:
        return cast(_Server, self.server).receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Receiver.log gets one line per events request instead.

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        receiver = self.receiver
        if path == "/":
            page = render_page(receiver.requests(), receiver.counters())
            self._send(200, page.encode(), "text/html; charset=utf-8")
        elif path == RECEIVED_PATH:
            received = {"counters": receiver.counters(), "events": receiver.accepted_events()}
            self._send_json(200, received)
        elif path == CONTROL_PATH:
            self._send_json(200, receiver.faults.config())
        else:
            self._send_json(404, {"status": False, "error": f"no such page: {path}"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            raw = self._read_body()
        except _BodyError as err:
            self.close_connection = True
            self._send_json(400, {"status": False, "error": str(err)})
            return
        if path == EVENTS_PATH:
            self._post_events(path, raw)
        elif path == CONTROL_PATH:
            self._post_control(raw)
        else:
            self._send_json(404, {"status": False, "error": f"no such endpoint: {path}"})

    def _post_events(self, path: str, raw: bytes) -> None:
        receiver = self.receiver
        body, parse_error = _parse_json(raw, self.headers.get("Content-Encoding"))
        events = body.get("events") if isinstance(body, dict) else None
        fault: Fault | None = None
        accepted = False
        extra_headers: dict[str, str] = {}
        given = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), receiver.token.encode()):
            status, answer = 401, {"status": False, "error": "invalid token"}
        elif (fault := receiver.faults.next_fault()) is not None and fault.kind != "ok":
            status, answer = _FAULT_ANSWERS[fault.kind]
            if fault.kind == "http_429":
                extra_headers["Retry-After"] = str(fault.retry_after)
        elif parse_error is not None:
            status, answer = 400, {"status": False, "error": parse_error}
        else:
            problems = _poison_problems(receiver.faults, events) or validate_body(body)
            accepted = not problems
            answer = {"status": True} if accepted else {"status": False, "error": _join(problems)}
            status = 200
        reset = fault is not None and fault.kind == "reset"
        request = RecordedRequest(
            time=time.time(),
            method="POST",
            path=path,
            headers={
                name: "***" if name.lower() == TOKEN_HEADER else value
                for name, value in self.headers.items()
            },
            body_size=len(raw),
            events=events if isinstance(events, list) else None,
            status=None if reset else status,
            answer=None if reset else answer,
            fault=None if fault is None else fault.kind,
            accepted=accepted,
        )
        receiver.recorder.record(request)
        if receiver.log is not None:
            receiver.log(_log_line(request))
        if reset:
            self._abort()
            return
        if fault is not None and fault.kind == "hang":
            receiver.stopping.wait(fault.seconds)
        self._send_json(status, answer, extra_headers)

    def _post_control(self, raw: bytes) -> None:
        try:
            control = json.loads(raw or b"{}")
            if not isinstance(control, dict):
                raise ValueError("the control body is not a JSON object")
            config = self.receiver.configure(control)
        except ValueError as err:
            self._send_json(400, {"status": False, "error": str(err)})
            return
        self._send_json(200, config)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            raise _BodyError(f"Content-Length {length!r} is not a number")
        return self.rfile.read(int(length))

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(_MAX_LINE)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BodyError("malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(_MAX_LINE)

    def _abort(self) -> None:
        # Linger 0 makes close() send RST: the client sees a reset, not an answer or a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _send_json(
        self, status: int, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first, e.g. it timed out during a hang.
            self.close_connection = True


def _parse_json(raw: bytes, encoding: str | None) -> tuple[object, str | None]:
    encoding = (encoding or "identity").strip().lower()
    if encoding == "gzip":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return None, "body is not valid gzip"
    elif encoding != "identity":
        return None, f"unsupported Content-Encoding {encoding!r}"
    try:
        return json.loads(raw, parse_constant=_reject_constant), None
    except ValueError as err:
        return None, f"body is not JSON: {err}"


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _poison_problems(faults: FaultPlan, events: object) -> list[str]:
    if faults.poison_marker is None or not isinstance(events, list):
        return []
    return [
        f"events[{index}]: poison event"
        for index, event in enumerate(events)
        if faults.is_poisoned(json.dumps(event, ensure_ascii=False))
    ]


def _join(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS_IN_ERROR])
    hidden = len(problems) - MAX_PROBLEMS_IN_ERROR
    return f"{shown}; and {hidden} more" if hidden > 0 else shown


def _log_line(request: RecordedRequest) -> str:
    status = "RESET" if request.status is None else str(request.status)
    count = len(request.events) if request.events is not None else 0
    line = f"{status} {request.method} {request.path} events={count}"
    if request.fault is not None:
        line += f" fault={request.fault}"
    if request.answer is not None and "error" in request.answer:
        line += f" error={request.answer['error']}"
    return line
