"""Feed discovery for ``pressmon feeds add``: a feed URL as it is, or the feed a page links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urljoin

from monitor.ingest.fetch import Fetcher, FetchError
from monitor.ingest.parse import ParseError, alternate_feed_links, parse_feed


class DiscoveryError(Exception):
    """No feed at that address, and none linked from it."""


@dataclass(frozen=True)
class Discovered:
    url: str
    title: str | None
    entries: int


async def discover(url: str, *, timeout: timedelta = timedelta(seconds=20)) -> Discovered:
    # The operator typed this address: private networks are allowed for this one lookup.
    fetcher = Fetcher(timeout=timeout, max_body=15 * 1024 * 1024, concurrency=2, per_host=2,
                      allow_private=True)
    try:
        try:
            page = await fetcher.fetch(url)
        except FetchError as exc:
            raise DiscoveryError(str(exc)) from None
        headers = {"content-type": page.content_type} if page.content_type else None
        try:
            parsed = parse_feed(page.content, headers)
            return Discovered(page.url, parsed.title, len(parsed.entries))
        except ParseError as exc:
            links = [urljoin(page.url, link) for link in alternate_feed_links(page.content)]
            if not links:
                raise DiscoveryError(f"{exc}; and the page links no feed") from None
        for link in links:
            try:
                result = await fetcher.fetch(link)
                parsed = parse_feed(result.content, {"content-type": result.content_type or ""})
            except (FetchError, ParseError):
                continue
            return Discovered(result.url, parsed.title, len(parsed.entries))
        raise DiscoveryError(f"the page links {len(links)} feed(s), none of them readable: "
                             + ", ".join(links))
    finally:
        await fetcher.aclose()
