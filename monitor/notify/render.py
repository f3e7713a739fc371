"""Plain-text renderings of alerts, shared by console, email (text part) and Apprise.

Pure functions of the payload (SPEC §6): no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUBJECT_LIMIT = 200


@dataclass(frozen=True)
class Rendered:
    title: str   # one line: an email subject, a push title
    body: str    # plain text, several lines


def one_line(text: str | None, limit: int = SUBJECT_LIMIT) -> str:
    """Collapse whitespace (CR/LF included) and cut to ``limit`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def source_name(article: dict[str, Any]) -> str:
    source = article.get("source") or {}
    return str(source.get("name") or source.get("id") or "")


def group_by_rule(hits: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Hits grouped by rule, rules in order of first appearance."""
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for hit in hits:
        rule = hit.get("rule") or {"id": "?", "name": "?"}
        groups.setdefault(rule["id"], (rule, []))[1].append(hit)
    return list(groups.values())


def hit_lines(hit: dict[str, Any]) -> list[str]:
    article = hit["article"]
    when = article.get("published_at") or hit.get("detected_at") or ""
    lines = [f"{one_line(article.get('title')) or '(untitled)'}",
             f"  {source_name(article)} {when}".rstrip()]
    if article.get("url"):
        lines.append(f"  {article['url']}")
    if hit.get("snippet"):
        lines.append(f"  {one_line(hit['snippet'], 600)}")
    also = (hit.get("story") or {}).get("also_in") or []
    if also:
        lines.append(f"  also in {len(also)} outlet{'s' if len(also) != 1 else ''}")
    return lines


def render(payload: dict[str, Any]) -> Rendered:
    kind = payload.get("type")
    if kind == "hit":
        rule = payload["rule"]
        flag = "[HIGH] " if rule.get("priority") == "high" else ""
        title = one_line(f"{flag}{rule.get('name') or rule['id']}: {payload['article'].get('title')}")
        return Rendered(title, "\n".join([f"Rule: {rule.get('name') or rule['id']}", "",
                                          *hit_lines(payload)]))
    if kind == "digest":
        hits = payload.get("hits") or []
        groups = group_by_rule(hits)
        period = payload.get("period") or {}
        title = one_line(f"Digest: {len(hits)} hit{'s' if len(hits) != 1 else ''} "
                         f"for {len(groups)} rule{'s' if len(groups) != 1 else ''}")
        lines = [f"Period: {period.get('start')} – {period.get('end')}"]
        for rule, rule_hits in groups:
            lines += ["", f"== {rule.get('name') or rule['id']} ({len(rule_hits)}) =="]
            for hit in rule_hits:
                lines += ["", *hit_lines(hit)]
        return Rendered(title, "\n".join(lines))
    if kind == "throttle":
        rule = payload["rule"]
        count = payload.get("count", 0)
        period = payload.get("period") or {}
        title = one_line(f"and {count} more hit{'s' if count != 1 else ''} for "
                         f"{rule.get('name') or rule['id']}")
        lines = [f"The rule's throttle held back {count} alert{'s' if count != 1 else ''} "
                 f"between {period.get('start')} and {period.get('end')}:", ""]
        for hit in payload.get("hits") or []:
            article = hit.get("article") or {}
            url = f" <{article['url']}>" if article.get("url") else ""
            lines.append(f"- {one_line(article.get('title'))} ({source_name(article)}){url}")
        return Rendered(title, "\n".join(lines))
    if kind == "health":
        feed = payload.get("feed") or {}
        problem = payload.get("problem", "")
        title = one_line(f"Feed {feed.get('id')}: {problem}")
        return Rendered(title, "\n".join(f"{k}: {v}" for k, v in payload.items()
                                         if k not in ("type", "version")))
    return Rendered(one_line(f"pressmon {kind}"), str(payload))
