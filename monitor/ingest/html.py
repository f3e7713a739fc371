"""HTML fragments from feeds to plain text, for matching and for alerts."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
    "tr", "td", "th", "table", "section", "article", "header", "footer", "figcaption", "pre", "hr",
}
_SKIP = {"script", "style", "noscript", "template"}
# The fast path declines these too: their content is raw text or RCDATA for html.parser
# (script/style here; newer CPython releases add iframe, noembed, noframes, xmp, plaintext,
# textarea and title), so tags inside them are not tags. Declining is only slower, never wrong.
_FAST_DECLINE = _SKIP | {
    "iframe", "noembed", "noframes", "xmp", "plaintext", "textarea", "title",
}

# The strict tag grammar of the fast path. Whitespace is the five HTML spaces only (html.parser
# takes \v and other \s as part of a tag name); attributes need whitespace before them; an
# unquoted value has no quote, "<", ">" or "`" and cannot start with "=". For every tag this
# matches, html.parser's parse_starttag/parse_endtag consume exactly the same characters and
# report a start or end tag of the same name (checked by tests/ingest_pure/test_html_fast_path).
_WS = r"[ \t\n\r\f]"
_NAME = r"[a-zA-Z][-.a-zA-Z0-9:_]*+"
_VALUE = r"""(?:"[^"]*+"|'[^']*+'|[^\s"'=<>`][^\s"'<>`]*+)"""
_ATTR = rf"{_WS}++[a-zA-Z_:][-.a-zA-Z0-9:_]*+(?:{_WS}*+={_WS}*+{_VALUE})?+"
# re.split with two groups: [text, end-tag name, start-tag name, text, ...].
_TAG_SPLIT = re.compile(rf"<(?:/({_NAME}){_WS}*+|({_NAME})(?:{_ATTR})*+{_WS}*+/?)>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _paragraphs(text: str) -> str:
    """The lines of ``text`` with whitespace runs collapsed, empty ones dropped, joined by
    blank lines.

    Most lines are single-spaced already, and splitting them into words to join them again
    was half the cost of a long summary. ``str.isprintable`` is False for every whitespace
    character but " ", so such a line is kept as it is: exactly what the join would give."""
    out: list[str] = []
    for line in text.split("\n"):
        if not (line.isprintable() and "  " not in line
                and line[:1] != " " and line[-1:] != " "):
            line = " ".join(line.split())
        if line:
            out.append(line)
    return "\n\n".join(out)


def _html_to_text_fast(fragment: str) -> str | None:
    """``html_to_text`` for fragments of plain text and simple tags, or None to decline.

    html.parser costs ~50 us a fragment in pure Python; one C regex split does the same work
    here. With convert_charrefs, html.parser unescapes each run of text between two tags as a
    whole (also the last run, whatever ``&`` it ends with), so ``html.unescape`` per run is
    exact. Any ``<`` left in a run (comment, doctype, CDATA, processing instruction, stray or
    unusual tag) or a raw-text tag declines: those are the slow path's business."""
    parts = _TAG_SPLIT.split(fragment)
    out: list[str] = []
    append = out.append
    unescape = html.unescape
    for k in range(0, len(parts) - 1, 3):
        run = parts[k]
        if run:
            if "<" in run:
                return None
            append(unescape(run) if "&" in run else run)
        name = (parts[k + 1] or parts[k + 2]).lower()
        if name in _BLOCK:
            append("\n")
        elif name in _FAST_DECLINE:
            return None
    run = parts[-1]
    if "<" in run:
        return None
    append(unescape(run) if "&" in run else run)
    return _paragraphs("".join(out))


def _html_to_text_slow(fragment: str) -> str:
    """``html_to_text`` by html.parser: any fragment, however malformed."""
    parser = _TextExtractor()
    try:
        parser.feed(fragment)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # noqa: BLE001 - html.parser is lenient; this is belt and braces
        text = html.unescape(fragment)
    return _paragraphs(text)


def html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment; paragraphs kept as blank-line breaks."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    text = _html_to_text_fast(fragment)
    return _html_to_text_slow(fragment) if text is None else text
