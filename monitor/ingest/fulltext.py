"""Full text: fetch an article's page (same guards as feeds) and extract its main text.

For feeds with ``fulltext: true``, so that rules see the whole article rather than a
two-line summary. A failure is reported, never fatal: the caller keeps the summary.
"""

from __future__ import annotations

import asyncio
import logging

from monitor.ingest.fetch import Fetcher, FetchError

log = logging.getLogger(__name__)

# Below this many characters, "extracted text" is usually a cookie banner or a teaser.
MIN_CHARS = 200


class FulltextError(Exception):
    """No usable text could be had from the page; the message says why."""


def extract_text(page: bytes, url: str | None = None) -> str:
    """The main text of an HTML page (boilerplate, menus and comments removed)."""
    import trafilatura  # imported on first use: a noticeable import for feeds that never need it

    try:
        text = trafilatura.extract(page, url=url, include_comments=False, include_tables=False,
                                   favor_precision=True)
    except Exception as exc:  # noqa: BLE001 - a parser failure is one article's problem
        raise FulltextError(f"extraction failed: {type(exc).__name__}") from None
    if not text or len(text.strip()) < MIN_CHARS:
        raise FulltextError("no article text found on the page")
    return text.strip()


class FulltextFetcher:
    """Fetches article pages with its own bounded concurrency, beside the feed polls."""

    def __init__(self, fetcher: Fetcher, concurrency: int = 4) -> None:
        self._fetcher = fetcher
        self._slots = asyncio.Semaphore(concurrency)

    async def text(self, url: str) -> str:
        async with self._slots:
            try:
                result = await self._fetcher.fetch(url)
            except FetchError as exc:
                raise FulltextError(f"page fetch failed: {exc}") from None
        content_type = (result.content_type or "").lower()
        if content_type and "html" not in content_type and "xml" not in content_type:
            raise FulltextError(f"not an HTML page ({content_type.split(';')[0]})")
        return await asyncio.to_thread(extract_text, result.content, result.url)
