"""The fast path of ``monitor.ingest.html.html_to_text`` gives exactly what html.parser gives.

``html_to_text`` runs for every summary of every poll, so simple fragments skip html.parser
and are split by one regex instead. Stored texts, matches and story signatures depend on
every character of the result, so the function as it was before the fast path is kept here
as the reference and compared with the module over generated fragments: entities with and
without ";", bare "&", unicode and odd whitespace, tags in any case with attributes in every
quoting style (values holding > < & " '), self-closing tags, stray "<" and "</", comments,
declarations, script/style blocks and fragments cut off in the middle of anything.
"""

from __future__ import annotations

import html
import sys
from html.parser import HTMLParser

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from monitor.ingest.html import (
    _BLOCK,
    _FAST_DECLINE,
    _TAG_SPLIT,
    _html_to_text_fast,
    _html_to_text_slow,
    _paragraphs,
    _TextExtractor,
    html_to_text,
)

# --------------------------------------------------------------------------- reference


def reference(fragment: str) -> str:
    """``html_to_text`` as it was before the fast path: the module's html.parser extractor
    (unchanged) and the old split-and-join of its lines."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    parser = _TextExtractor()
    try:
        parser.feed(fragment)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # noqa: BLE001
        text = html.unescape(fragment)
    return _reference_paragraphs(text)


class _Events(HTMLParser):
    """Records what html.parser reports, to compare tokenisations."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("tag", tag))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("tag", tag))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("tag", tag))

    def handle_data(self, data: str) -> None:
        self.events.append(("data", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))


def _events(fragment: str) -> list[tuple[str, str]]:
    parser = _Events()
    parser.feed(fragment)
    parser.close()
    return parser.events


# --------------------------------------------------------------------------- strategies

_INLINE = ["a", "b", "i", "em", "strong", "span", "img", "sup", "small", "abbr", "font", "u",
           "code", "q", "x-tag", "o:p", "my.tag", "h_1", "figure", "picture", "source"]
_TAG_NAMES = sorted(_BLOCK) + _INLINE


@st.composite
def _cased(draw: st.DrawFn, names: list[str]) -> str:
    name = draw(st.sampled_from(names))
    upper = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if u else c for c, u in zip(name, upper, strict=True))


_ENTITIES = [
    "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&#X27;", "&nbsp;", "&", "& ", "&amp",
    "&lt", "&gt", "&copy", "&AMP;", "&ampx", "&#10;", "&#x0A;", "&#13;", "&#60;", "&#x3C;",
    "&#0;", "&#xD800;", "&#1114112;", "&#128;", "&#160;", "&#x2028;", "&notin;", "&notit;",
    "&unknownentity;", "&#", "&#x", "&#;", "&;", "&#38;amp;", "&amp;lt;", "&Eacute;", "&eacute",
    "&frac12;", "&#9731;", "&#x1F600;", "&hellip;", "&mdash;", "&rsquo;",
]
_TEXT_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "éüßİıΩж中😀\u0301.,;:!?#=/'\">-_()"
    " \n\t\r\f\x0b\xa0\u2028\u3000\x1c\x85"
)
_text_run = st.one_of(
    st.text(alphabet=_TEXT_CHARS, min_size=1, max_size=12),
    st.sampled_from(_ENTITIES),
)
_ws0 = st.sampled_from(["", "", " ", "  ", "\n", "\t", "\r\n", "\f"])
_ws1 = st.sampled_from([" ", " ", "  ", "\n", "\t", "\r\n", "\f", " \n "])
_ATTR_NAMES = ["href", "src", "alt", "title", "class", "data-x", "xml:lang", "_a", "aria-label",
               "HREF", "Alt", "rel", "target", "width"]
_UNQUOTED_FIRST = "abcxyzABC0123456789/:?&;#%.-_~+,@!$()*[]é"
_VALUE_CHARS = "abc XYZ09&;#<>=/\n?é'\"`"


