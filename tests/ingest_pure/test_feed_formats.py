"""JSON Feed, WebSub links, <ttl> and entry languages in parse_feed (monitor.ingest.parse)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.ingest.parse import TTL_MAX, ParseError, entry_key, parse_feed

JSON_FEED_11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Varnholm Harbour News",
    "home_page_url": "https://harbour.example/",
    "feed_url": "https://harbour.example/feed.json",
    "language": "en-GB",
    "hubs": [{"type": "WebSub", "url": "https://hub.example/"}],
    "items": [
        {
            "id": "urn:harbour:1",
            "url": "https://harbour.example/ferry?utm_source=json",
            "title": "  Ferry  timetable changes ",
            "summary": "Boats every twenty minutes.",
            "content_html": "<p>From Monday the <b>ferry</b> runs more often.</p><script>x()</script>"
                            "<p>Night boats stay hourly.</p>",
            "authors": [{"name": "Lene Strand"}, {"name": "Pavel Ostrov"}, {"url": "https://x.example"}],
            "language": "de-DE",
            "date_published": "2026-03-01T09:30:00+03:00",
            "date_modified": "2026-03-01T12:00:00Z",
        },
        {
            "id": 42,
            "url": "/dredging",
            "title": "Dredging halted",
            "content_text": "The court  suspended\nthe works.",
            "date_modified": "2026-03-02T08:00:00Z",
        },
        {"external_url": "https://elsewhere.example/story", "content_text": "Linked.",
         "date_published": "2026-03-03T10:00:00"},
        "not an item",
    ],
}

JSON_FEED_10 = {
    "version": "https://jsonfeed.org/version/1",
    "title": "Old style",
    "items": [{"id": "a", "content_text": "Body", "summary": "Body", "title": "T",
               "author": {"name": "Tomas Reinholt"}, "date_published": "not a date"}],
}


def _bytes(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_json_feed_11() -> None:
    feed = parse_feed(_bytes(JSON_FEED_11), {"Content-Type": "application/feed+json"})
    assert feed.title == "Varnholm Harbour News" and feed.link == "https://harbour.example/"
    assert feed.lang == "en-gb"
    assert feed.hub == "https://hub.example/" and feed.self_url == "https://harbour.example/feed.json"
    assert feed.ttl is None
    first, second, third = feed.entries
    assert first.key == "urn:harbour:1" and first.url == "https://harbour.example/ferry?utm_source=json"
    assert first.title == "Ferry timetable changes" and first.summary == "Boats every twenty minutes."
    assert first.body == "From Monday the ferry runs more often.\n\nNight boats stay hourly."
    assert first.author == "Lene Strand, Pavel Ostrov" and first.lang == "de-de"
    assert first.published_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    # a numeric id, a relative url, content_text, date_modified when unpublished, the feed's language
    assert second.key == "42" and second.url == "https://harbour.example/dredging"
    assert second.body == "The court suspended the works." and second.summary == ""
    assert second.published_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC) and second.lang == "en-gb"
    assert second.author is None
    # no id: the external url is the link and the key; a zone-less date is UTC
    assert third.key == third.url == "https://elsewhere.example/story"
    assert third.published_at == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def test_json_feed_10_and_detection_by_body() -> None:
    # detected by the body alone, whatever the content type says; a BOM is fine
    feed = parse_feed(b"\xef\xbb\xbf \n" + _bytes(JSON_FEED_10), {"content-type": "text/plain"})
    (entry,) = feed.entries
    assert entry.author == "Tomas Reinholt" and entry.summary == "Body" and entry.body == ""
    assert entry.published_at is None and entry.lang is None and feed.hub is None
    assert entry.key == "a"


def test_json_feed_without_items_is_empty_not_broken() -> None:
    feed = parse_feed(_bytes({"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": []}))
    assert feed.entries == []


@pytest.mark.parametrize(("body", "headers", "message"), [
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', None, "invalid JSON at line 1"),
    (b"{'single': 'quotes'}", None, "invalid JSON"),
    (b"[1, 2, 3]", {"content-type": "application/json"}, "JSON list, not an object"),
    (b'{"status": "ok", "data": []}', None, "not a JSON feed"),
    (b'{"version": "2.0", "items": []}', None, "not a JSON feed"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', None, "not a JSON feed"),
    (b"\xff\xfe{}", {"content-type": "application/feed+json"}, "not UTF-8"),
    (b"", {"content-type": "application/feed+json; charset=utf-8"}, "invalid JSON"),
])
def test_json_that_is_not_a_feed(body: bytes, headers: dict[str, str] | None, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed(body, headers)


def test_xml_served_as_json_is_still_parsed_as_xml() -> None:
    rss = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
    assert parse_feed(rss, {"content-type": "application/json"}).entries == []


RSS_WEBSUB = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Liman</title><link>https://liman.example/</link><language>TR-tr</language><ttl>45</ttl>
  <atom:link rel="self" type="application/rss+xml" href="https://liman.example/rss.xml"/>
  <atom:link rel="hub" href="https://pubsubhubbub.example/"/>
  <item><title>Feribot</title><guid>1</guid><dc:language>az</dc:language><description>d</description></item>
  <item><title>Vapur</title><guid>2</guid></item>
</channel></rss>"""

