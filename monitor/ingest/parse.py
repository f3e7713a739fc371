"""Parsing feed bytes into plain entries with feedparser.

feedparser only ever sees bytes we fetched ourselves: it never touches the network.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.ingest.html import html_to_text


class ParseError(Exception):
    """The body is not a feed we can read."""


@dataclass(frozen=True)
class Entry:
    """One article as the feed describes it, before storage."""

    key: str                      # identity within the feed: guid, else link, else title+date
    url: str | None
    title: str
    summary: str
    body: str
    author: str | None
    lang: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    link: str | None
    lang: str | None
    entries: list[Entry]


def _datetime(struct: time.struct_time | None) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _text(detail: Any) -> str:
    """Plain text of a feedparser text construct (HTML stripped)."""
    if not detail:
        return ""
    value = detail.get("value", "") if isinstance(detail, dict) else str(detail)
    kind = detail.get("type", "text/html") if isinstance(detail, dict) else "text/html"
    return html_to_text(value) if "html" in kind else " ".join(value.split())


def entry_key(guid: str | None, link: str | None, title: str, published: datetime | None) -> str:
    """Identity of an entry within its feed (SPEC §5): guid, else link, else title and date."""
    if guid and guid.strip():
        key = guid.strip()
    elif link and link.strip():
        key = link.strip()
    else:
        stamp = published.isoformat() if published else ""
        key = "sha1:" + hashlib.sha1(f"{title}\x00{stamp}".encode()).hexdigest()
    # Keys index a unique constraint; absurdly long guids are hashed to fit.
    if len(key) > 500:
        key = "sha1:" + hashlib.sha1(key.encode()).hexdigest()
    return key


_ALTERNATE = re.compile(
    rb"<link\b(?=[^>]*\brel=[\"']?alternate)(?=[^>]*\btype=[\"']?application/(?:rss|atom)\+xml)"
    rb"[^>]*\bhref=[\"']?([^\"' >]+)", re.IGNORECASE)


def alternate_feed_links(page: bytes) -> list[str]:
    """Feed URLs an HTML page advertises with <link rel="alternate">."""
    return [html.unescape(m.decode("utf-8", "replace")) for m in _ALTERNATE.findall(page[:200_000])]


def parse_feed(content: bytes, headers: dict[str, str] | None = None) -> ParsedFeed:
    """Parse RSS/Atom bytes. ``bozo`` (malformed but readable) is not a failure; no entries is."""
    parsed = feedparser.parse(content, response_headers=headers or {}, sanitize_html=True,
                              resolve_relative_uris=True)
    feed = parsed.get("feed", {})
    if not parsed.entries:
        start = content.lstrip()[:200].lower()
        if start.startswith((b"<!doctype html", b"<html")):
            links = alternate_feed_links(content)
            hint = f"; the page links a feed: {links[0]}" if links else ""
            raise ParseError(f"got an HTML page, not a feed{hint}")
        if parsed.get("bozo") and parsed.get("bozo_exception") is not None:
            raise ParseError(f"not a readable feed: {parsed.bozo_exception}")
        if content.strip() and not parsed.get("version"):
            raise ParseError("not a feed: no RSS or Atom document found")
    feed_lang = feed.get("language") or None
    entries = []
    for item in parsed.entries:
        title = _text(item.get("title_detail")) or _text(item.get("title"))
        summary = _text(item.get("summary_detail")) if "summary_detail" in item else ""
        contents = item.get("content") or []
        body = "\n\n".join(t for t in (_text(c) for c in contents) if t)
        if body == summary:
            body = ""
        published = _datetime(item.get("published_parsed")) or _datetime(item.get("updated_parsed"))
        link = item.get("link") or None
        entries.append(Entry(
            key=entry_key(item.get("id"), link, title, published),
            url=link,
            title=title,
            summary=summary,
            body=body,
            author=item.get("author") or None,
            lang=(item.get("content") or [{}])[0].get("language") or feed_lang,
            published_at=published,
        ))
    return ParsedFeed(title=feed.get("title") or None, link=feed.get("link") or None,
                      lang=feed_lang, entries=entries)
