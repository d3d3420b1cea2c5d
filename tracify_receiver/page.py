"""The receiver's HTML page: counters, then the received events, newest first."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from html import escape
from typing import Any

from tracify_receiver.recorder import RecordedRequest
from tracify_receiver.validation import IDENTITY_KINDS

MAX_ROWS = 300

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
td table td { border-color: #eee; font-family: monospace; font-size: 12px; }
tr.rejected > td { background: #fdecec; }
.counters td { font-weight: bold; }
"""


def render_page(requests: list[RecordedRequest], counters: Mapping[str, Any]) -> str:
    """The whole page; every value from a request is escaped."""
    rows = "\n".join(_rows(requests))
    by_type = ", ".join(f"{name}: {count}" for name, count in counters["by_type"].items())
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Tracify receiver</title><style>{_STYLE}</style></head>
<body>
<h1>Tracify receiver</h1>
<table class="counters">
<tr><th>requests</th><th>accepted events</th><th>rejected requests</th><th>faults</th>
<th>accepted by type</th></tr>
<tr><td>{counters["requests"]}</td><td>{counters["accepted"]}</td><td>{counters["rejected"]}</td>
<td>{counters["faults"]}</td><td>{escape(by_type or "none")}</td></tr>
</table>
<h2>Received, newest first (at most {MAX_ROWS} rows)</h2>
<table>
<tr><th>time (UTC)</th><th>type</th><th>url</th><th>data</th><th>identity</th><th>answer</th></tr>
{rows or '<tr><td colspan="6">nothing yet</td></tr>'}
</table>
</body>
</html>
"""


def _rows(requests: list[RecordedRequest]) -> Iterator[str]:
    shown = 0
    for request in reversed(requests):
        answer = _answer_text(request)
        css = "accepted" if request.accepted else "rejected"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(request.time))
        events = request.events or [None]
        for event in reversed(events):
            if shown >= MAX_ROWS:
                return
            shown += 1
            yield (
                f'<tr class="{css}"><td>{when}</td>{_event_cells(event)}'
                f"<td>{escape(answer)}</td></tr>"
            )


def _event_cells(event: object) -> str:
    if not isinstance(event, dict):
        text = "(no events)" if event is None else json.dumps(event)
        return f'<td colspan="4">{escape(text)}</td>'
    data = event.get("data")
    if isinstance(data, dict):
        lines = (
            f"<tr><td>{escape(str(key))}</td><td>{escape(_text(value))}</td></tr>"
            for key, value in data.items()
        )
        data_html = f"<table>{''.join(lines)}</table>"
    else:
        data_html = escape(_text(data))
    identity = event.get("identity_data")
    kinds = identity.values() if isinstance(identity, dict) else []
    names = ", ".join(_kind_name(kind) for kind in kinds)
    return (
        f"<td>{escape(_text(event.get('type')))}</td><td>{escape(_text(event.get('url')))}</td>"
        f"<td>{data_html}</td><td>{escape(names)}</td>"
    )


def _kind_name(kind: object) -> str:
    if type(kind) is int and kind in IDENTITY_KINDS:
        return IDENTITY_KINDS[kind]
    return _text(kind)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _answer_text(request: RecordedRequest) -> str:
    if request.status is None:
        return f"connection reset ({request.fault} fault)"
    text = f"{request.status} {json.dumps(request.answer)}"
    return f"{text} ({request.fault} fault)" if request.fault not in (None, "ok") else text
