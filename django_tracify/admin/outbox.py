"""The outbox in the Django admin: read-only rows, a summary, and retry/discard actions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_tracify import outbox
from django_tracify.admin.paginator import EstimatedCountPaginator
from django_tracify.admin.summary import outbox_summary
from django_tracify.clock import as_utc, utc_now
from django_tracify.conf import without_api_key
from django_tracify.events.builders import DEDUPLICATED, EVENT_TYPES, dedup_key
from django_tracify.events.identity import KIND_NAMES
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.routers import outbox_database

OPERATE_PERMISSION = "operate_outboxevent"
SHORT_ERROR_LENGTH = 60
# A sent row keeps the error of an earlier attempt: history, not a problem to act on.
EARLIER_ERROR = "Sent after a failed attempt:"


def compact_datetime(value: datetime | None) -> SafeString | str:
    # Short and sortable in the list, to the second on hover and on the detail page.
    if value is None:
        return "-"
    value = as_utc(value)  # naive outbox times are UTC (see clock.py)
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}"><span>{}</span> <span>{}</span></time>',
        value.isoformat(),
        f"{local:%Y-%m-%d %H:%M:%S %Z}",
        date_format(local, "Y-m-d"),
        date_format(local, "H:i"),
    )


def detail_datetime(value: datetime | None) -> str:
    if value is None:
        return "-"
    # strftime's %Z, not the date filter's T: that is blank in the repeated autumn hour.
    return f"{timezone.localtime(as_utc(value)):%Y-%m-%d %H:%M:%S %Z}"


def _prefix_lookup(using: str) -> str:
    # MySQL/MariaDB's case-sensitive startswith is LIKE BINARY, which the dedup_key index under
    # a case-insensitive collation cannot serve: the whole table is read. Their plain LIKE is
    # served; a search that also finds other-cased keys is harmless.
    return "istartswith" if connections[using].vendor == "mysql" else "startswith"


if TYPE_CHECKING:
    BaseOutboxAdmin = admin.ModelAdmin[OutboxEvent]
else:
    BaseOutboxAdmin = admin.ModelAdmin  # not subscriptable at run time


class EventTypeFilter(admin.SimpleListFilter):
    # Listed from the code, not SELECT DISTINCT, which would read the whole table.
    title = "type"
    parameter_name = "type"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [(event_type, event_type) for event_type in EVENT_TYPES]

    def queryset(self, request: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(event_type=self.value())
        return queryset


class CreatedRangeFilter(admin.SimpleListFilter):
    title = "created"
    parameter_name = "created"
    RANGES = {
        "1h": ("past hour", timedelta(hours=1)),
        "24h": ("past 24 hours", timedelta(hours=24)),
        "7d": ("past 7 days", timedelta(days=7)),
        "30d": ("past 30 days", timedelta(days=30)),
    }

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.RANGES.items()]

    def queryset(self, request: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value in self.RANGES:
            return queryset.filter(created_at__gte=utc_now() - self.RANGES[value][1])
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(BaseOutboxAdmin):
    list_display = (
        "id",
        "type_name",
        "status_badge",
        "attempts",
        "created",
        "sent",
        "next_attempt",
        "dedup",
        "last_error_short",
    )
    list_display_links = ("id",)
    list_filter = ("status", EventTypeFilter, CreatedRangeFilter)
    search_fields = ("dedup_key",)
    search_help_text = (
        "An event id, an order or conversion id, or the start of a dedup key (purchase:1001)."
    )
    ordering = ("-id",)
    sortable_by = ("id", "created_at")
    list_per_page = 100
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_now", "discard")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "event_type",
                    "status",
                    "dedup_key",
                    "event_url",
                    "created_at_shown",
                )
            },
        ),
        (
            "Delivery",
            {
                "fields": (
                    "attempts",
                    "next_attempt_at_shown",
                    "sent_at_shown",
                    "last_http_status",
                    "last_error_full",
                    "lease_expires_at_shown",
                )
            },
        ),
        ("Identity", {"fields": ("identity_keys",)}),
        ("Payload", {"fields": ("payload_pretty",)}),
    )
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    # The outbox's times are UTC even with USE_TZ=False (clock.py): shown in the current time
    # zone, named, rather than as a bare naive value.
    @admin.display(description="created at")
    def created_at_shown(self, obj: OutboxEvent) -> str:
        return detail_datetime(obj.created_at)

    @admin.display(description="next attempt at")
    def next_attempt_at_shown(self, obj: OutboxEvent) -> str:
        return detail_datetime(obj.next_attempt_at)

    @admin.display(description="sent at")
    def sent_at_shown(self, obj: OutboxEvent) -> str:
        return detail_datetime(obj.sent_at)

    @admin.display(description="lease expires at")
    def lease_expires_at_shown(self, obj: OutboxEvent) -> str:
        return detail_datetime(obj.lease_expires_at)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        return super().get_queryset(request).using(outbox_database())

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxEvent], search_term: str
    ) -> tuple[QuerySet[OutboxEvent], bool]:
        # Equality and prefix lookups only: each one is answered by an index (the unique
        # dedup_key index, and on PostgreSQL its varchar_pattern_ops twin for LIKE 'x%').
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(**{f"dedup_key__{_prefix_lookup(queryset.db)}": term})
        if ":" not in term:
            match |= Q(dedup_key__in=[dedup_key(kind, term) for kind in DEDUPLICATED])
        number = term.removeprefix("#")
        if number.isascii() and number.isdigit() and int(number) < 2**63:
            match |= Q(pk=int(number))
        return queryset.filter(match), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Rows leave by retention; deleting a purchase would let its order be sent again.
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{OPERATE_PERMISSION}")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        summary = outbox_summary(outbox_database())
        return super().changelist_view(
            request, {**(extra_context or {}), "tracify_summary": summary}
        )

    @admin.action(description="Retry now", permissions=["operate"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        changed = outbox.retry_now(queryset)
        self._report(request, changed, "queued for the next flush", outbox.RETRYABLE)

    @admin.action(description="Discard", permissions=["operate"])
    def discard(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        changed = outbox.discard(queryset)
        self._report(request, changed, "discarded", outbox.DISCARDABLE)

    def _report(
        self, request: HttpRequest, changed: int, done: str, statuses: Sequence[str]
    ) -> None:
        noun = "event" if changed == 1 else "events"
        if changed:
            self.message_user(request, f"{changed:,} {noun} {done}.", messages.SUCCESS)
        else:
            names = [str(status) for status in statuses]
            which = ", ".join(names[:-1]) + " or " + names[-1]
            self.message_user(
                request, f"Nothing changed: only {which} events can be {done}.", messages.WARNING
            )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: OutboxEvent) -> SafeString:
        return format_html(
            '<span class="tracify-status tracify-status-{}">{}</span>', obj.status, obj.status
        )

    @admin.display(description="type")
    def type_name(self, obj: OutboxEvent) -> str:
        return obj.event_type

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: OutboxEvent) -> SafeString | str:
        return compact_datetime(obj.created_at)

    @admin.display(description="sent")
    def sent(self, obj: OutboxEvent) -> SafeString | str:
        return compact_datetime(obj.sent_at)

    @admin.display(description="next attempt")
    def next_attempt(self, obj: OutboxEvent) -> SafeString | str:
        return compact_datetime(obj.next_attempt_at if obj.status == OutboxStatus.PENDING else None)

    @admin.display(description="dedup key")
    def dedup(self, obj: OutboxEvent) -> SafeString | str:
        if not obj.dedup_key:
            return "-"
        kind, sep, rest = obj.dedup_key.partition(":")
        part = '<span class="tracify-dedup-part">{}</span>'
        return format_html(part + "<wbr>" + part, kind + sep, rest)

    @admin.display(description="last error")
    def last_error_short(self, obj: OutboxEvent) -> SafeString | str:
        error = without_api_key(obj.last_error)
        if len(error) > SHORT_ERROR_LENGTH:
            error_html = format_html(
                '<span title="{}">{}…</span>', error, error[: SHORT_ERROR_LENGTH - 1]
            )
        else:
            error_html = format_html("{}", error)
        if error and obj.status == OutboxStatus.SENT:
            return format_html(
                '<span class="tracify-earlier-error">{} {}</span>', EARLIER_ERROR, error_html
            )
        return error_html

    @admin.display(description="last error")
    def last_error_full(self, obj: OutboxEvent) -> str:
        error = without_api_key(obj.last_error)
        if error and obj.status == OutboxStatus.SENT:
            return f"{EARLIER_ERROR} {error}"
        return error

    @admin.display(description="URL")
    def event_url(self, obj: OutboxEvent) -> str:
        url = obj.payload.get("url") if isinstance(obj.payload, dict) else None
        return str(url) if url else ""

    @admin.display(description="identity keys")
    def identity_keys(self, obj: OutboxEvent) -> SafeString | str:
        identity = obj.payload.get("identity_data") if isinstance(obj.payload, dict) else None
        if not isinstance(identity, dict) or not identity:
            return ""
        rows: Sequence[tuple[str, str]] = [
            (KIND_NAMES.get(kind, f"kind {kind}"), key)
            for key, kind in sorted(identity.items(), key=lambda item: str(item[1]))
        ]
        return format_html(
            '<table class="tracify-identity">{}</table>',
            format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", rows),
        )

    @admin.display(description="payload")
    def payload_pretty(self, obj: OutboxEvent) -> SafeString:
        text = json.dumps(obj.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="tracify-payload">{}</pre>', without_api_key(text))
