"""Parsing feed bytes into entries: formats, identity, text, dates, language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.ingest.html import html_to_text
from monitor.ingest.parse import ParseError, alternate_feed_links, entry_key, parse_feed

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="tr">
  <title>Örnek</title><id>urn:feed</id><updated>2026-03-01T10:00:00Z</updated>
  <entry>
    <id>urn:e1</id><title>Karabağ'da yeni yol</title>
    <link href="http://a.test/1"/>
    <updated>2026-03-01T09:30:00+03:00</updated>
    <author><name>Ayşe Yılmaz</name></author>
    <summary>Kısa özet.</summary>
    <content type="html">&lt;p&gt;Birinci paragraf &amp;amp; devamı.&lt;/p&gt;
      &lt;p&gt;İkinci.&lt;/p&gt;</content>
  </entry>
</feed>""".encode()

RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <channel rdf:about="http://a.test/"><title>R</title><link>http://a.test/</link>
    <description>d</description></channel>
  <item rdf:about="http://a.test/x"><title>Item X</title><link>http://a.test/x</link>
    <description>About X</description></item>
</rdf:RDF>"""


def test_atom_entry_fields() -> None:
    feed = parse_feed(ATOM)
    assert feed.title == "Örnek" and feed.lang == "tr"
    (entry,) = feed.entries
    assert entry.key == "urn:e1" and entry.url == "http://a.test/1"
    assert entry.title == "Karabağ'da yeni yol" and entry.author == "Ayşe Yılmaz"
    assert entry.summary == "Kısa özet."
    assert entry.body == "Birinci paragraf & devamı.\n\nİkinci."
    assert entry.published_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert entry.lang == "tr"


def test_rss1_and_identity_fallbacks() -> None:
    (entry,) = parse_feed(RSS1).entries
    assert entry.title == "Item X" and entry.key == "http://a.test/x"
    assert entry_key(None, None, "Title", None) == entry_key("", "  ", "Title", None)
    assert entry_key(None, None, "Title", None) != entry_key(None, None, "Other", None)
    assert entry_key("g" * 600, None, "", None).startswith("sha1:")


def test_bozo_feed_with_entries_is_not_a_failure() -> None:
    broken = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
              b"<item><title>Fish &amp chips</title><guid>1</guid></item></channel></rss>")
    (entry,) = parse_feed(broken).entries
    assert entry.key == "1"


def test_html_page_names_its_feed() -> None:
    page = (b'<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" '
            b'href="https://a.test/rss.xml"></head><body>News</body></html>')
    assert alternate_feed_links(page) == ["https://a.test/rss.xml"]
    with pytest.raises(ParseError, match="the page links a feed: https://a.test/rss.xml"):
        parse_feed(page)


def test_empty_feed_is_fine_but_garbage_is_not() -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
    assert parse_feed(empty).entries == []
    with pytest.raises(ParseError):
        parse_feed(b"\x00\x01 binary junk")


def test_html_to_text_drops_scripts_and_keeps_paragraphs() -> None:
    text = html_to_text("<p>One <b>two</b></p><script>alert(1)</script><p>Three&nbsp;four</p>")
    assert text == "One two\n\nThree four"
    assert "alert" not in text


def _legacy(text: str, *, encoding: str, declared: str | None, lang: str = "tr") -> bytes:
    decl = f' encoding="{declared}"' if declared else ""
    return (f'<?xml version="1.0"{decl}?><rss version="2.0"><channel><title>Haber</title>'
            f"<language>{lang}</language><item><guid>1</guid><title>{text}</title>"
            "</item></channel></rss>").encode(encoding)


TURKISH_TITLE = "Kılıçdaroğlu ve Erdoğan İstanbul'da, Şişli'de görüştü"
UTF8 = {"content-type": "application/rss+xml; charset=utf-8"}


@pytest.mark.parametrize(("declared", "headers"), [
    ("utf-8", UTF8), (None, UTF8), ("UTF-8", {}), (None, {}),
])
def test_turkish_windows_1254_labelled_utf8_reads_right(declared: str | None,
                                                        headers: dict[str, str]) -> None:
    body = _legacy(TURKISH_TITLE, encoding="windows-1254", declared=declared)
    (entry,) = parse_feed(body, headers).entries
    assert entry.title == TURKISH_TITLE


def test_other_legacy_text_is_read_as_before() -> None:
    # Declared windows-1254: feedparser decodes it as declared.
    body = _legacy(TURKISH_TITLE, encoding="windows-1254", declared="windows-1254")
    assert parse_feed(body, {}).entries[0].title == TURKISH_TITLE
    # Western European text in windows-1252 labelled UTF-8: as feedparser reads it.
    french = "Élection à Besançon : l'équipe sortante gagne"
    body = _legacy(french, encoding="windows-1252", declared="utf-8", lang="fr")
    assert parse_feed(body, UTF8).entries[0].title == french
    # An Icelandic feed keeps its þ and ð.
    icelandic = "Þingið ræddi fjárlögin í gær á Alþingi"
    body = _legacy(icelandic, encoding="windows-1252", declared="utf-8", lang="is")
    assert parse_feed(body, UTF8).entries[0].title == icelandic
    # Valid UTF-8 is never touched.
    body = _legacy(TURKISH_TITLE, encoding="utf-8", declared="utf-8")
    assert parse_feed(body, UTF8).entries[0].title == TURKISH_TITLE
