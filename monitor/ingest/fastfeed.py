"""A fast path for parsing common, well-formed RSS 2.0 and Atom 1.0 feeds.

``parse_fast`` reads the document with ``xml.etree.ElementTree`` (expat, in C) and
rebuilds exactly the ``ParsedFeed`` that the feedparser path of ``parse.parse_feed``
would return, or returns ``None`` whenever it is not certain to, so that the caller falls
back to feedparser. Declining costs only speed; a different answer would be a bug, so the
rules are strict (see ``parse.py``'s module docstring for the summary):

* the body is UTF-8 XML (feedparser's own ``convert_to_utf8`` decides the encoding; we
  parse the very bytes it would parse), with no ``<!DOCTYPE`` or ``<!ENTITY`` anywhere,
  well-formed per expat, and the root is ``<rss><channel>`` or Atom 1.0 ``<feed>``;
* every element is one we know the feedparser behaviour of, in a place we know (a
  whitelist per context); anything else - other namespaces, nested markup in text
  elements, repeated single-valued elements, unusual attributes, ``xml:base``, Atom
  ``type="xhtml"`` or base64 content, HTTP ``Content-Location``/``Content-Language``,
  a feed without entries - declines;
* values go through the same steps feedparser applies in ``_FeedParserMixin.pop``:
  strip, ``_urljoin`` for URI elements (no base URL: relative links stay relative),
  the "looks like HTML" guess for RSS text, the latin-1/UTF-8 mojibake repair and the
  cp1252 mapping, and its ``&amp;`` clean-up of item links;
* HTML is sanitised by feedparser before ``html_to_text`` sees it. For fragments in a
  small, unambiguous subset of HTML (tags the sanitiser keeps, known entities, no
  comments or CDATA, no characters U+0080..U+00FF) sanitising provably does not change
  the text, so it is skipped; any other HTML fragment is passed through feedparser's
  own ``resolve_relative_uris`` and ``_sanitize_html`` exactly as ``pop`` does.

Dates use feedparser's ``_parse_date``. Imports are the standard library, feedparser and
``monitor.ingest`` only: this runs in the parse worker processes.
"""

from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ET
from contextlib import suppress
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.sanitizer import _HTMLSanitizer, _sanitize_html
from feedparser.urls import _urljoin, resolve_relative_uris

from monitor.ingest.parse import UTF8_NAMES, ParsedFeed, from_feedparser, names_only_utf8

ATOM = "http://www.w3.org/2005/Atom"
_XML = "http://www.w3.org/XML/1998/namespace"
_DC = "http://purl.org/dc/elements/1.1/"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_MEDIA = ("http://search.yahoo.com/mrss", "http://search.yahoo.com/mrss/")
_XML_LANG = f"{{{_XML}}}lang"

_looks_like_html = _FeedParserMixin.looks_like_html
_map_content_type = _FeedParserMixin.map_content_type
_HTML_TYPES = _FeedParserMixin.html_types

# Namespaces feedparser treats as its own (std prefix), keyed by lower-cased URI.
_STD_PREFIX = {k.lower(): v for k, v in _FeedParserMixin.namespaces.items()}
# Versions are guessed from these namespace declarations; we decline documents that have them.
_VERSION_NAMESPACES = (b"http://purl.org/rss/1.0/", b"http://my.netscape.com/rdf/simple/0.9/")
_XMLNS = re.compile(rb"""xmlns(?::([^\s=>]+))?\s*=\s*["']([^"']*)["']""")
_UNSAFE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


class _Decline(Exception):
    """Not certain to match feedparser: fall back."""


# ------------------------------------------------------------------------- text values

_C1 = re.compile("[\x80-\x9f]")
_LATIN1 = re.compile("[\xa0-\xff]")
_WIDE = re.compile("[^\x00-\xff]")


def _latin1_fixes(output: str) -> str:
    """feedparser's repair of UTF-8 read as latin-1, then its cp1252 mapping (``pop``)."""
    if not output.isascii():
        with suppress(UnicodeEncodeError, UnicodeDecodeError):
            output = output.encode("iso-8859-1").decode("utf-8")
        if _C1.search(output):
            output = output.translate(_cp1252)
    return output


