"""A paginator for big tables: it never counts more than COUNT_CAP + 1 rows."""

from __future__ import annotations

from math import ceil
from typing import TYPE_CHECKING, Any

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.utils.functional import cached_property

from django_tracify.delivery.status import capped_count

COUNT_CAP = 10_000

if TYPE_CHECKING:
    BasePaginator = Paginator[Any]
else:
    BasePaginator = Paginator  # not subscriptable at run time


def estimated_row_count(model: type[Model], using: str) -> int | None:
    """PostgreSQL's planner estimate of the table's rows (kept by ANALYZE/autovacuum)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    # -1: never analysed.
    return int(row[0]) if row and row[0] >= 0 else None


class EstimatedCountPaginator(BasePaginator):
    """Exact below the cap; above it, the table estimate when unfiltered, else 'cap+'.

    The admin shows ``count_label``: '42', '10,000+' or 'about 1,000,000'.
    """

    cap = COUNT_CAP
    object_list: QuerySet[Any]
    _pages_seen = 0

    @cached_property
    def _count_and_kind(self) -> tuple[int, str]:
        queryset = self.object_list
        counted = capped_count(queryset, self.cap)
        if counted <= self.cap:
            return counted, "exact"
        if not queryset.query.has_filters():
            estimate = estimated_row_count(queryset.model, queryset.db)
            if estimate is not None and estimate > self.cap:
                return estimate, "estimate"
        return counted, "capped"

    @cached_property
    def count(self) -> int:
        return self._count_and_kind[0]

    @property
    def count_is_exact(self) -> bool:
        return self._count_and_kind[1] == "exact"

    @property
    def count_label(self) -> str:
        count, kind = self._count_and_kind
        if kind == "estimate":
            return f"about {count:,}"
        if kind == "capped":
            return f"{self.cap:,}+"
        return f"{count:,}"

    @property
    def num_pages(self) -> int:
        counted = max(ceil(self.count / self.per_page), 1)
        # Past a capped count, the pages seen so far (and the next, when it has rows).
        return max(counted, self._pages_seen)

    def validate_number(self, number: Any) -> int:
        if self.count_is_exact:
            return super().validate_number(number)
        # Past a capped or estimated count any page may exist; page() refuses an empty one.
        try:
            number = int(number)
        except (TypeError, ValueError) as err:
            raise PageNotAnInteger("That page number is not an integer") from err
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return int(number)

    def page(self, number: Any) -> Page[Any]:
        # Always a full slice: past an estimate there may be more rows than the count says.
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = self.object_list[bottom : bottom + self.per_page]
        if not self.count_is_exact:
            ahead = self.object_list.values_list("pk", flat=True)[
                bottom : bottom + self.per_page + 1
            ]
            found = len(ahead)
            if number > 1 and not found:
                raise EmptyPage("That page contains no results")
            self._pages_seen = max(self._pages_seen, number + (found > self.per_page))
        return Page(rows, number, self)
