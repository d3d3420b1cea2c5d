"""tracify_receiver, the local Tracify events API, driven over real HTTP (no Django needed)."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests import provider_examples
from tests.services.common import REPO_ROOT
from tracify_receiver import Fault, Receiver, dedup_key, validate_event
from tracify_receiver.__main__ import parse_args

TOKEN = "test-token"
ROOT = REPO_ROOT


def calc_group(value: str) -> str:
    """The provider's anonymisation: sha256, drop the last 5 hex characters, sha256 again."""
    digest = hashlib.sha256(value.encode()).hexdigest()
    return hashlib.sha256(digest[:-5].encode()).hexdigest()


EMAIL_KEY = calc_group("jane@example.com")
SESSION_KEY = calc_group("192.168.1.1|Mozilla/5.0")
IP_KEY = calc_group("192.168.1.1")
UA_KEY = calc_group("Mozilla/5.0")
IDENTITY = {EMAIL_KEY: 1, SESSION_KEY: 2, IP_KEY: 3, UA_KEY: 4}


def example(name: str) -> dict[str, Any]:
    """A provider example body (tests/provider_examples.py), with real identity hashes."""
    if name == "postpurchasesurvey":
        body = example("purchase")
        body["events"][0]["type"] = "postpurchasesurvey"
        body["events"][0]["data"] = {
            "origin": "https://www.yourwebsite.com",
            "order_id": "123456789",
            "source": "podcast",
        }
        return body
    one = copy.deepcopy(provider_examples.EXAMPLES[name])
    one["identity_data"] = dict(IDENTITY)
    return {"events": [one]}


def event(name: str, **data: str) -> dict[str, Any]:
    """One event of a provider example, with data keys added or replaced."""
    one: dict[str, Any] = example(name)["events"][0]
    one["data"].update(data)
    return one


@pytest.fixture(scope="module")
def running() -> Iterator[Receiver]:
    with Receiver(token=TOKEN) as receiver:
        yield receiver


@pytest.fixture
def receiver(running: Receiver) -> Receiver:
    running.reset()
    return running


