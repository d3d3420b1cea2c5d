"""Crawler detection by user agent (crawlerdetect), with the verdict cached per agent."""

from __future__ import annotations

from functools import lru_cache

from crawlerdetect import CrawlerDetect

_detector = CrawlerDetect()


@lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """True for crawlers, and for requests without a user agent: every browser sends one."""
    if not user_agent.strip():
        return True
    return bool(_detector.is_crawler(user_agent))