@st.composite
def _attr(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_ATTR_NAMES))
    style = draw(st.sampled_from(["bare", "unquoted", "double", "single"]))
    if style == "bare":
        return name
    eq = draw(_ws0) + "=" + draw(_ws0)
    if style == "unquoted":
        first = draw(st.sampled_from(_UNQUOTED_FIRST))
        rest = draw(st.text(alphabet=_UNQUOTED_FIRST + "=", max_size=12))
        value = first + rest
    else:
        quote = '"' if style == "double" else "'"
        value = quote + draw(st.text(alphabet=_VALUE_CHARS.replace(quote, ""), max_size=12)) + quote
    return name + eq + value


@st.composite
def _start_tag(draw: st.DrawFn, names: list[str] = _TAG_NAMES) -> str:
    name = draw(_cased(names))
    attrs = draw(st.lists(st.tuples(_ws1, _attr()).map("".join), max_size=3))
    close = draw(st.sampled_from(["", "", "/"]))
    return "<" + name + "".join(attrs) + draw(_ws0) + close + ">"


@st.composite
def _end_tag(draw: st.DrawFn, names: list[str] = _TAG_NAMES) -> str:
    return "</" + draw(_cased(names)) + draw(_ws0) + ">"


# Tags in the fast path's strict grammar, and fragments made only of them and text.
_good_tag = st.one_of(_start_tag(), _end_tag())
_good_fragment = st.lists(st.one_of(_text_run, _good_tag), max_size=25).map("".join)

_BAD = [
    "<!-- note -->", "<!---->", "<!-- <p>hidden</p> -->", "<!--unclosed", "<!DOCTYPE html>",
    "<!doctype html>", "<?xml version='1.0'?>", "<![CDATA[ x <b>y</b> ]]>", "<!x>", "<!>",
    "<script>if (a<b) x='</p>';</script>", "<style>p{color:red}</style>", "<SCRIPT>x</SCRIPT>",
    "<noscript><p>n</p></noscript>", "<template><p>t</p></template>", "<script>", "</script>",
    "<textarea><b>t</b></textarea>", "<title>t &amp; u</title>", "<iframe>f</iframe>", "</style>",
    "<", "</", "< ", "<3", "a < b", "a <= b", "</ p>", "</>", "<>", "<p", "</p", "<a href='x",
    '<a href="x>', "<a b=x'y>", '<a b="x"c>', "<br / >", "<a\x0bb>", "</p x>", "</p\x0b>",
    "<a =x>", "<a b=>", "<a b= >", "<a <b>", "<p/x>", "<a b=`x`>", "<a b='x' / >", "<1>", "<é>",
    "<a\xa0b>", "<a b=\xa0c>", "<a b=c\xa0d>", "</a href='>'>", "<a b==c>", "<a/b>", "<br//>",
    "<a b='x'c='y'>", "<p\x00>", "<a title=\"x\" title='y>", "<<p>>", "<p>>", "<ta:g-1.x_>",
]
_bad_token = st.one_of(
    st.sampled_from(_BAD),
    st.text(alphabet="<>/=\"' abpPB!-?&;#\n\x0b", min_size=1, max_size=10),
    _start_tag(sorted(_FAST_DECLINE)),
    _end_tag(sorted(_FAST_DECLINE)),
)
_any_fragment = st.one_of(
    st.lists(st.one_of(_text_run, _good_tag, _bad_token), max_size=25).map("".join),
    # cut anywhere: inside a tag, an attribute value, an entity
    st.tuples(_good_fragment, st.integers(min_value=0, max_value=200)).map(
        lambda fi: fi[0][: len(fi[0]) - fi[1] % (len(fi[0]) + 1)]),
    st.text(alphabet="<>/=\"' abpPB!-?&;#\n", max_size=40),
)


# --------------------------------------------------------------------------- differential


def _check(fragment: str) -> str | None:
    expected = reference(fragment)
    assert html_to_text(fragment) == expected
    if "<" not in fragment and "&" not in fragment:
        return None  # the early return: neither path is asked (they keep newlines)
    assert _html_to_text_slow(fragment) == expected
    fast = _html_to_text_fast(fragment)
    event("fast path declined" if fast is None else "fast path taken")
    if fast is not None:
        assert fast == expected
    return fast