def post(
    receiver: Receiver,
    body: object = None,
    *,
    token: str | None = TOKEN,
    timeout: float = 10,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {"tracify-token": token} if token is not None else {}
    sent.update(headers or {})
    if data is None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    return requests.post(receiver.endpoint, data=data, headers=sent, timeout=timeout)


def control(receiver: Receiver, body: object) -> requests.Response:
    return requests.post(receiver.control_url, json=body, timeout=10)


# --- valid events ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(provider_examples.EXAMPLES))
def test_provider_example_is_accepted(receiver: Receiver, name: str) -> None:
    body = example(name)

    response = post(receiver, body)

    assert response.status_code == 200
    assert response.json() == {"status": True}
    assert receiver.accepted_events() == body["events"]


def test_provider_identity_keys_are_64_hex_too(receiver: Receiver) -> None:
    body = example("pageview")
    body["events"][0]["identity_data"] = dict(provider_examples.IDENTITY)

    assert post(receiver, body).json() == {"status": True}


def test_postpurchasesurvey_is_accepted(receiver: Receiver) -> None:
    body = example("postpurchasesurvey")

    assert post(receiver, body).json() == {"status": True}
    assert receiver.accepted_events() == body["events"]


def test_a_batch_of_every_example_is_accepted_and_counted(receiver: Receiver) -> None:
    events = [example(name)["events"][0] for name in sorted(provider_examples.EXAMPLES)]

    assert post(receiver, {"events": events}).json() == {"status": True}

    assert receiver.accepted_events() == events
    assert receiver.counters() == {
        "requests": 1,
        "accepted": 5,
        "rejected": 0,
        "faults": 0,
        "by_type": dict.fromkeys(sorted(provider_examples.EXAMPLES), 1),
    }


def test_validate_event_names_no_problem_for_a_valid_event() -> None:
    assert validate_event(event("purchase")) == []
    assert validate_event(event("purchase", amount="1")) == [
        "event.data.amount: '1' is not a string with exactly 2 decimals"
    ]


# --- validation: each rule rejects with HTTP 200 and a message naming the field -------------


def set_(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(target: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(target: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        del target[last]

    return change


def identity(*pairs: tuple[object, object]) -> dict[object, object]:
    return dict(pairs)


RULES = [
    ("purchase", set_("extra", "x"), "events[0].extra: unexpected key"),
    *(("purchase", drop(key), f"events[0].{key}: missing") for key in ("url", "customer_site_id")),
    *(("purchase", drop(key), f"events[0].{key}: missing") for key in ("identity_data", "type")),
    *(("purchase", drop(key), f"events[0].{key}: missing") for key in ("datetime", "data")),
    ("pageview", set_("url", "www.shop.com/x"), "events[0].url: 'www.shop.com/x' is not an http"),
    ("pageview", set_("url", "ftp://shop.com/x"), "events[0].url: 'ftp://shop.com/x' is not"),
    ("pageview", set_("url", 7), "events[0].url: 7 is not an http(s) URL"),
    ("pageview", set_("customer_site_id", "site-1"), "events[0].customer_site_id: 'site-1' is"),
    ("pageview", set_("customer_site_id", "0" * 32), "events[0].customer_site_id:"),
    (
        "pageview",
        set_("identity_data", identity((IP_KEY.upper(), 3), (UA_KEY, 4))),
        f"events[0].identity_data: key '{IP_KEY.upper()}' is not 64 lower-case hex",
    ),
    (
        "pageview",
        set_("identity_data", identity(("192.168.1.1", 3), (UA_KEY, 4))),
        "events[0].identity_data: key '192.168.1.1' is not 64 lower-case hex",
    ),
    (
        "pageview",
        set_("identity_data", identity((IP_KEY, 3), (UA_KEY, 4), (EMAIL_KEY, 5))),
        f"events[0].identity_data['{EMAIL_KEY}']: 5 is not an identity kind 1..4",
    ),
    (
        "pageview",
        set_("identity_data", identity((IP_KEY, "3"), (UA_KEY, 4))),
        f"events[0].identity_data['{IP_KEY}']: '3' is not an identity kind",
    ),
    (
        "pageview",
        set_("identity_data", identity((IP_KEY, 3), (UA_KEY, 4), (EMAIL_KEY, True))),
        f"events[0].identity_data['{EMAIL_KEY}']: True is not an identity kind",
    ),
    (
        "pageview",
        set_("identity_data", identity((EMAIL_KEY, 1), (UA_KEY, 4))),
        "events[0].identity_data: no kind 3 (IP address) entry",
    ),
    (
        "pageview",
        set_("identity_data", identity((EMAIL_KEY, 1), (IP_KEY, 3))),
        "events[0].identity_data: no kind 4 (user agent) entry",
    ),
    ("pageview", set_("identity_data", []), "events[0].identity_data: [] is not a JSON object"),
    *(
        ("pageview", set_("datetime", bad), f"events[0].datetime: '{bad}' does not match")
        for bad in (
            "2024-06-21T12:36:37",
            "2024-06-21 12:36:37.5",
            "2024-6-21 12:36:37",
            "2024-06-21 12:36:37Z",
        )
    ),
    (
        "pageview",
        set_("datetime", "2024-02-30 12:00:00"),
        "events[0].datetime: '2024-02-30 12:00:00' is not a real date and time",
    ),
    ("pageview", set_("datetime", 1718973397), "events[0].datetime: 1718973397 does not match"),
    ("pageview", set_("type", "click"), "events[0].type: 'click' is not one of pageview,"),
    ("pageview", set_("data", ["x"]), "events[0].data: ['x'] is not a JSON object"),
    ("pageview", set_("data.utm_source", 5), "events[0].data.utm_source: 5 is not a string"),
    ("pageview", drop("data.origin"), "events[0].data.origin: missing"),
    (
        "pageview",
        set_("data.origin", "https://www.yourwebsite.com/shop"),
        "events[0].data.origin: 'https://www.yourwebsite.com/shop' is not an origin",
    ),
    ("pageview", set_("data.origin", "www.yourwebsite.com"), "events[0].data.origin: 'www."),
    ("purchase", drop("data.order_id"), "events[0].data.order_id: missing"),
    ("purchase", set_("data.order_id", ""), "events[0].data.order_id: is empty"),
    ("purchase", drop("data.currency"), "events[0].data.currency: missing"),
    ("purchase", set_("data.currency", "eur"), "events[0].data.currency: 'eur' is not a 3-letter"),
    ("purchase", set_("data.currency", "EURO"), "events[0].data.currency: 'EURO' is not"),
    ("purchase", drop("data.amount"), "events[0].data.amount: missing"),
    (
        "purchase",
        set_("data.amount", "10.5"),
        "events[0].data.amount: '10.5' is not a string with exactly 2 decimals",
    ),
    ("purchase", set_("data.amount", "100"), "events[0].data.amount: '100' is not a string with"),
    ("purchase", set_("data.amount", "1,00"), "events[0].data.amount: '1,00' is not a string"),
    ("purchase", set_("data.amount", 100.0), "events[0].data.amount: 100.0 is not a string"),
    ("purchase", drop("data.AMT2"), "events[0].data.AMT2: missing (ITEM2 is present)"),
    ("purchase", drop("data.QTY1"), "events[0].data.QTY1: missing (ITEM1 is present)"),
    ("purchase", set_("data.AMT3", "5"), "events[0].data.ITEM3: missing (AMT3 is present)"),
    ("purchase", set_("data.ITEM4", "x"), "events[0].data.ITEM3: missing (items are numbered"),
    ("purchase", set_("data.ITEM0", "x"), "events[0].data.ITEM0: items are numbered from 1"),
    ("purchase", set_("data.ITEM1", ""), "events[0].data.ITEM1: is empty"),
    ("purchase", set_("data.AMT1", "abc"), "events[0].data.AMT1: 'abc' is not a decimal number"),
    ("purchase", set_("data.AMT1", "-25"), "events[0].data.AMT1: '-25' is not a decimal number"),
    ("purchase", set_("data.QTY1", "0"), "events[0].data.QTY1: '0' is not a positive whole"),
    ("purchase", set_("data.QTY1", "1.5"), "events[0].data.QTY1: '1.5' is not a positive whole"),
    ("purchase", set_("data.QTY1", 2), "events[0].data.QTY1: 2 is not a string"),
    ("conversion", drop("data.conversion_id"), "events[0].data.conversion_id: missing"),
    ("conversion", set_("data.currency", "euro"), "events[0].data.currency: 'euro' is not"),
    ("conversion", set_("data.amount", "9.999"), "events[0].data.amount: '9.999' is not a string"),
    ("postpurchasesurvey", drop("data.order_id"), "events[0].data.order_id: missing"),
    ("postpurchasesurvey", drop("data.source"), "events[0].data.source: missing"),
]


@pytest.mark.parametrize(("name", "change", "message"), RULES)
def test_each_rule_rejects_with_a_message_naming_the_field(
    receiver: Receiver, name: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    body = example(name)
    change(body["events"][0])

    response = post(receiver, body)

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] is False
    assert message in answer["error"]
    assert receiver.accepted_events() == []
    assert receiver.counters()["rejected"] == 1
    assert receiver.requests()[0].answer == answer


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body: [] is not a JSON object"),
        ({}, "events: missing"),
        ({"events": []}, "events: is an empty list"),
        ({"events": {}}, "events: {} is not a list"),
        ({"events": ["x"]}, "events[0]: 'x' is not a JSON object"),
        ({"events": example("addtocart")["events"], "debug": 1}, "body.debug: unexpected key"),
    ],
)
def test_a_malformed_body_is_rejected(receiver: Receiver, body: object, message: str) -> None:
    response = post(receiver, body)

    assert response.status_code == 200
    assert response.json() == {"status": False, "error": message}
    assert receiver.accepted_events() == []


def test_one_bad_event_rejects_the_whole_batch(receiver: Receiver) -> None:
    good, bad = event("pageview"), event("purchase", amount="10.5")

    answer = post(receiver, {"events": [good, bad]}).json()

    assert answer == {
        "status": False,
        "error": "events[1].data.amount: '10.5' is not a string with exactly 2 decimals",
    }
    assert receiver.accepted_events() == []


@pytest.mark.parametrize("raw", [b"not json", b'{"events": [NaN]}', b"\xff\xfe\x00", b""])
def test_a_body_that_is_not_json_gets_400(receiver: Receiver, raw: bytes) -> None:
    response = post(receiver, data=raw)

    assert response.status_code == 400
    assert response.json()["status"] is False
    assert "not JSON" in response.json()["error"]
    assert receiver.accepted_events() == []


# --- transport -------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong", "", None, TOKEN.upper()])
def test_a_missing_or_wrong_token_gets_401(receiver: Receiver, token: str | None) -> None:
    response = post(receiver, example("pageview"), token=token)

    assert response.status_code == 401
    assert response.json() == {"status": False, "error": "invalid token"}
    assert receiver.accepted_events() == []


def test_the_token_is_not_recorded(receiver: Receiver) -> None:
    post(receiver, example("pageview"))

    recorded = receiver.requests()[0]
    assert recorded.headers["tracify-token"] == "***"
    assert TOKEN not in repr(receiver.requests())
    assert TOKEN not in requests.get(receiver.url + "/", timeout=10).text


def test_a_gzip_body_is_accepted(receiver: Receiver) -> None:
    body = example("purchase")
    raw = gzip.compress(json.dumps(body).encode())

    response = post(receiver, data=raw, headers={"Content-Encoding": "gzip"})

    assert response.json() == {"status": True}
    assert receiver.accepted_events() == body["events"]
    assert receiver.requests()[0].body_size == len(raw)


def test_a_broken_gzip_body_gets_400(receiver: Receiver) -> None:
    response = post(receiver, data=b"plain, not gzip", headers={"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json() == {"status": False, "error": "body is not valid gzip"}


def test_a_chunked_body_is_accepted(receiver: Receiver) -> None:
    events = example("addtocart")["events"]
    parts = iter([b'{"events": ', json.dumps(events).encode(), b"}"])

    response = post(receiver, data=parts)

    assert response.json() == {"status": True}
    assert receiver.requests()[0].headers["Transfer-Encoding"] == "chunked"
    assert receiver.accepted_events() == events


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [("status_false", 200), ("http_400", 400), ("http_401", 401), ("http_500", 500)],
)
def test_a_scripted_answer_is_given_once_and_records_nothing(
    receiver: Receiver, kind: str, status: int
) -> None:
    body = example("purchase")
    receiver.script(kind)

    faulted = post(receiver, body)
    after = post(receiver, body)

    assert faulted.status_code == status
    assert faulted.json()["status"] is False
    assert after.json() == {"status": True}
    assert receiver.accepted_events() == body["events"]
    assert [r.fault for r in receiver.requests()] == [kind, None]


def test_http_429_sends_retry_after(receiver: Receiver) -> None:
    receiver.script({"kind": "http_429", "retry_after": 7})

    response = post(receiver, example("pageview"))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert receiver.accepted_events() == []


def test_hang_makes_a_client_with_a_shorter_timeout_time_out(receiver: Receiver) -> None:
    body = example("purchase")
    receiver.script(Fault("hang", seconds=2))

    with pytest.raises(requests.Timeout):
        post(receiver, body, timeout=0.5)

    assert receiver.accepted_events() == []
    assert receiver.requests()[0].fault == "hang"
    # The hanging request holds one thread only: the retry is answered at once.
    assert post(receiver, body, timeout=1.5).json() == {"status": True}
    assert receiver.accepted_events() == body["events"]


def test_hang_answers_200_late_and_records_no_event(receiver: Receiver) -> None:
    receiver.script({"kind": "hang", "seconds": 0.2})

    response = post(receiver, example("pageview"), timeout=10)

    assert response.status_code == 200
    assert response.json() == {"status": True}
    assert receiver.accepted_events() == []


def test_hang_is_bounded() -> None:
    with pytest.raises(ValueError, match="hang seconds 600"):
        Fault("hang", seconds=600)


def test_reset_aborts_the_connection_without_an_answer(receiver: Receiver) -> None:
    body = example("purchase")
    receiver.script("reset")

    with pytest.raises(requests.ConnectionError) as caught:
        post(receiver, body)

    # A reset (RST), not a closed connection (FIN) nor an answer.
    assert "ConnectionResetError" in repr(caught.value)
    assert receiver.accepted_events() == []
    assert receiver.requests()[0].status is None
    assert post(receiver, body).json() == {"status": True}


def test_a_client_that_resets_mid_body_gets_one_line_not_a_traceback(
    receiver: Receiver, capfd: pytest.CaptureFixture[str]
) -> None:
    parts = urlsplit(receiver.endpoint)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            f"POST {parts.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode()
        )
        time.sleep(0.2)  # the handler is now waiting for the rest of the body
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 5
    err = ""
    while "went away" not in err and time.monotonic() < deadline:
        time.sleep(0.05)
        err += capfd.readouterr().err
    assert "went away" in err
    assert "Traceback" not in err
    assert post(receiver, example("purchase")).json() == {"status": True}


def test_the_script_is_first_in_first_out_and_ok_passes_through(receiver: Receiver) -> None:
    body = example("pageview")
    receiver.script("http_500", {"kind": "http_429", "retry_after": 1}, "ok", "status_false")

    answers = [post(receiver, body) for _ in range(5)]

    assert [a.status_code for a in answers] == [500, 429, 200, 200, 200]
    assert [a.json()["status"] for a in answers] == [False, False, True, False, True]
    assert len(receiver.accepted_events()) == 2


def test_a_wrong_token_does_not_use_up_the_script(receiver: Receiver) -> None:
    receiver.script("http_500")

    assert post(receiver, example("pageview"), token="wrong").status_code == 401
    assert post(receiver, example("pageview")).status_code == 500


def test_fault_rate_1_faults_every_request_with_the_chosen_mix(receiver: Receiver) -> None:
    receiver.configure({"fault_rate": 1, "mix": ["http_500"]})

    statuses = [post(receiver, example("pageview")).status_code for _ in range(5)]

    assert statuses == [500] * 5
    assert receiver.counters()["faults"] == 5
    assert receiver.accepted_events() == []


def test_random_faults_repeat_with_the_same_seed(receiver: Receiver) -> None:
    def run() -> list[tuple[int, bool]]:
        receiver.reset()
        receiver.configure({"fault_rate": 0.5, "seed": 7, "mix": ["http_500", "status_false"]})
        answers = [post(receiver, example("pageview")) for _ in range(20)]
        return [(a.status_code, a.json()["status"]) for a in answers]

    first = run()

    assert run() == first
    assert set(first) == {(200, True), (200, False), (500, False)}
    assert len(receiver.accepted_events()) == first.count((200, True))


def test_a_batch_with_a_poison_event_is_rejected_whole(receiver: Receiver) -> None:
    receiver.configure({"poison_marker": "POISON"})
    poisoned = event("purchase", ITEM1="a POISON pill")
    batch = [event("pageview"), poisoned, event("addtocart")]

    rejected = post(receiver, {"events": batch})
    clean = post(receiver, {"events": [batch[0], batch[2]]})

    assert rejected.status_code == 200
    assert rejected.json() == {"status": False, "error": "events[1]: poison event"}
    assert clean.json() == {"status": True}
    assert receiver.accepted_events() == [batch[0], batch[2]]


# --- control over HTTP -----------------------------------------------------------------------


def test_faults_are_set_and_read_over_http(receiver: Receiver) -> None:
    script = ["http_500", {"kind": "http_429", "retry_after": 3}]

    set_response = control(receiver, {"script": script, "poison_marker": "BAD"})
    config = requests.get(receiver.control_url, timeout=10).json()
    answers = [post(receiver, example("pageview")) for _ in range(3)]

    assert set_response.status_code == 200
    assert set_response.json() == config
    assert config["script"] == [{"kind": "http_500"}, {"kind": "http_429", "retry_after": 3}]
    assert config["poison_marker"] == "BAD"
    assert [a.status_code for a in answers] == [500, 429, 200]
    assert answers[1].headers["Retry-After"] == "3"
    assert post(receiver, {"events": [event("pageview", utm_source="BAD")]}).json() == {
        "status": False,
        "error": "events[0]: poison event",
    }


def test_append_adds_to_the_script(receiver: Receiver) -> None:
    control(receiver, {"script": ["http_500"]})
    config = control(receiver, {"append": [{"kind": "hang", "seconds": 1}]}).json()

    assert config["script"] == [{"kind": "http_500"}, {"kind": "hang", "seconds": 1}]


def test_reset_over_http_clears_events_and_faults(receiver: Receiver) -> None:
    post(receiver, example("pageview"))
    control(receiver, {"script": ["http_500"], "poison_marker": "x", "fault_rate": 0.5})

    config = control(receiver, {"reset": True}).json()

    assert receiver.accepted_events() == []
    assert receiver.requests() == []
    assert config["script"] == []
    assert config["fault_rate"] == 0
    assert config["poison_marker"] is None
    assert post(receiver, example("pageview")).json() == {"status": True}


def test_clear_over_http_keeps_the_faults(receiver: Receiver) -> None:
    post(receiver, example("pageview"))

    config = control(receiver, {"clear": True, "script": ["http_500"]}).json()

    assert receiver.accepted_events() == []
    assert config["script"] == [{"kind": "http_500"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"script": ["explode"]}, "unknown fault kind 'explode'"),
        ({"script": "http_500"}, "script is not a list"),
        ({"fault_rate": 2}, "fault_rate 2 is not a number within 0..1"),
        ({"mix": []}, "mix is not a non-empty list"),
        ({"mix": [{"kind": "http_500"}]}, "mix entry {'kind': 'http_500'} is not a fault kind"),
        ({"mix": ["http_503"]}, "unknown fault kind 'http_503'"),
        ({"seed": "one"}, "seed 'one' is not a whole number"),
        ({"nope": 1}, "unknown control keys: nope"),
        ({"reset": "yes"}, "reset 'yes' is not true or false"),
        ({"reset": True, "fault_rate": -1}, "fault_rate -1 is not a number within 0..1"),
        ({"script": [{"kind": "hang", "seconds": 120}]}, "hang seconds 120"),
        ({"poison_marker": ""}, "poison_marker is not a non-empty string"),
        ([], "the control body is not a JSON object"),
    ],
)
def test_a_bad_control_body_gets_400_and_changes_nothing(
    receiver: Receiver, body: object, message: str
) -> None:
    post(receiver, example("pageview"))
    receiver.configure({"poison_marker": "KEEP"})

    response = control(receiver, body)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert receiver.faults.config()["poison_marker"] == "KEEP"
    assert len(receiver.accepted_events()) == 1


