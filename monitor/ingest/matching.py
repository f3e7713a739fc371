"""Matching a poll's new entries, in a parse worker: the rules travel once per version.

The parse workers that read a feed also identify its new entries; matching them there too
takes the matcher's CPU (a fifth of a first poll's) off the daemon's GIL and onto every core.
A rule set is pickled once, to a file named by its digest (``ship``); a call carries only that
``Shipped`` reference, and each worker compiles a version the first time it sees it and keeps
the latest (rules change on reload, rarely). Compiling costs a worker what it costs the daemon
(~50 ms and a few MB per 1,000 rules), once per version.

Rules that ask NER to verify an entity (``verify: ner``) are matched in the daemon, which has
the NER process at hand; so is everything when there are no workers.
"""

from __future__ import annotations

import gc
import hashlib
import pickle
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from monitor.ingest.dedup import Tokens
from monitor.ingest.identity import Identity, identify
from monitor.ingest.parse import Entry, ParsedFeed, parse_feed
from monitor.match import Document, EntitySpec, Matcher, RuleHit, RuleSpec
from monitor.match.engine import TEXT_FIELDS, DocIndex

__all__ = ["Shipped", "document", "identify_and_match", "load", "parse_and_match", "ship"]


@dataclass(frozen=True)
class Shipped:
    """Where a worker finds a rule set, and the digest that names its version."""

    path: str
    digest: str


def ship(rules: Sequence[RuleSpec], entities: Mapping[str, EntitySpec], folder: Path) -> Shipped:
    """Write the rule set to ``folder`` (once per version) for the workers to read."""
    data = pickle.dumps((list(rules), dict(entities)), protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    path = folder / f"rules-{digest}.pickle"
    if not path.exists():
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)             # a worker never reads half a file
    return Shipped(str(path), digest)


class Article(Protocol):
    """What ``document`` reads: a parsed ``Entry`` or a stored article."""

    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def author(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def lang(self) -> str | None: ...


def document(article: Article, feed_id: str, feed_name: str | None, feed_url: str = ""
             ) -> Document:
    """An entry or stored article as the rules see it; the source is the feed's id and name
    and the article's domain (the feed's when the article has no URL)."""
    domain = urlsplit(article.url or feed_url).hostname or ""
    source = " ".join(p for p in (feed_id, feed_name or "", domain) if p)
    return Document(title=article.title, summary=article.summary, body=article.body,
                    author=article.author or "", source=source, url=article.url or "",
                    lang=article.lang, feed_id=feed_id)


_lock = threading.Lock()
_compiled: tuple[str, Matcher] | None = None      # this process's latest version


def _matcher(rules: Shipped) -> Matcher:
    global _compiled
    with _lock:
        if _compiled is None or _compiled[0] != rules.digest:
            specs, entities = pickle.loads(Path(rules.path).read_bytes())
            _compiled = (rules.digest, Matcher(specs, entities))
            # As in the daemon: compiled rules stay for the life of the version, so keep
            # them out of every garbage collection pass.
            gc.collect()
            gc.freeze()
        return _compiled[1]


def load(rules: Shipped) -> None:
    """Compile the shipped rules in this worker now, ahead of its first match."""
    _matcher(rules)


Early = tuple[list[Identity], list[list[RuleHit]]]
"""What ``identify_and_match`` gives: each entry's identity and its hits."""


def identify_and_match(rules: Shipped, entries: list[Entry], feed_id: str,
                       feed_name: str | None, feed_url: str) -> Early:
    """``identify`` the entries and match them against the shipped rules (languages known).

    Matching reads every field of an entry; the story signature then takes the title's,
    summary's and body's tokens from it instead of tokenising them again."""
    matcher = _matcher(rules)
    hits: list[list[RuleHit]] = []
    tokens: list[Tokens] = []
    for entry in entries:
        index = DocIndex(document(entry, feed_id, feed_name, feed_url), matcher.entities)
        hits.append(matcher.match_index(index))
        title, summary, body = (index.field(name).raw_tokens for name in TEXT_FIELDS)
        tokens.append((title, summary, body))
    return identify(entries, tokens), hits


def parse_and_match(rules: Shipped, content: bytes, headers: dict[str, str] | None,
                    feed_id: str, feed_name: str | None, feed_url: str
                    ) -> tuple[ParsedFeed, Early | None]:
    """``parse_feed``, then ``identify_and_match`` of all its entries in the same call when
    every entry has its language (else None: detection comes first, in the daemon's language
    process).

    For a feed's first poll, whose entries are all new: one trip to a worker instead of two,
    and the entries are not sent back to be matched. Each entry's results are its own, so
    those of entries the daemon finds stored already are merely unused.
    """
    parsed = parse_feed(content, headers)
    if not parsed.entries or not all(entry.lang for entry in parsed.entries):
        return parsed, None
    return parsed, identify_and_match(rules, parsed.entries, feed_id, feed_name, feed_url)
