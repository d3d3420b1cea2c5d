"""One pageview per request, whoever asks: the view (`track_pageview`) or TracifyMiddleware."""

from __future__ import annotations

import pytest

from django_tracify.models import OutboxEvent
from tests.test_middleware import Fetch, any_browser, tracked_site

pytestmark = [pytest.mark.urls("tests.middleware_views")]
__all__ = ["any_browser", "tracked_site"]


@pytest.mark.parametrize("path", ["/tracked/", "/async-tracked/"])
def test_a_view_that_tracks_its_pageview_gets_one_pageview(any_browser: Fetch, path: str) -> None:
    response = any_browser(path)
    [pageview] = OutboxEvent.objects.filter(event_type="pageview")
    # Asked twice by the view (with and without the request), once more by the middleware.
    assert f"<p>{pageview.pk} {pageview.pk}</p>".encode() in response.content
