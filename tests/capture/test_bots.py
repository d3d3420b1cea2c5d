from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_tracify.capture import bots
from django_tracify.capture.bots import MAX_USER_AGENT_CHECKED, is_bot
from tests.conftest import BROWSER_UA

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def fresh_verdicts() -> Iterator[None]:
    bots.is_bot_prefix.cache_clear()
    yield
    bots.is_bot_prefix.cache_clear()


def test_crawlers_and_agentless_requests_are_bots_browsers_are_not() -> None:
    assert is_bot(GOOGLEBOT)
    assert is_bot("")
    assert is_bot("   ")
    assert not is_bot(BROWSER_UA)


def test_the_patterns_run_on_a_bounded_prefix_of_a_huge_user_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[str] = []
    crawler = bots._detector.is_crawler

    def spy(user_agent: str) -> bool:
        checked.append(user_agent)
        return bool(crawler(user_agent))

    monkeypatch.setattr(bots._detector, "is_crawler", spy)
    assert is_bot(GOOGLEBOT + " " + "x" * 8192)
    assert not is_bot(BROWSER_UA + " " + "Ü" * 8192)
    assert [len(agent) for agent in checked] == [MAX_USER_AGENT_CHECKED] * 2
