"""``pressmon test``: run a rule or a query over articles and explain, storing nothing.

Articles come from a file (``.json``, ``.txt`` or a feed), a URL, or the archive
of stored articles. Output is human-readable or the stable JSON of SPEC §7.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.ingest.fetch import Fetcher, FetchError
from monitor.ingest.html import html_to_text
from monitor.ingest.matching import document
from monitor.ingest.parse import ParseError, parse_feed
from monitor.match import Document, Explanation, Matcher, RuleHit, RuleSpec


class InputError(Exception):
    """The articles to test could not be read; the message says where and why."""


@dataclass(frozen=True)
class Sample:
    """One article under test, with its position in the input."""

    index: int
    doc: Document


class _ArticleJson(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: str = ""
    summary: str = ""
    body: str = ""
    url: str | None = None
    author: str | None = None
    lang: str | None = None
    source: str | dict[str, str | None] | None = None
    feed: str | None = None


def _from_json(item: Any, where: str) -> Document:
    try:
        article = _ArticleJson.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "article"
        raise InputError(f"{where}: {key}: {first['msg']}") from None
    source = article.source
    feed_id = article.feed
    if isinstance(source, dict):
        feed_id = feed_id or source.get("id")
        source = " ".join(v for v in (source.get("id"), source.get("name")) if v)
    domain = urlsplit(article.url or "").hostname or ""
    return Document(title=article.title, summary=article.summary, body=article.body,
                    author=article.author or "", source=" ".join(p for p in (source, domain) if p),
                    url=article.url or "", lang=article.lang, feed_id=feed_id)


def _from_feed(content: bytes, where: str, headers: dict[str, str] | None = None) -> list[Document]:
    try:
        parsed = parse_feed(content, headers)
    except ParseError as exc:
        raise InputError(f"{where}: {exc}") from None
    return [Document(title=e.title, summary=e.summary, body=e.body, author=e.author or "",
                     source=" ".join(p for p in (parsed.title, urlsplit(e.url or "").hostname) if p),
                     url=e.url or "", lang=e.lang) for e in parsed.entries]


def load_file(path: Path) -> list[Document]:
    """Articles from ``.json`` (one or a list), ``.txt`` (first line is the title) or a feed."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: invalid JSON: {exc}") from None
        items = data if isinstance(data, list) else [data]
        return [_from_json(item, f"{path}[{i}]" if isinstance(data, list) else str(path))
                for i, item in enumerate(items)]
    if suffix == ".txt":
        text = content.decode("utf-8", errors="replace")
        title, _, body = text.partition("\n")
        return [Document(title=title.strip(), body=body.strip())]
    return _from_feed(content, str(path))


async def _fetch(url: str) -> tuple[bytes, str | None]:
    fetcher = Fetcher(timeout=timedelta(seconds=20), max_body=15 * 1024 * 1024,
                      concurrency=1, per_host=1, allow_private=True)  # the operator typed it
    try:
        result = await fetcher.fetch(url)
    finally:
        await fetcher.aclose()
    return result.content, result.content_type


def load_url(url: str) -> list[Document]:
    """A feed, or else a single web page taken as one article."""
    try:
        content, content_type = asyncio.run(_fetch(url))
    except FetchError as exc:
        raise InputError(f"{url}: {exc}") from None
    try:
        return _from_feed(content, url, {"content-type": content_type} if content_type else None)
    except InputError:
        if not (content_type or "").startswith("text/html"):
            raise
    page = content.decode("utf-8", errors="replace")
    title = ""
    start = page.lower().find("<title")
    if start >= 0:
        end = page.lower().find("</title>", start)
        title = html_to_text(page[page.find(">", start) + 1 : end]) if end > 0 else ""
    return [Document(title=title, body=html_to_text(page), url=url,
                     source=urlsplit(url).hostname or "")]


def load_archive(database_url: str, since: timedelta) -> list[Document]:
    from monitor.store.db import Database
    from monitor.store.queries import archive_articles

    db = Database(database_url)
    try:
        db.upgrade()
        rows = db.call(archive_articles, datetime.now(UTC) - since)
    finally:
        db.dispose()
    return [document(a, a.feed_id, feed_name) for a, feed_name in rows]


@dataclass(frozen=True)
class Outcome:
    sample: Sample
    hit: RuleHit | None
    explanation: Explanation | None


def run(matcher: Matcher, rule_id: str, docs: Sequence[Document], *, explain: bool,
        verifier: Any = None) -> list[Outcome]:
    """Match every document; explain the ones that did not match when asked."""
    outcomes = []
    for index, doc in enumerate(docs):
        verify = verifier(doc) if verifier else None
        hits = [h for h in matcher.match(doc, verify=verify) if h.rule_id == rule_id]
        explanation = None
        if not hits and explain:
            explanation = matcher.explain(doc, rule_id, verify=verify)
        outcomes.append(Outcome(Sample(index, doc), hits[0] if hits else None, explanation))
    return outcomes


def adhoc_rule(query: str) -> RuleSpec:
    return RuleSpec(id="<query>", query=query)


def to_json(outcomes: Sequence[Outcome], rule: str | None) -> dict[str, Any]:
    """The stable ``pressmon test --json`` document (SPEC §7)."""
    return {
        "articles": len(outcomes),
        "hits": [{
            "article": {"index": o.sample.index, "title": o.sample.doc.title,
                        "url": o.sample.doc.url or None},
            "rule": rule,
            "score": o.hit.score,
            "matches": [{"term": m.term, "text": m.text, "field": m.field, "start": m.start,
                         "end": m.end} for m in o.hit.matches],
            "snippet": o.hit.snippet,
        } for o in outcomes if o.hit is not None],
    }
