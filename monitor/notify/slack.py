"""The Slack channel: Block Kit messages posted to an incoming webhook (SPEC §6).

``build_message`` is pure (payload in, webhook JSON out); ``SlackChannel`` only posts it.

Safety. Slack parses ``<…>`` in mrkdwn text (and in the top-level ``text``) as mentions,
``<!channel>``/``<!here>`` broadcasts and ``<url|label>`` links, and ``&`` starts an
entity. Every piece of article- or feed-derived text (titles, summaries, snippets, authors,
source and feed names, error messages) and rule names go through ``escape`` (``&``, ``<``,
``>`` only, as Slack documents) before it lands in mrkdwn, so none of it can ping anyone or
forge a link. Links are only ever built here, from payload URLs that pass ``safe_url``
(http(s) only; characters that could close or split the ``<url|label>`` token are
percent-encoded); anything else is shown as plain text. ``plain_text`` objects (headers)
are not parsed for mentions or links at all, and only carry rule names and fixed words.

Mrkdwn emphasis characters (``*``, ``_``, ``~`` and backticks) in article text are left as
they are, on purpose: they cannot mention anyone or create a link, Slack has no escape for
them, and the usual workarounds (zero-width spaces, look-alike characters) would change the
text people copy and search for. The worst an article can do with them is make part of
its own title or snippet bold, italic, struck or monospaced. (The same holds for
``:emoji:`` shortcodes. Bare URLs in article text are auto-linked by Slack, but then they
show the real address, so nothing is forged.)

Limits. Slack rejects a message whose blocks break the Block Kit limits (``invalid_blocks``),
and would then keep rejecting the retries, so every text is cut with "…" to fit instead:
at most 50 blocks, section text 3,000, header 150, context 10 elements of at most 2,000,
``text`` fallback kept to 1,000 (Slack allows 4,000 before truncating). Lengths are counted
in UTF-16 code units, which is never less than Python's ``len`` and is how Slack's clients
count, so emoji and other astral characters cannot push a text over a limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.ingest.fetch import parse_retry_after
from monitor.notify.base import DeliveryError
from monitor.notify.render import group_by_rule, one_line, source_name
from monitor.notify.webhook import encode

# Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
CONTEXT_ELEMENTS = 10
CONTEXT_LIMIT = 2000
TEXT_LIMIT = 1000            # our fallback ``text``; Slack's own limit is 4,000

# Readability bounds, well inside the limits above.
TITLE_CHARS = 300            # a title in a hit message
LIST_TITLE_CHARS = 200       # a title in a digest or throttle list
NAME_CHARS = 100             # source, author, feed and rule names
SNIPPET_CHARS = 1000
SUMMARY_CHARS = 600
ERROR_CHARS = 500
URL_LIMIT = 1000             # longer URLs are not linked (they would crowd out the text)
ALSO_IN_LINKS = 5
LIST_BUDGET = 12000          # total list text in one digest or throttle message
REASON_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")   # Slack's short error bodies: no_service

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_URL_ESCAPES = {"&": "&amp;", "<": "%3C", ">": "%3E", "|": "%7C", '"': "%22", "`": "%60"}
# A match in a snippet: «x» with no guillemet inside and none of the spaces French quotes
# (« x ») put inside, so that real quotation marks in article text stay as they are.
_MATCH = re.compile(r"«(?!\s)([^«»]*?[^«»\s])»")
_ZWSP = "\u200b"   # lets *bold* work next to letters (Nagorno-*Karabakh*'s), invisible


# --------------------------------------------------------------------------- text helpers

def units(text: str) -> int:
    """Length as Slack counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str | None) -> str:
    """Text made inert for Slack mrkdwn: ``&``, ``<`` and ``>`` become entities."""
    return "".join(_ESCAPES.get(ch, ch) for ch in (text or ""))


def fit(raw: str, limit: int, render: Callable[[str], str] = escape) -> str:
    """``render(raw)``, or ``render`` of the longest prefix of ``raw`` plus "…" whose
    rendering is at most ``limit`` units: cuts the source text, never an entity or a link."""
    out = render(raw)
    if units(out) <= limit:
        return out
    lo, hi = 0, len(raw)
    best = render("…")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(raw[:mid].rstrip() + "…")
        if units(candidate) <= limit:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best if units(best) <= limit else "…"


def mrkdwn(raw: Any, limit: int, chars: int | None = None) -> str:
    """One line of article text, escaped, at most ``chars`` characters and ``limit`` units."""
    return fit(one_line(None if raw is None else str(raw), chars or limit), limit)


