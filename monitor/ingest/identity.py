"""What identifies a new entry across feeds and polls (canonical URL, content hash,
near-duplicate signature), and its language.

``identify`` is pure and picklable both ways, so the poller runs it in its parse workers, next
to feedparser and off the daemon's GIL (~0.06 ms per new article). A missing language is
detected from ``language_text`` in a process of its own (``monitor.nlp``): the identifier's
model takes ~75 MB, better held once than in every parse worker. Nothing here knows about rules,
the database or NER.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.ingest import dedup, lang
from monitor.ingest.parse import Entry


@dataclass(frozen=True)
class Identity:
    content_hash: str
    canonical_url: str | None
    signature: bytes             # packed (dedup.pack): stored as is


def language_text(entry: Entry) -> str:
    """The text an entry's language is detected from when neither it nor its feed says: no
    more than ``lang.detect`` reads, which is what goes to the language process."""
    return " ".join((entry.title, entry.summary[:lang.MAX_CHARS],
                     entry.body[:lang.MAX_CHARS]))[:lang.MAX_CHARS]


def identify(entries: list[Entry], tokens: list[dedup.Tokens] | None = None) -> list[Identity]:
    """Each entry's identity; ``tokens``, the raw tokens of each entry's title, summary and
    body when a matcher has read them, spare reading them again for the story signature."""
    signatures = dedup.pack(
        dedup.story_signatures([(e.title, e.summary, e.body) for e in entries], tokens))
    return [Identity(content_hash=dedup.content_hash(e.title, e.summary, e.body),
                     canonical_url=dedup.canonical_url(e.url) if e.url else None,
                     signature=signature)
            for e, signature in zip(entries, signatures, strict=True)]