# --- views -----------------------------------------------------------------------------------


def test_received_json_lists_accepted_events_and_counters(receiver: Receiver) -> None:
    body = example("purchase")
    post(receiver, body)
    post(receiver, example("pageview"), token="wrong")

    received = requests.get(receiver.url + "/api/v1/received", timeout=10).json()

    assert received["events"] == body["events"]
    assert received["counters"] == {
        "requests": 2,
        "accepted": 1,
        "rejected": 1,
        "faults": 0,
        "by_type": {"purchase": 1},
    }


def test_the_page_lists_events_newest_first_escaped(receiver: Receiver) -> None:
    first = event("pageview", utm_source="<script>alert(1)</script>")
    first["url"] = "https://www.yourwebsite.com/first"
    second = event("purchase", amount="10.5")
    second["url"] = "https://www.yourwebsite.com/second"
    post(receiver, {"events": [first]})
    post(receiver, {"events": [second]})

    response = requests.get(receiver.url + "/", timeout=10)

    page = response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert page.index("/second") < page.index("/first")
    assert "email, session, IP address, user agent" in page
    assert "is not a string with exactly 2 decimals" in page
    assert "<td>2</td><td>1</td><td>1</td>" in page  # requests, accepted, rejected


def test_an_unknown_path_gets_404(receiver: Receiver) -> None:
    assert requests.get(receiver.url + "/nothing", timeout=10).status_code == 404
    assert requests.post(receiver.url + "/api/v2/events", json={}, timeout=10).status_code == 404


