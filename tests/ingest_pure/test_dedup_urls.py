"""Canonical URLs and content hashes (monitor.ingest.dedup)."""

from __future__ import annotations

import pytest

from monitor.ingest.dedup import TRACKING_PARAMS, canonical_url, content_hash

CASES = [
    # scheme and host case, default ports, empty path
    ("HTTP://News.Example.COM", "http://news.example.com/"),
    ("https://news.example.com:443/a", "https://news.example.com/a"),
    ("http://news.example.com:80/a", "http://news.example.com/a"),
    ("https://news.example.com:80/a", "https://news.example.com:80/a"),
    ("http://news.example.com:8080/a", "http://news.example.com:8080/a"),
    ("https://news.example.com./a", "https://news.example.com/a"),
    # the path keeps its case; dot segments are resolved
    ("https://a.test/Politics/Story-1", "https://a.test/Politics/Story-1"),
    ("https://a.test/a/./b/../c/", "https://a.test/a/c/"),
    # fragments
    ("https://a.test/story#comments", "https://a.test/story"),
    ("https://a.test/#!/story/12", "https://a.test/#!/story/12"),
    # tracking parameters, any case, the rest kept in order
    ("https://a.test/s?utm_source=rss&utm_medium=feed&UTM_Campaign=x", "https://a.test/s"),
    ("https://a.test/s?id=7&fbclid=IwAR0&page=2&gclid=abc", "https://a.test/s?id=7&page=2"),
    ("https://a.test/s?b=2&a=1&ocid=msn&cmpid=rss", "https://a.test/s?b=2&a=1"),
    ("https://a.test/s?xtor=RSS-3208&CMP=share_btn_tw", "https://a.test/s"),
    ("https://a.test/s?mc_cid=1&mc_eid=2&_hsenc=3&_hsmi=4&mkt_tok=5&ref_src=6", "https://a.test/s"),
    ("https://a.test/s?%75tm_source=x&q=1", "https://a.test/s?q=1"),  # encoded name
    ("https://a.test/s?utm=1&reference=2", "https://a.test/s?utm=1&reference=2"),  # not tracking
    ("https://a.test/s?", "https://a.test/s"),
    ("https://a.test/s?&&q=1&", "https://a.test/s?q=1"),
    ("https://a.test/s?flag&q=", "https://a.test/s?flag&q="),
    # percent-encoding: unreserved decoded, others upper-cased, needed ones added
    ("https://a.test/%7euser/%41b%2fc", "https://a.test/~user/Ab%2Fc"),
    ("https://a.test/a b/ğ?q=ş ç", "https://a.test/a%20b/%C4%9F?q=%C5%9F%20%C3%A7"),
    ("https://a.test/a%2", "https://a.test/a%252"),
    ("https://a.test/s?q=a%26b&r=x+y", "https://a.test/s?q=a%26b&r=x+y"),
    # IDN hosts in punycode; IPv6; userinfo kept
    ("https://Haber.Türkiye.example/x", "https://haber.xn--trkiye-3ya.example/x"),
    ("http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/"),
    ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
    ("https://user@a.test/x", "https://user@a.test/x"),
    # surrounding whitespace
    ("  https://a.test/x \n", "https://a.test/x"),
]

JUNK = [
    "", "   ", "not a url", "/relative/path?utm_source=x", "mailto:desk@a.test",
    "urn:uuid:1234", "https://", "http://[::1/x", "http://a.test:99999/", "http://a.test:8o/",
    "javascript:alert(1)", "https://a.test/\udcff", "ftp://A.test/x", "//a.test/x",
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected  # idempotent


@pytest.mark.parametrize("junk", JUNK)
def test_canonical_url_never_raises_on_junk(junk: str) -> None:
    assert canonical_url(junk) in (junk.strip(), canonical_url(junk.strip()))
    assert isinstance(canonical_url(junk), str)


def test_canonical_url_leaves_unparsable_input_stripped() -> None:
    assert canonical_url(" http://[::1/x ") == "http://[::1/x"
    assert canonical_url("http://a.test:99999/") == "http://a.test:99999/"
    assert canonical_url("mailto:Desk@A.test") == "mailto:Desk@A.test"
    assert canonical_url(None) == ""  # type: ignore[arg-type]


def test_tracking_list_is_lower_case() -> None:
    assert all(name == name.lower() for name in TRACKING_PARAMS)


def test_content_hash_ignores_layout_only() -> None:
    base = content_hash("Bridge approved", "The council said yes.", "First.\n\nSecond.")
    assert len(base) == 64 and int(base, 16) >= 0
    assert content_hash(" Bridge  approved ", "The council\u00a0said yes.", "First.\n  Second.") == base
    assert content_hash("Bridge approved", "The council said yes.", "Fir\u00adst. Second.") == base
    # composed and decomposed accents
    assert content_hash("Köprü", "", "") == content_hash("Ko\u0308pru\u0308", "", "")
    # every real edit counts, and the fields do not run into each other
    assert content_hash("Bridge approved!", "The council said yes.", "First. Second.") != base
    assert content_hash("bridge approved", "The council said yes.", "First. Second.") != base
    assert content_hash("a", "b", "") != content_hash("a b", "", "")
    assert content_hash("", "", "") == content_hash(" ", "\n", "\t")