@settings(max_examples=1500, deadline=None)
@given(_any_fragment)
@example("<p>a &amp</p>")
@example("x &#39")
@example("<a href=x/>t")
@example("<a title=\"x>y\">t</a>")
@example("<a title='<b>'>t</a>")
@example("&lt<3 <b>")
@example("<P>x</P\n>y")
def test_fast_path_equals_html_parser(fragment: str) -> None:
    _check(fragment)


@settings(max_examples=1000, deadline=None)
@given(_good_fragment)
def test_fast_path_takes_every_simple_fragment(fragment: str) -> None:
    """Text and strict tags only: the fast path must not decline (and must be right)."""
    if "<" in fragment or "&" in fragment:
        assert _check(fragment) is not None


@settings(max_examples=1000, deadline=None)
@given(_good_tag, _text_run, _text_run)
def test_strict_tag_tokenises_like_html_parser(tag: str, before: str, after: str) -> None:
    """Every tag of the strict grammar is one whole tag to html.parser, of the same name."""
    m = _TAG_SPLIT.fullmatch(tag)
    assert m is not None
    name = (m.group(1) or m.group(2)).lower()
    before, after = "x" + before + "y", "y" + after + "x"  # never empty, never a tag
    assert _events(before + tag + after) == [
        ("data", html.unescape(before)), ("tag", name), ("data", html.unescape(after))]


def _reference_paragraphs(text: str) -> str:
    paragraphs = (" ".join(p.split()) for p in text.split("\n"))
    return "\n\n".join(p for p in paragraphs if p)


def test_no_whitespace_but_space_is_printable() -> None:
    """``_paragraphs`` keeps a line as it is on this (and on no double or edge space)."""
    assert [hex(c) for c in range(sys.maxunicode + 1)
            if chr(c).isspace() and chr(c) != " " and chr(c).isprintable()] == []


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=_TEXT_CHARS + "\xad\u200b\x00\u1680\u2029\x1f", max_size=40))
@example(" a")
@example("a ")
@example("a  b")
@example("a\u3000b\n\nc")
def test_paragraphs_equal_split_and_join(text: str) -> None:
    assert _paragraphs(text) == _reference_paragraphs(text)


# --------------------------------------------------------------------------- acceptance

# Invented feed HTML of the kinds feeds send (and feedparser's sanitiser writes).
_TYPICAL = [
    ("<p>Some sentence &amp; more.</p><p>Another paragraph with "
     '<a href="https://x.test/a?b=1&amp;c=2">a link</a>.</p>',
     "Some sentence & more.\n\nAnother paragraph with a link."),
    ("<p>The harbour committee met on Tuesday.<br/>Members voted 7&ndash;2.<br />"
     "Minutes follow.</p>",
     "The harbour committee met on Tuesday.\n\nMembers voted 7\u20132.\n\nMinutes follow."),
    ("<p>A <b>bold</b>, an <i>italic</i>, an <em>emphasis</em> and a <strong>strong</strong>"
     " word.</p>",
     "A bold, an italic, an emphasis and a strong word."),
    ('<img src="https://img.test/p/1.jpg" alt="A quiet pier at dawn" width="640" height="360" />'
     "<p>Fishing boats returned early.</p>",
     "Fishing boats returned early."),
    ("<img src=https://img.test/p/2.jpg alt='Lamp &amp; post'>Caption text",
     "Caption text"),
    ("Fees rose &gt; 5% &lt;&lt; expected &#8212; &quot;odd&quot;, said the mayor&#39;s aide "
     "&#x27;Ana&#x27;&nbsp;Ruiz &copy; Example News &amp Co",
     "Fees rose > 5% << expected \u2014 \"odd\", said the mayor's aide "
     "'Ana' Ruiz \u00a9 Example News & Co"),
    ("<P>Upper case <A HREF=\"https://x.test/\">LINK</A></P><DIV>Next</DIV><BR>",
     "Upper case LINK\n\nNext"),
    ("<ul><li>One</li><li>Two &amp; three</li></ul><h2>Head</h2>",
     "One\n\nTwo & three\n\nHead"),
    ('<div class="summary"><p>Caf\u00e9 owners in \u0141\u00f3d\u017a &#8211; and in '
     "M\u00fcnchen &#8211; reported <span title='x > y &amp; z'>mixed</span> results.</p></div>",
     "Caf\u00e9 owners in \u0141\u00f3d\u017a \u2013 and in M\u00fcnchen \u2013 reported mixed "
     "results."),
    ('<a href="https://x.test/read?id=42&amp;ref=rss" rel="nofollow" target=_blank>'
     "Read more &raquo;</a>",
     "Read more \u00bb"),
    ("Plain text with an ampersand & a semicolon; no tags",
     "Plain text with an ampersand & a semicolon; no tags"),
    ("<p>Ends with an entity without semicolon &amp",
     "Ends with an entity without semicolon &"),
    ('<blockquote cite="https://x.test/q">"We will rebuild," she said.</blockquote>'
     "<hr/><p>More</p>",
     "\"We will rebuild,\" she said.\n\nMore"),
    ("<table><tr><td>A</td><td>B</td></tr></table>",
     "A\n\nB"),
    ("<p>Line one\nline two</p>\n<p>\t</p>",
     "Line one\n\nline two"),
]


