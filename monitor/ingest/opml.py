"""OPML subscription lists: read (``opml:`` in the config, ``feeds import``) and write (``feeds export``).

Parsing uses defusedxml: an OPML file is user input and must not expand entities.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException


class OpmlError(ValueError):
    """The file is not an OPML list we can read."""


@dataclass(frozen=True)
class OpmlFeed:
    id: str
    url: str
    name: str | None
    tags: tuple[str, ...] = field(default=())


def slug(text: str, limit: int = 60) -> str:
    """A feed id from a title or URL: ASCII letters, digits and dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ascii_text = re.sub(r"^https?://(www\.)?", "", ascii_text.lower())
    out = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:limit].strip("-")
    return out or "feed"


def _unique(base: str, taken: set[str]) -> str:
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def read_opml(data: bytes, *, taken: Iterable[str] = ()) -> list[OpmlFeed]:
    """Every outline with an ``xmlUrl``; enclosing outlines become tags. Ids avoid ``taken``."""
    try:
        root = ElementTree.fromstring(data)
    except DefusedXmlException as exc:
        raise OpmlError(f"refused unsafe XML: {type(exc).__name__}") from None
    except ElementTree.ParseError as exc:
        raise OpmlError(f"not valid XML: {exc}") from None
    if root.tag.lower() != "opml":
        raise OpmlError(f"not OPML: the root element is <{root.tag}>")
    body = root.find("body")
    if body is None:
        raise OpmlError("not OPML: no <body>")
    ids = set(taken)
    seen_urls: set[str] = set()
    feeds: list[OpmlFeed] = []

    def walk(node: Element, tags: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            url = (outline.get("xmlUrl") or "").strip()
            title = (outline.get("title") or outline.get("text") or "").strip() or None
            if url:
                if url.startswith(("http://", "https://")) and url not in seen_urls:
                    seen_urls.add(url)
                    feeds.append(OpmlFeed(_unique(slug(title or url), ids), url, title, tags))
            else:
                walk(outline, (*tags, title) if title else tags)

    walk(body, ())
    return feeds


def write_opml(feeds: Iterable[OpmlFeed], title: str = "pressmon feeds") -> bytes:
    """An OPML 2.0 document; feeds are grouped under their first tag."""
    root = Element("opml", version="2.0")
    head = SubElement(root, "head")
    SubElement(head, "title").text = title
    body = SubElement(root, "body")
    groups: dict[str, Element] = {}
    for feed in feeds:
        parent = body
        if feed.tags:
            tag = feed.tags[0]
            if tag not in groups:
                groups[tag] = SubElement(body, "outline", text=tag, title=tag)
            parent = groups[tag]
        SubElement(parent, "outline", type="rss", text=feed.name or feed.id,
                   title=feed.name or feed.id, xmlUrl=feed.url)
    indent(root)
    document = tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{document}\n'.encode()
