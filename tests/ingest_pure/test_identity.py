"""identify(): what the parse workers work out for each new entry (monitor.ingest.identity)."""

from __future__ import annotations

import pickle

from monitor.ingest import dedup, lang
from monitor.ingest.identity import identify, language_text
from monitor.ingest.parse import Entry

BODY = ("Dockworkers in the invented port of Varnholm ended a four-day strike on Friday after "
        "the harbour board agreed to hire two hundred more crane operators before winter.")


def _entry(key: str, *, lang: str | None, url: str | None = None, title: str = "Strike ends",
           body: str = BODY) -> Entry:
    return Entry(key=key, url=url, title=title, summary="", body=body, author=None, lang=lang,
                 published_at=None)


def test_language_text_is_the_start_of_the_text() -> None:
    entry = _entry("a", lang=None, title="Strike ends", body="x" * 5000)
    text = language_text(entry)
    assert text.startswith("Strike ends  x") and len(text) == lang.MAX_CHARS
    # what detection reads of it is what it would read of the whole text
    whole = " ".join((entry.title, entry.summary, entry.body))
    assert text == whole[:lang.MAX_CHARS]


def test_hashes_url_and_signature_are_the_dedup_ones() -> None:
    entry = _entry("a", lang="en", url="https://Example.org/news/1?utm_source=rss#top")
    (found,) = identify([entry])
    assert found.canonical_url == "https://example.org/news/1"
    assert found.content_hash == dedup.content_hash(entry.title, entry.summary, entry.body)
    signature = dedup.signature(dedup.story_text(entry.title, "", BODY))
    assert found.signature == dedup.pack([signature])[0]      # as stored
    (no_url,) = identify([_entry("b", lang="en")])
    assert no_url.canonical_url is None
    # Results travel back from a worker process.
    assert pickle.loads(pickle.dumps(found)) == found
