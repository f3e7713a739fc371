"""Parsing feed bytes into plain entries: RSS and Atom with feedparser, JSON Feed by hand.

feedparser only ever sees bytes we fetched ourselves: it never touches the network.
Language tags are normalised (``lang.normalise``); an entry without one takes the
feed's, and detection from the text is left to the caller (``lang.detect``).

Fast path. feedparser is pure Python (~12-17 ms for a 25-item feed) and was the first
ingest cycle's bottleneck, so ``parse_feed`` first tries ``fastfeed.parse_fast``: expat
via ``xml.etree.ElementTree`` plus feedparser's own pieces (encoding detection, date
parser, "looks like HTML" guess, URI joining, and its sanitiser when it could matter).
It accepts only the common, well-formed case - UTF-8 (per feedparser's own encoding
rules), no DOCTYPE or ENTITY declarations, well-formed per expat, ``<rss><channel>``
(0.91-2.0) or Atom 1.0, with at least one entry, and only elements, attributes and
namespaces (dc:, content:encoded, atom:link, sy:, media:content/thumbnail) whose
feedparser handling it reproduces exactly - and returns ``None`` otherwise: RSS 1.0/RDF,
other encodings, ``xml:base``, Atom xhtml or base64 content, HTTP Content-Location or
Content-Language, repeated single-valued elements, unknown elements. Then the
feedparser path below runs unchanged, so the result never depends on which path read
the feed (``tests/ingest_pure/test_fastfeed.py`` checks that differentially), and error
reporting (HTML pages, non-feeds, broken XML) stays feedparser's.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import feedparser

from monitor.ingest.html import html_to_text
from monitor.ingest.lang import normalise


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
    hub: str | None = None           # WebSub hub: <link rel="hub">, <atom:link rel="hub">, JSON Feed hubs
    self_url: str | None = None      # the feed's own URL as it names it (rel="self", JSON feed_url)
    ttl: timedelta | None = None     # RSS <ttl>, within TTL_MIN..TTL_MAX


TTL_MIN = timedelta(minutes=1)
TTL_MAX = timedelta(days=7)
"""RSS ``<ttl>`` outside 1 minute .. 7 days is clamped; zero, negative or non-numeric is ignored.
The poller applies its own ``max_interval`` on top (SPEC §5)."""


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


def _ttl(value: Any) -> timedelta | None:
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    if minutes <= 0:
        return None
    return max(TTL_MIN, min(TTL_MAX, timedelta(minutes=min(minutes, 10**7))))


def _feed_link(feed: Any, rel: str) -> str | None:
    for link in feed.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == rel and link.get("href"):
            return str(link["href"]).strip() or None
    return None


_JSON_TYPES = ("application/feed+json", "application/json")


def _is_json(content: bytes, headers: dict[str, str] | None) -> bool:
    start = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start == b"{":
        return True
    if start == b"<":
        return False
    ctype = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    return _media_type(ctype) in _JSON_TYPES


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def parse_feed(content: bytes, headers: dict[str, str] | None = None) -> ParsedFeed:
    """Parse RSS, Atom or JSON Feed bytes.

    ``bozo`` (malformed but readable XML) is not a failure; a body that is not a feed is
    (``ParseError``), while a valid feed with no entries is fine. JSON Feed is chosen by
    a body starting with "{", or a JSON content type (``application/feed+json``,
    ``application/json``) on a body that does not start with "<".
    """
    if _is_json(content, headers):
        return parse_json_feed(content)
    # XML served as JSON (a misconfigured server): feedparser would refuse the media type.
    headers = {k: v for k, v in (headers or {}).items()
               if k.lower() != "content-type" or _media_type(v) not in _JSON_TYPES}
    from monitor.ingest.fastfeed import parse_fast  # imports this module

    content = turkish_mislabelled_as_utf8(content, headers)
    return parse_fast(content, headers) or _parse_with_feedparser(content, headers)


_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([^\s;\"']+)", re.IGNORECASE)
UTF8_NAMES = ("utf-8", "utf8")


def names_only_utf8(content: bytes, headers: dict[str, str] | None) -> bool:
    """Whether every encoding the response names (HTTP charset, XML declaration) is UTF-8;
    true too when it names none."""
    ctype = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    charset, xml = _CHARSET.search(ctype), _XML_ENCODING.match(content[:500])
    named = (charset.group(1) if charset else "", xml.group(1).decode("latin-1") if xml else "")
    return all(n.lower().replace("_", "-") in UTF8_NAMES for n in named if n)
# The bytes where windows-1254 (Turkish) and windows-1252 differ in letters: Ğ İ Ş ğ ı ş
# in the first, Ð Ý Þ ð ý þ (Icelandic, Faroese) in the second.
_TURKISH_LETTERS = re.compile(rb"[\xd0\xdd\xde\xf0\xfd\xfe]")
_NORDIC = re.compile(rb"<(?:\w+:)?language>\s*(?:is|fo)\b", re.IGNORECASE)


def turkish_mislabelled_as_utf8(content: bytes, headers: dict[str, str] | None) -> bytes:
    """Turkish windows-1254 text served as UTF-8 (or with no charset), as UTF-8.

    feedparser reads a body that says UTF-8 but is not as windows-1252, which turns ş ğ ı
    İ Ş Ğ into þ ð ý Ý Þ Ð: "Kılıçdaroğlu" would be "Kýlýçdaroðlu", and no rule would
    find it. A body that is not valid UTF-8, says UTF-8 or nothing (HTTP charset, XML
    declaration), has those bytes and is not an Icelandic or Faroese feed is windows-1254;
    it is returned re-encoded as UTF-8. Anything else is returned as it is.
    """
    if not names_only_utf8(content, headers):
        return content
    if not _TURKISH_LETTERS.search(content) or _NORDIC.search(content[:20_000]):
        return content
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return content.decode("windows-1254").encode("utf-8")
        except UnicodeDecodeError:   # bytes windows-1254 does not have: not Turkish after all
            return content
    return content


def _parse_with_feedparser(content: bytes, headers: dict[str, str]) -> ParsedFeed:
    """RSS or Atom through feedparser: everything the fast path declines."""
    parsed = feedparser.parse(content, response_headers=headers, sanitize_html=True,
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
    return from_feedparser(feed, parsed.entries)


def from_feedparser(feed: Any, items: Iterable[Any]) -> ParsedFeed:
    """A ``ParsedFeed`` from feedparser's result: its ``feed`` dict and its entries (the fast
    path builds the same dicts)."""
    feed_lang = normalise(feed.get("language"))
    entries = []
    for item in items:
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
            lang=_entry_lang(item) or feed_lang,
            published_at=published,
        ))
    return ParsedFeed(title=feed.get("title") or None, link=feed.get("link") or None,
                      lang=feed_lang, entries=entries, hub=_feed_link(feed, "hub"),
                      self_url=_feed_link(feed, "self"), ttl=_ttl(feed.get("ttl")))


def _entry_lang(item: Any) -> str | None:
    """The entry's own language: RSS <dc:language>, else xml:lang of its content or summary.

    (feedparser gives title/summary details the inherited xml:lang, which is the feed's
    when the entry has none, so falling through to the feed gives the same answer.)
    """
    candidates = [item.get("language"), *((c or {}).get("language") for c in item.get("content") or []),
                  (item.get("summary_detail") or {}).get("language"),
                  (item.get("title_detail") or {}).get("language")]
    return next((tag for tag in map(normalise, candidates) if tag), None)


# --------------------------------------------------------------------------- JSON Feed

def _json_str(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _json_date(value: Any) -> datetime | None:
    """RFC 3339 date of a JSON Feed; a zone-less one is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _json_authors(item: dict[str, Any]) -> str | None:
    authors = item.get("authors")
    if not isinstance(authors, list):
        authors = [item.get("author")]  # JSON Feed 1.0: one author object
    names = [_json_str(a.get("name")) for a in authors if isinstance(a, dict)]
    return ", ".join(n for n in names if n) or None