@pytest.mark.parametrize(("fragment", "text"), _TYPICAL)
def test_fast_path_is_taken_for_typical_feed_html(fragment: str, text: str) -> None:
    assert _html_to_text_fast(fragment) == text
    assert reference(fragment) == text
    assert html_to_text(fragment) == text


def test_fast_path_is_taken_for_long_summaries() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    fragment = "".join(
        f'<p>{words} &amp; <a href="https://x.test/s/{i}?a=1&amp;b=2">link {i}</a>.</p>'
        for i in range(4))
    fast = _html_to_text_fast(fragment)
    assert fast is not None
    assert fast == reference(fragment)


# --------------------------------------------------------------------------- declines

_DECLINED = [
    "<p>a</p><!-- comment --><p>b</p>",
    "<p>a</p><!---->",
    "<p>one</p><script>alert('<p>')</script><p>two</p>",
    "<style>p { color: red }</style><p>text</p>",
    "<STYLE>p{}</STYLE>x",
    "<noscript><p>enable scripts</p></noscript>after",
    "<template><p>t</p></template>after",
    "<textarea><b>raw</b></textarea>",
    "<title>T &amp; U</title><p>x</p>",
    "<p>x</p></script>",
    "<!DOCTYPE html><p>x</p>",
    "<?xml version='1.0'?><p>x</p>",
    "<![CDATA[ <b>x</b> ]]>",
    "a < b and c > d",
    "1 <3 you",
    "x <",
    "x </",
    "</ p>x",
    "</>x",
    "<>x",
    "<p>unclosed end tag</p",
    "<p>unclosed start tag <a href='https://x.test/",
    '<a href="x>y',
    "<a href=x'y>t</a>",
    '<a href="x"title="y">t</a>',
    "<br / >",
    "<a\x0bb>t</a>",
    "<p\xa0class=x>t</p>",
    "</p class=x>t",
    "<a b=>t</a>",
    "<a b=`x`>t</a>",
    "<p/x>t",
    "<1>t",
    "<\u00e9>t",
]


@pytest.mark.parametrize("fragment", _DECLINED)
def test_fast_path_declines_unusual_markup(fragment: str) -> None:
    assert _html_to_text_fast(fragment) is None
    assert html_to_text(fragment) == reference(fragment)


def test_skip_and_raw_text_tags_are_declined_in_any_case() -> None:
    for name in sorted(_FAST_DECLINE):
        for cased in (name, name.upper(), name.title()):
            assert _html_to_text_fast(f"<p>a</p><{cased}>x</{cased}>") is None
            assert _html_to_text_fast(f"<p>a</p></{cased}>") is None
            assert _html_to_text_fast(f"<{cased}/>a") is None


def test_plain_text_early_return_is_unchanged() -> None:
    assert html_to_text("  just   words\nand\tmore  ") == "just words and more"
    assert html_to_text("") == ""
