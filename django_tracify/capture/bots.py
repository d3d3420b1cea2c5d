"""Crawler detection by user agent (crawlerdetect), with the verdict cached per agent.

crawlerdetect's patterns cost time in proportion to the user agent's length (~20 ms for 8 KB),
and any client can send a long one: only its first MAX_USER_AGENT_CHECKED characters are
checked. Browsers' user agents are far shorter, and crawlers name themselves near the start.
"""

from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect

MAX_USER_AGENT_CHECKED = 512

_detector = CrawlerDetect()


def is_bot(user_agent: str) -> bool:
    """True for crawlers, and for requests without a user agent: every browser sends one."""
    return is_bot_prefix(user_agent[:MAX_USER_AGENT_CHECKED])


@lru_cache(maxsize=4096)
def is_bot_prefix(user_agent: str) -> bool:
    if not user_agent.strip():
        return True
    return bool(_detector.is_crawler(user_agent))