def _json_url(value: Any, base: str | None) -> str | None:
    url = value.strip() if isinstance(value, str) else ""
    if not url:
        return None
    return urljoin(base, url) if base else url


def parse_json_feed(content: bytes) -> ParsedFeed:
    """Parse a JSON Feed 1.0 or 1.1 document (https://jsonfeed.org/version/1.1).

    Items map to entries: ``id`` (else ``url``, else title and date) is the key,
    ``url`` (else ``external_url``) the link, ``content_html`` (as text) or
    ``content_text`` the body, ``authors`` (1.1) or ``author`` (1.0) the author,
    the item's ``language`` (1.1) else the feed's, ``date_published`` else
    ``date_modified``. ``hubs`` gives the WebSub hub, ``feed_url`` the self URL.
    """
    try:
        doc = json.loads(content.decode("utf-8-sig") if isinstance(content, bytes) else content)
    except UnicodeDecodeError as exc:
        raise ParseError(f"not a readable JSON feed: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ParseError(f"not a readable JSON feed: invalid JSON at line {exc.lineno} column "
                         f"{exc.colno}: {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise ParseError(f"not a JSON feed: the document is a JSON {type(doc).__name__}, not an object")
    version = doc.get("version")
    items = doc.get("items")
    if not (isinstance(version, str) and "jsonfeed.org/version/" in version) or not isinstance(items, list):
        raise ParseError('not a JSON feed: no "version" of https://jsonfeed.org/version/1.1 '
                         'with an "items" list')
    feed_url = _json_url(doc.get("feed_url"), None)
    home = _json_url(doc.get("home_page_url"), feed_url)
    base = home or feed_url
    feed_lang = normalise(doc.get("language"))
    hubs = doc.get("hubs")
    hub = next((_json_url(h.get("url"), base) for h in hubs if isinstance(h, dict) and h.get("url")), None) \
        if isinstance(hubs, list) else None
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue
        title = _json_str(item.get("title"))
        summary = _json_str(item.get("summary"))
        content_html = item.get("content_html")
        if isinstance(content_html, str) and content_html.strip():
            body = html_to_text(content_html)
        else:
            body = _text({"value": item.get("content_text"), "type": "text/plain"}) \
                if isinstance(item.get("content_text"), str) else ""
        if body == summary:
            body = ""
        published = _json_date(item.get("date_published")) or _json_date(item.get("date_modified"))
        link = _json_url(item.get("url"), base) or _json_url(item.get("external_url"), base)
        raw_id = item.get("id")
        guid = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
        entries.append(Entry(
            key=entry_key(guid, link, title, published),
            url=link,
            title=title,
            summary=summary,
            body=body,
            author=_json_authors(item),
            lang=normalise(item.get("language")) or feed_lang,
            published_at=published,
        ))
    return ParsedFeed(title=_json_str(doc.get("title")) or None, link=home, lang=feed_lang,
                      entries=entries, hub=hub, self_url=feed_url, ttl=None)