def plain(raw: str | None, limit: int = HEADER_LIMIT) -> str:
    """One line for a ``plain_text`` object (not parsed by Slack, so not escaped)."""
    return fit(one_line(raw, limit), limit, lambda s: s) or "-"


def safe_url(url: Any, limit: int = URL_LIMIT) -> str | None:
    """``url`` ready for ``<url|label>``, or None when it must not be linked: only http(s)
    with a host; ``|``, ``<``, ``>`` (which would end or split the token), quotes, spaces and
    control characters are percent-encoded, ``&`` is written ``&amp;`` as Slack wants."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    out = "".join(_URL_ESCAPES.get(ch) or (f"%{ord(ch):02X}" if ch.isspace() or ord(ch) < 0x20
                                           or ord(ch) == 0x7F else ch) for ch in url)
    return out if units(out) <= limit else None


def link(url: Any, label: str) -> str:
    """``<url|label>`` for an already escaped, non-empty label; just the label when the URL
    is missing or unsafe."""
    target = safe_url(url)
    return f"<{target}|{label}>" if target else label


def slack_date(value: Any) -> str | None:
    """A ``<!date^…>`` token (shown in the reader's time zone) for an ISO 8601 time, with a
    UTC fallback; None when ``value`` is not a time. Built from the parsed time only."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def bold_matches(snippet: str) -> str:
    """Snippet text escaped, with the engine's «match» markers turned into *match*."""
    parts: list[str] = []
    pos = 0
    for m in _MATCH.finditer(snippet):
        parts.append(escape(snippet[pos:m.start()]))
        before = snippet[m.start() - 1] if m.start() > 0 else " "
        after = snippet[m.end()] if m.end() < len(snippet) else " "
        parts.append(f"{_ZWSP if before.isalnum() else ''}*{escape(m.group(1))}*"
                     f"{_ZWSP if after.isalnum() else ''}")
        pos = m.end()
    parts.append(escape(snippet[pos:]))
    return "".join(parts)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def rule_name(rule: dict[str, Any] | None) -> str:
    rule = rule or {}
    return str(rule.get("name") or rule.get("id") or "?")


# --------------------------------------------------------------------------- blocks

def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": plain(text), "emoji": True}}


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section; ``text`` is already escaped and within the limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(*texts: str | None) -> dict[str, Any] | None:
    """A context block of already escaped mrkdwn texts (empty ones dropped), or None."""
    elements = [{"type": "mrkdwn", "text": t} for t in texts if t][:CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements} if elements else None


def message(fallback: str, blocks: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The webhook JSON; ``fallback`` is raw text (escaped here), ``blocks`` may hold Nones."""
    return {"text": mrkdwn(fallback, TEXT_LIMIT) or "pressmon alert",
            "blocks": [b for b in blocks if b][:MAX_BLOCKS]}


# --------------------------------------------------------------------------- messages

def build_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The incoming-webhook JSON (``text`` fallback and Block Kit ``blocks``) for an alert."""
    kind = payload.get("type")
    if kind == "hit":
        return _hit(payload)
    if kind == "digest":
        return _digest(payload)
    if kind == "throttle":
        return _throttle(payload)
    if kind == "health":
        return _health(payload)
    return {"text": mrkdwn(f"pressmon alert of unknown type {kind!s}, id {payload.get('id')!s}",
                           TEXT_LIMIT)}


def _title_link(article: dict[str, Any], chars: int) -> str:
    label = mrkdwn(article.get("title") or "(untitled)", 2 * chars, chars) or "(untitled)"
    return link(article.get("url"), label)


def _hit(payload: dict[str, Any]) -> dict[str, Any]:
    rule = payload.get("rule") or {}
    article = payload.get("article") or {}
    high = rule.get("priority") == "high"
    name = rule_name(rule)
    source = source_name(article)

    blocks: list[dict[str, Any] | None] = [
        header(f"{':rotating_light: ' if high else ''}{name}"),
        section(f"*{_title_link(article, TITLE_CHARS)}*")]
    author = article.get("author")
    when = article.get("published_at") or payload.get("detected_at")
    blocks.append(context(
        ":rotating_light: *High priority*" if high else None,
        mrkdwn(source, CONTEXT_LIMIT, NAME_CHARS) or None,
        f"by {mrkdwn(author, CONTEXT_LIMIT, NAME_CHARS)}" if one_line(author) else None,
        slack_date(when) or mrkdwn(when, CONTEXT_LIMIT, NAME_CHARS) or None))

    snippet = one_line(payload.get("snippet"), SNIPPET_CHARS)
    if snippet:
        blocks.append(section(fit(snippet, SECTION_LIMIT, bold_matches)))
    elif one_line(article.get("summary")):
        blocks.append(section(mrkdwn(article.get("summary"), SECTION_LIMIT, SUMMARY_CHARS)))

    also = [a for a in (payload.get("story") or {}).get("also_in") or [] if isinstance(a, dict)]
    if also:
        blocks.append(context(_also_in(also)))

    flag = "[HIGH] " if high else ""
    fallback = (f"{flag}{one_line(name, NAME_CHARS)}: "
                f"{one_line(str(article.get('title') or '(untitled)'), TITLE_CHARS)}"
                + (f" ({one_line(source, NAME_CHARS)})" if source else ""))
    return message(fallback, blocks)


def _also_in(also: list[dict[str, Any]]) -> str:
    text = f"Also in {plural(len(also), 'outlet')}"
    links = []
    for item in also[:ALSO_IN_LINKS]:
        label = mrkdwn(item.get("source") or "link", 2 * NAME_CHARS, NAME_CHARS) or "link"
        candidate = link(item.get("url"), label)
        if units(text) + units(": " + ", ".join([*links, candidate]) + ", …") > CONTEXT_LIMIT:
            break
        links.append(candidate)
    if links:
        text += ": " + ", ".join(links) + (", …" if len(links) < len(also) else "")
    return text


def _hit_line(hit: dict[str, Any]) -> str:
    article = hit.get("article") or {}
    source = source_name(article)
    line = f"• {_title_link(article, LIST_TITLE_CHARS)}"
    if source:
        line += f" · {mrkdwn(source, 2 * NAME_CHARS, NAME_CHARS)}"
    if (hit.get("rule") or {}).get("priority") == "high":
        line += " :rotating_light:"
    return line


def _list_sections(title: str, hits: list[dict[str, Any]], budget: int, max_blocks: int
                   ) -> tuple[list[dict[str, Any]], int, int]:
    """Sections listing ``hits`` under ``title`` (escaped mrkdwn), each within the section
    limit, using at most ``budget`` units and ``max_blocks`` blocks in all.
    Returns (blocks, hits listed, units used)."""
    blocks: list[dict[str, Any]] = []
    current = title
    used = listed = 0
    for hit in hits:
        line = _hit_line(hit)
        if used + units(current) + 1 + units(line) > budget:
            break
        if units(current) + 1 + units(line) > SECTION_LIMIT:
            if len(blocks) + 2 > max_blocks:
                break
            blocks.append(section(current))
            used += units(current)
            current = line
        else:
            current = f"{current}\n{line}"
        listed += 1
    if len(blocks) < max_blocks:
        blocks.append(section(current))
        used += units(current)
    return blocks, listed, used


def _period(payload: dict[str, Any]) -> str | None:
    period = payload.get("period") or {}
    start, end = period.get("start"), period.get("end")
    if not start and not end:
        return None
    return (f"{slack_date(start) or mrkdwn(start, 100)} – "
            f"{slack_date(end) or mrkdwn(end, 100)}")


def _more(count: int, per_rule: Sequence[tuple[str, int]] = ()) -> dict[str, Any] | None:
    """The closing "and N more hits" context, with the per-rule counts that fit."""
    text = f"and {plural(count, 'more hit')}"
    parts: list[str] = []
    for name, n in per_rule:
        if units(text) + units(" (" + ", ".join([*parts, f"{name}: {n}"]) + ", …)") > CONTEXT_LIMIT:
            parts.append("…")
            break
        parts.append(f"{name}: {n}")
    return context(f"{text} ({', '.join(parts)})" if parts else text)


def _digest(payload: dict[str, Any]) -> dict[str, Any]:
    hits = [h for h in payload.get("hits") or [] if isinstance(h, dict)]
    groups = group_by_rule(hits)
    title = f"Digest: {plural(len(hits), 'hit')} for {plural(len(groups), 'rule')}"
    blocks: list[dict[str, Any] | None] = [header(title), context(_period(payload))]

    budget = LIST_BUDGET
    hidden: list[tuple[str, int]] = []
    for index, (rule, rule_hits) in enumerate(groups):
        # Each rule gets a fair share of what is left, so one busy rule cannot hide the rest;
        # one block stays free for the closing "and N more".
        share = budget // (len(groups) - index)
        room = MAX_BLOCKS - 1 - sum(1 for b in blocks if b)
        name = mrkdwn(rule_name(rule), 2 * NAME_CHARS, NAME_CHARS)
        listed = 0
        if room > 0 and share > 0:
            sections, listed, used = _list_sections(
                f"*{name}* · {plural(len(rule_hits), 'hit')}", rule_hits, share, room)
            blocks += sections
            budget -= used
        if listed < len(rule_hits):
            hidden.append((name, len(rule_hits) - listed))

    if hidden:
        blocks.append(_more(sum(n for _, n in hidden), hidden))

    names = ", ".join(f"{one_line(rule_name(r), NAME_CHARS)} ({len(h)})" for r, h in groups)
    return message(f"{title}: {names}" if names else title, blocks)


def _throttle(payload: dict[str, Any]) -> dict[str, Any]:
    rule = payload.get("rule") or {}
    hits = [h for h in payload.get("hits") or [] if isinstance(h, dict)]
    count = payload.get("count")
    count = count if isinstance(count, int) and count >= len(hits) else len(hits)
    name = rule_name(rule)
    title = f"and {plural(count, 'more hit')} for {one_line(name, NAME_CHARS)}"
    blocks: list[dict[str, Any] | None] = [
        header(title), context(f"Held back by the rule's throttle{':' if hits else '.'}", _period(payload))]
    listed = 0
    if hits:
        sections, listed, _ = _list_sections(
            f"*{mrkdwn(name, 2 * NAME_CHARS, NAME_CHARS)}*", hits, LIST_BUDGET,
            MAX_BLOCKS - 1 - sum(1 for b in blocks if b))
        blocks += sections
    if listed < count and hits:
        blocks.append(_more(count - listed))
    return message(title, blocks)


_PROBLEMS = {
    "failing": (":warning:", "Feed failing", "is failing"),
    "silent": (":zzz:", "Feed silent", "has gone silent (no new entries)"),
    "recovered": (":white_check_mark:", "Feed recovered", "has recovered"),
}


def _health(payload: dict[str, Any]) -> dict[str, Any]:
    feed = payload.get("feed") or {}
    problem = str(payload.get("problem") or "problem")
    emoji, title, phrase = _PROBLEMS.get(problem, (":warning:", "Feed problem",
                                                   f"reports: {one_line(problem, NAME_CHARS)}"))
    feed_id = one_line(str(feed.get("id") or ""), NAME_CHARS)
    name = one_line(str(feed.get("name") or feed_id or "?"), NAME_CHARS)
    label = escape(name)
    ident = f" ({escape(feed_id)})" if feed_id and feed_id != name else ""
    since = payload.get("since")
    when = f" since {slack_date(since) or mrkdwn(since, 100)}" if since else ""
    blocks = [header(f"{emoji} {title}"),
              section(f"{emoji} Feed *{link(feed.get('url'), label)}*{ident} {escape(phrase)}{when}.")]
    error = one_line(payload.get("last_error"), ERROR_CHARS)
    if error:
        blocks.append(context(f"Last error: {fit(error, CONTEXT_LIMIT - 20)}"))
    return message(f"{title}: {name}" + (f" ({problem})" if problem not in _PROBLEMS else ""), blocks)


# --------------------------------------------------------------------------- the channel

class SlackChannel:
    """Posts each alert as one Block Kit message to a Slack incoming webhook."""

    def __init__(self, name: str, *, webhook_url: str, timeout: float) -> None:
        self.name = name
        url = str(webhook_url)   # config hands over a pydantic URL
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise ValueError(f"channel {name}: webhook_url is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"channel {name}: webhook_url must be an http(s) URL")
        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         headers={"User-Agent": f"pressmon/{__version__}"})

    async def send(self, payload: dict[str, Any]) -> None:
        body = encode(build_message(payload))
        try:
            response = await self._client.post(self._url, content=body,
                                                headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise DeliveryError("timed out") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # Never echo the URL (or an exception text that may hold it): the incoming-webhook
            # URL is the credential.
            raise DeliveryError(type(exc).__name__) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        message = f"HTTP {status}"
        reason = self._reason(response)
        if reason:
            message += f": {reason}"
        retry_after = (parse_retry_after(response.headers.get("retry-after"))
                       if status in (429, 503) else None)
        raise DeliveryError(message, retry_after=retry_after)

    def _reason(self, response: httpx.Response) -> str | None:
        """Slack's error body (``no_service``, ``invalid_payload``…) when it is one short
        token that is no part of the webhook URL; anything else is not repeated."""
        try:
            text = response.text.strip()
        except (UnicodeDecodeError, LookupError):
            return None
        if REASON_PATTERN.fullmatch(text) and text not in self._url:
            return text
        return None

    async def aclose(self) -> None:
        await self._client.aclose()