# --- what tests of the app need --------------------------------------------------------------


def test_duplicates_finds_an_order_delivered_twice(receiver: Receiver) -> None:
    post(receiver, example("purchase"))
    post(receiver, example("pageview"))
    assert receiver.duplicates() == {}
    assert receiver.duplicates(dedup_key) == {}

    post(receiver, example("purchase"))

    assert receiver.duplicates(dedup_key) == {"purchase:123456789": 2}
    assert list(receiver.duplicates().values()) == [2]
    assert receiver.count_by(dedup_key) == {"purchase:123456789": 2}


def test_concurrent_requests_are_all_recorded(receiver: Receiver) -> None:
    def send(worker: int) -> None:
        with requests.Session() as session:
            for n in range(20):
                body = {"events": [event("purchase", order_id=f"{worker}-{n}")]}
                headers = {"tracify-token": TOKEN}
                session.post(receiver.endpoint, json=body, headers=headers, timeout=10)

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert receiver.counters()["requests"] == 160
    assert receiver.counters()["accepted"] == 160
    assert len(receiver.count_by(dedup_key)) == 160
    assert receiver.duplicates(dedup_key) == {}


# --- CLI -------------------------------------------------------------------------------------


def test_the_cli_binds_to_localhost_by_default() -> None:
    args = parse_args([])

    assert (args.host, args.port, args.token) == ("127.0.0.1", 8765, "demo-key")
    assert Receiver().host == "127.0.0.1"