_SAFE_TAGS = frozenset(_HTMLSanitizer.acceptable_elements) - {
    "textarea", "noscript", "select", "option", "optgroup", "datalist", "output", "button"}
_NO_END = frozenset({"area", "base", "basefont", "br", "col", "command", "embed", "frame", "hr",
                     "img", "input", "isindex", "keygen", "link", "meta", "param", "source",
                     "track", "wbr"})
_ENTITIES = frozenset(html.entities.name2codepoint) | {"apos"}
_ATTR = r"""\s+[a-zA-Z_][-.:a-zA-Z0-9_]*(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[-a-zA-Z0-9._:]+))?"""
_SIMPLE_HTML = re.compile(
    r"(?:[^<&]++"
    r"|&(?:[a-zA-Z][a-zA-Z0-9]*|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});"
    rf"|<[a-zA-Z][a-zA-Z0-9]*(?:{_ATTR})*+\s*/?>"
    r"|</[a-zA-Z][a-zA-Z0-9]*\s*>)*+")
_MARKUP = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)|&(#?)([xX]?[0-9a-zA-Z]+);")
_TAG = re.compile(r"<[^>]*>")


def _sanitising_is_invisible(fragment: str) -> bool:
    """True if feedparser's URI resolver and sanitiser cannot change ``html_to_text`` of
    this fragment: an unambiguous tokenisation, every tag one the sanitiser keeps (and
    ``html_to_text`` treats the same before and after), known entities, no comments,
    declarations, CDATA or processing instructions; and feedparser's latin-1 repair and
    cp1252 mapping of the sanitised markup are no-ops: no U+0080..U+009F at all, and no
    U+00A0..U+00FF unless the text (which the sanitiser keeps as it is) has a character
    beyond U+00FF, on which the repair's latin-1 encoding fails. (The sanitised markup
    has no characters the fragment lacks, other than ASCII.)"""
    if _SIMPLE_HTML.fullmatch(fragment) is None or _C1.search(fragment):
        return False
    if _LATIN1.search(fragment) and not _WIDE.search(_TAG.sub("", fragment)):
        return False
    for m in _MARKUP.finditer(fragment):
        end, tag, hashmark, ref = m.groups()
        if tag is not None:
            tag = tag.lower()
            if tag not in _SAFE_TAGS or (end and tag in _NO_END):
                return False
        elif hashmark:
            code = int(ref[1:], 16) if ref[:1] in "xX" else int(ref)
            if code == 0 or 0x80 <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                return False
        elif ref not in _ENTITIES:
            return False
    return True


def _value(raw: str | None, element: str, kind: str | None, *, atom: bool,
           relative: bool = False) -> tuple[str, str | None]:
    """What feedparser's ``pop`` stores for a text element: (value, content type).

    ``kind`` is the content type for text constructs (None for plain elements). For an
    HTML construct the value returned is not the sanitised markup but markup with the
    same ``html_to_text``: callers only ever convert it to text."""
    output = (raw or "").strip()
    if relative and output:
        output = _urljoin("", output)
    if kind == "text/plain" and not atom and _looks_like_html(output):
        kind = "text/html"
    if kind is not None and _map_content_type(kind) in _HTML_TYPES:
        if not _sanitising_is_invisible(output):
            output = resolve_relative_uris(output, "", "utf-8", kind)
            output = _sanitize_html(output, "utf-8", kind)
            return _latin1_fixes(output), kind
        return output, kind
    return _latin1_fixes(output), kind


def _exact_html(raw: str | None, kind: str) -> str:
    """The sanitised markup itself (the feed title is used as it is, not as text)."""
    output = (raw or "").strip()
    output = resolve_relative_uris(output, "", "utf-8", kind)
    return _latin1_fixes(_sanitize_html(output, "utf-8", kind))


# ------------------------------------------------------------------------- the tree

def _local(elem: ET.Element) -> tuple[str, str]:
    tag = elem.tag
    if not isinstance(tag, str):
        raise _Decline
    if tag[:1] == "{":
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _attrs(elem: ET.Element, allowed: frozenset[str] = frozenset()) -> dict[str, str]:
    """Attributes as feedparser keys them (lower-cased names; rel/type values lower-cased).
    Anything but ``xml:lang`` and the allowed plain names declines."""
    out: dict[str, str] = {}
    for key, value in elem.attrib.items():
        if key == _XML_LANG:
            continue
        if key[:1] == "{" or key.lower() not in allowed:
            raise _Decline
        name = key.lower()
        if name in out:
            raise _Decline
        out[name] = value.lower() if name in ("rel", "type") else value
    return out


def _lang(elem: ET.Element, inherited: str | None) -> str | None:
    lang = elem.attrib.get(_XML_LANG)
    if lang is None:
        return inherited
    return lang or None


def _leaf(elem: ET.Element) -> str:
    if len(elem):
        raise _Decline
    return elem.text or ""


def _detail_lang(lang: str | None) -> str | None:
    return lang.replace("_", "-") if lang else lang


def _once(seen: set[str], key: str) -> None:
    if key in seen:
        raise _Decline
    seen.add(key)


def _link_attrs(elem: ET.Element) -> dict[str, str]:
    """An Atom-style <link href=...>, as feedparser's ``_start_link`` records it."""
    attrs = _attrs(elem, frozenset({"rel", "type", "href", "title", "length", "hreflang"}))
    if len(elem) or (elem.text or "").strip() or "href" not in attrs:
        raise _Decline
    attrs.setdefault("rel", "alternate")
    attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
    attrs["href"] = _urljoin("", attrs["href"])
    return attrs


def _is_html_alternate(attrs: dict[str, str]) -> bool:
    return attrs.get("rel") == "alternate" and _map_content_type(attrs.get("type")) in _HTML_TYPES


# ------------------------------------------------------------------------- RSS 2.0

_RSS_CHANNEL_IGNORED = frozenset({
    "description", "copyright", "pubDate", "lastBuildDate", "generator", "docs", "category",
    "managingEditor", "webMaster", "rating", "cloud"})
_RSS_ITEM_IGNORED = frozenset({"comments", "category", "enclosure", "source"})
_RSS_ITEM_ATTRS = {"category": frozenset({"domain"}), "source": frozenset({"url"}),
                   "enclosure": frozenset({"url", "length", "type"}),
                   "cloud": frozenset({"domain", "port", "path", "registerprocedure", "protocol"})}
_IMAGE_CHILDREN = frozenset({"title", "url", "link", "width", "height", "description"})
_SKIP_CHILDREN = {"skipHours": "hour", "skipDays": "day"}
_DC_ITEM = frozenset({"creator", "language", "date", "subject", "rights", "publisher"})


def _rss(root: ET.Element) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _attrs(root, frozenset({"version"}))
    root_lang = _lang(root, None)
    feed: dict[str, Any] = {"links": []}
    if root_lang:
        feed["language"] = root_lang.replace("_", "-")
    if len(root) != 1 or (root[0].tag != "channel"):
        raise _Decline
    channel = root[0]
    _attrs(channel)
    lang = _lang(channel, root_lang)
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for child in channel:
        ns, name = _local(child)
        clang = _lang(child, lang)
        if ns == "":
            if name == "item":
                entries.append(_rss_item(child, clang))
            elif name == "title":
                _once(seen, "title")
                _attrs(child)
                raw = _leaf(child)
                value, kind = _value(raw, "title", "text/plain", atom=False)
                feed["title"] = _exact_html(raw, kind) if kind == "text/html" else value
            elif name == "link":
                _once(seen, "link")
                _attrs(child)
                value, _ = _value(_leaf(child), "link", None, atom=False, relative=True)
                value = re.sub("&([A-Za-z0-9_]+);", r"&\g<1>", value)
                feed["link"] = value
                feed["links"].append({"rel": "alternate", "type": "text/html",
                                      **({"href": value} if value else {})})
            elif name == "language":
                _once(seen, "language")
                _attrs(child)
                feed["language"] = _value(_leaf(child), "language", None, atom=False)[0]
            elif name == "ttl":
                _once(seen, "ttl")
                _attrs(child)
                feed["ttl"] = _value(_leaf(child), "ttl", None, atom=False)[0]
            elif name == "image":
                _once(seen, "image")
                _attrs(child)
                for part in child:
                    if part.tag not in _IMAGE_CHILDREN:
                        raise _Decline
                    _attrs(part)
                    _leaf(part)
            elif name in _SKIP_CHILDREN:
                _attrs(child)
                for part in child:
                    if part.tag != _SKIP_CHILDREN[name]:
                        raise _Decline
                    _attrs(part)
                    _leaf(part)
            elif name in _RSS_CHANNEL_IGNORED:
                _attrs(child, _RSS_ITEM_ATTRS.get(name, frozenset()))
                _leaf(child)
            else:
                raise _Decline
        elif ns == ATOM and name == "link":
            attrs = _link_attrs(child)
            feed["links"].append(attrs)
            if _is_html_alternate(attrs):
                feed["link"] = attrs["href"]
        elif ns == _DC and name == "language":
            _once(seen, "language")
            _attrs(child)
            feed["language"] = _value(_leaf(child), "language", None, atom=False)[0]
        elif (ns == _DC and name in ("date", "rights", "publisher", "creator", "subject")) \
                or ns == "http://purl.org/rss/1.0/modules/syndication/":
            _attrs(child)
            _leaf(child)
        else:
            raise _Decline
    return feed, entries


def _rss_item(item: ET.Element, lang: str | None) -> dict[str, Any]:
    _attrs(item)
    entry: dict[str, Any] = {}
    seen: set[str] = set()
    for child in item:
        ns, name = _local(child)
        clang = _lang(child, lang)
        if ns == "":
            if name == "title":
                _once(seen, "title")
                _attrs(child)
                value, kind = _value(_leaf(child), "title", "text/plain", atom=False)
                entry["title"] = value
                entry["title_detail"] = {"type": kind, "language": _detail_lang(clang), "value": value}
            elif name == "description":
                _once(seen, "description")
                _attrs(child)
                value, kind = _value(_leaf(child), "description", "text/html", atom=False)
                entry["summary"] = value
                entry["summary_detail"] = {"type": kind, "language": _detail_lang(clang),
                                           "value": value}
            elif name == "link":
                _once(seen, "link")
                _attrs(child)
                value, _ = _value(_leaf(child), "link", None, atom=False, relative=True)
                value = value.replace("&amp;", "&")
                entry["link"] = re.sub("&([A-Za-z0-9_]+);", r"&\g<1>", value)
            elif name == "guid":
                _once(seen, "guid")
                attrs = _attrs(child, frozenset({"ispermalink"}))
                islink = attrs.get("ispermalink", "true") == "true"
                value, _ = _value(_leaf(child), "id", None, atom=False, relative=islink)
                entry["id"] = value
                if islink:
                    entry.setdefault("link", value)
            elif name == "pubDate":
                _attrs(child)
                value, _ = _value(_leaf(child), "published", None, atom=False)
                entry["published_parsed"] = _parse_date(value)
            elif name == "author":
                _attrs(child)
                entry["author"] = _value(_leaf(child), "author", None, atom=False)[0]
            elif name in _RSS_ITEM_IGNORED:
                _attrs(child, _RSS_ITEM_ATTRS.get(name, frozenset()))
                _leaf(child)
            else:
                raise _Decline
        elif ns == _DC and name in _DC_ITEM:
            _attrs(child)
            value, _ = _value(_leaf(child), name, None, atom=False)
            if name == "creator":
                entry["author"] = value
            elif name == "language":
                _once(seen, "language")
                entry["language"] = value
            elif name == "date":
                entry["updated_parsed"] = _parse_date(value)
        elif ns == _CONTENT and name == "encoded":
            _once(seen, "content")
            _attrs(child)
            value, kind = _value(_leaf(child), "content", "text/html", atom=False)
            entry["content"] = [{"type": kind, "language": _detail_lang(clang), "value": value}]
        elif ns == ATOM and name == "link":
            attrs = _link_attrs(child)
            if _is_html_alternate(attrs):
                entry["link"] = attrs["href"]
        elif ns in _MEDIA and name in ("content", "thumbnail") and not len(child):
            _attrs(child, frozenset({"url", "type", "medium", "width", "height", "filesize",
                                     "duration", "lang", "expression", "isdefault"}) - {"lang"})
            if name == "thumbnail" and (child.text or "").strip():
                raise _Decline
        else:
            raise _Decline
    return entry


# ------------------------------------------------------------------------- Atom 1.0

_ATOM_TEXT_TYPES = {"text": "text/plain", "html": "text/html", "text/plain": "text/plain",
                    "text/html": "text/html"}


def _atom_kind(elem: ET.Element, extra: frozenset[str] = frozenset()) -> str:
    attrs = _attrs(elem, frozenset({"type"}) | extra)
    kind = _ATOM_TEXT_TYPES.get(attrs.get("type", "text"))
    if kind is None:
        raise _Decline
    return kind


def _atom_author(elem: ET.Element) -> str | None:
    """What ``_end_author`` leaves in the context's ``author``."""
    _attrs(elem)
    direct = (elem.text or "") + "".join(c.tail or "" for c in elem)
    detail: dict[str, str] = {}
    for part in elem:
        ns, name = _local(part)
        if ns != ATOM or name not in ("name", "email", "uri"):
            raise _Decline
        _attrs(part)
        if name in detail or (name == "uri" and "href" in detail):
            raise _Decline
        if name == "uri":
            detail["href"] = _value(_leaf(part), "href", None, atom=True, relative=True)[0]
        else:
            detail[name] = _leaf(part).strip()
    author = _value(direct, "author", None, atom=True)[0]
    name, email = detail.get("name"), detail.get("email")
    if detail:
        if name and email:
            author = f"{name} ({email})"
        elif name:
            author = name
        elif email:
            author = email
    return author


def _atom(root: ET.Element) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _attrs(root)
    root_lang = _lang(root, None)
    feed: dict[str, Any] = {"links": []}
    if root_lang:
        feed["language"] = root_lang.replace("_", "-")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for child in root:
        ns, name = _local(child)
        if ns != ATOM:
            raise _Decline
        clang = _lang(child, root_lang)
        if name == "entry":
            entries.append(_atom_entry(child, clang))
        elif name == "title":
            _once(seen, "title")
            kind = _atom_kind(child)
            raw = _leaf(child)
            value, _ = _value(raw, "title", kind, atom=True)
            feed["title"] = _exact_html(raw, kind) if kind == "text/html" else value
        elif name == "link":
            attrs = _link_attrs(child)
            feed["links"].append(attrs)
            if _is_html_alternate(attrs):
                feed["link"] = attrs["href"]
        elif name == "id":
            _once(seen, "id")
            _attrs(child)
            value, _ = _value(_leaf(child), "id", None, atom=True, relative=True)
            feed.setdefault("link", value)
        elif name == "author":
            _atom_author(child)
        elif name in ("subtitle", "rights"):
            _atom_kind(child)
            _leaf(child)
        elif name in ("updated", "icon", "logo"):
            _attrs(child)
            _leaf(child)
        elif name == "generator":
            _attrs(child, frozenset({"uri", "version"}))
            _leaf(child)
        elif name == "category":
            _attrs(child, frozenset({"term", "scheme", "label"}))
            _leaf(child)
        else:
            raise _Decline
    return feed, entries


def _atom_entry(elem: ET.Element, lang: str | None) -> dict[str, Any]:
    _attrs(elem)
    entry: dict[str, Any] = {}
    seen: set[str] = set()
    for child in elem:
        ns, name = _local(child)
        if ns != ATOM:
            raise _Decline
        clang = _lang(child, lang)
        if name == "title":
            _once(seen, "title")
            kind = _atom_kind(child)
            value, kind = _value(_leaf(child), "title", kind, atom=True)
            entry["title"] = value
            entry["title_detail"] = {"type": kind, "language": _detail_lang(clang), "value": value}
        elif name == "summary":
            _once(seen, "summary")
            kind = _atom_kind(child)
            value, kind = _value(_leaf(child), "summary", kind, atom=True)
            entry["summary"] = value
            entry["summary_detail"] = {"type": kind, "language": _detail_lang(clang), "value": value}
        elif name == "content":
            _once(seen, "content")
            kind = _atom_kind(child)
            value, kind = _value(_leaf(child), "content", kind, atom=True)
            entry["content"] = [{"type": kind, "language": _detail_lang(clang), "value": value}]
        elif name == "link":
            attrs = _link_attrs(child)
            if _is_html_alternate(attrs):
                entry["link"] = attrs["href"]
        elif name == "id":
            _once(seen, "id")
            _attrs(child)
            value, _ = _value(_leaf(child), "id", None, atom=True, relative=True)
            entry["id"] = value
            entry.setdefault("link", value)
        elif name in ("published", "updated"):
            _once(seen, name)
            _attrs(child)
            value, _ = _value(_leaf(child), name, None, atom=True)
            entry[name + "_parsed"] = _parse_date(value)
        elif name == "author":
            # A second author meets feedparser's author bookkeeping mid-way (it re-parses
            # the first one's e-mail with a regex): not replicated.
            _once(seen, "author")
            entry["author"] = _atom_author(child)
        elif name == "category":
            _attrs(child, frozenset({"term", "scheme", "label"}))
            _leaf(child)
        elif name == "rights":
            _atom_kind(child)
            _leaf(child)
        else:
            raise _Decline
    return entry


# ------------------------------------------------------------------------- entry point

def _accepted_bytes(content: bytes, headers: dict[str, str] | None) -> bytes | None:
    """The UTF-8 bytes feedparser's strict parser would read, if we accept this body."""
    body = content[3:] if content[:3] == b"\xef\xbb\xbf" else content
    if body.lstrip(b" \t\r\n")[:1] != b"<" or _UNSAFE.search(content):
        return None
    hdrs = dict(headers or {})
    if any(k.lower() in ("content-location", "content-language") for k in hdrs):
        return None
    if not names_only_utf8(body, hdrs):
        return None
    result: dict[str, Any] = {}
    data = convert_to_utf8(hdrs, content, result)
    encoding = str(result.get("encoding") or "").lower()
    if encoding not in UTF8_NAMES and not (
            body.isascii() and encoding in ("us-ascii", "ascii", "iso-8859-1", "windows-1252")):
        return None
    for prefix, uri in _XMLNS.findall(data):
        if uri.lower() in _VERSION_NAMESPACES:
            return None
        if prefix:
            std = _STD_PREFIX.get(uri.decode("utf-8", "replace").lower())
            name = prefix.decode("utf-8", "replace")
            # feedparser maps document prefixes to its own: a clash would rename elements
            if std is None and name in _STD_PREFIX.values():
                return None
            if std is not None and std != name and name in _STD_PREFIX.values():
                return None
    return data


def parse_fast(content: bytes, headers: dict[str, str] | None) -> ParsedFeed | None:
    """The ``ParsedFeed`` feedparser's path would give, or None if not certain (see module doc).

    ``headers`` are the response headers as feedparser would be given them."""
    data = _accepted_bytes(content, headers)
    if data is None:
        return None
    try:
        root = ET.fromstring(data)
        if root.tag == "rss":
            feed, items = _rss(root)
        elif root.tag == f"{{{ATOM}}}feed":
            feed, items = _atom(root)
        else:
            return None
        for elem in root.iter():
            for key in elem.attrib:
                local = key.rpartition("}")[2].lower()
                if (local in ("base", "lang") and key != _XML_LANG) or key == f"{{{_XML}}}base":
                    return None
    except (ET.ParseError, _Decline, ValueError):
        return None
    if not items:
        return None  # feedparser decides on errors for entry-less documents
    return from_feedparser(feed, items)