ATOM_WEBSUB = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-US">
  <title>Harbour</title><id>urn:h</id><updated>2026-03-01T10:00:00Z</updated>
  <link rel="hub" href="https://hub.example/atom"/>
  <link rel="self" href="https://harbour.example/atom.xml"/>
  <entry xml:lang="de"><id>urn:1</id><title>Fähre</title><summary>s</summary></entry>
  <entry><id>urn:2</id><title>Ferry</title><content xml:lang="fr">Bac</content></entry>
  <entry><id>urn:3</id><title>Plain</title><summary>s</summary></entry>
</feed>""".encode()


def test_rss_hub_self_ttl_and_entry_language() -> None:
    feed = parse_feed(RSS_WEBSUB)
    assert feed.hub == "https://pubsubhubbub.example/"
    assert feed.self_url == "https://liman.example/rss.xml"
    assert feed.ttl == timedelta(minutes=45)
    assert feed.lang == "tr-tr"
    assert [e.lang for e in feed.entries] == ["az", "tr-tr"]


def test_atom_hub_self_and_entry_language() -> None:
    feed = parse_feed(ATOM_WEBSUB)
    assert feed.hub == "https://hub.example/atom" and feed.self_url == "https://harbour.example/atom.xml"
    assert feed.ttl is None and feed.lang == "en-us"
    assert [e.lang for e in feed.entries] == ["de", "fr", "en-us"]


@pytest.mark.parametrize(("ttl", "expected"), [
    ("60", timedelta(hours=1)), (" 5 ", timedelta(minutes=5)), ("0", None), ("-5", None),
    ("soon", None), ("1.5", None), ("99999999999", TTL_MAX), ("20160", TTL_MAX),
])
def test_ttl_is_sanity_bounded(ttl: str, expected: timedelta | None) -> None:
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><ttl>' + ttl.encode()
           + b"</ttl><item><title>a</title><guid>1</guid></item></channel></rss>")
    assert parse_feed(rss).ttl == expected


def test_feed_without_websub_links() -> None:
    rss = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
    feed = parse_feed(rss)
    assert feed.hub is None and feed.self_url is None and feed.ttl is None and feed.lang is None


def test_json_entry_key_matches_rss_rules() -> None:
    doc = {"version": "https://jsonfeed.org/version/1.1",
           "items": [{"title": "No id or url", "date_published": "2026-03-01T10:00:00Z"}]}
    (entry,) = parse_feed(_bytes(doc)).entries
    assert entry.key == entry_key(None, None, "No id or url", datetime(2026, 3, 1, 10, tzinfo=UTC))