def test_the_cli_help_shows_the_defaults_a_shop_must_match(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())

    assert "(default: 127.0.0.1)" in help_text
    assert "(default: 8765)" in help_text
    assert "(default: demo-key)" in help_text
    assert "'ENDPOINT': 'http://127.0.0.1:8765/api/v1/events', 'API_KEY': 'demo-key'" in help_text


def test_the_cli_serves_until_sigterm_and_obeys_control() -> None:
    command = [sys.executable, "-m", "tracify_receiver", "--port", "0", "--token", TOKEN]
    command += ["--poison-marker", "POISON", "--quiet"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            first_line = process.stdout.readline()
            assert first_line.startswith("Tracify receiver on http://127.0.0.1:")
            url = first_line.split()[-1].rstrip("/")
            endpoint = url + "/api/v1/events"
            headers = {"tracify-token": TOKEN}
            requests.post(url + "/_control", json={"script": ["http_500"]}, timeout=10)

            faulted = requests.post(endpoint, json=example("pageview"), headers=headers, timeout=10)
            poison = {"events": [event("pageview", utm_source="POISON")]}
            poisoned = requests.post(endpoint, json=poison, headers=headers, timeout=10)
            accepted = requests.post(
                endpoint, json=example("purchase"), headers=headers, timeout=10
            )
            received = requests.get(url + "/api/v1/received", timeout=10).json()

            assert faulted.status_code == 500
            assert poisoned.json() == {"status": False, "error": "events[0]: poison event"}
            assert accepted.json() == {"status": True}
            assert received["events"] == example("purchase")["events"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
