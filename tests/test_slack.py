"""The Slack channel: Block Kit messages within Slack's limits, inert article text, delivery."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from monitor.match import RuleHit
from monitor.match.engine import Evidence
from monitor.notify.base import DeliveryError
from monitor.notify.payload import digest_payload, hit_payload, throttle_payload
from monitor.notify.slack import SlackChannel, build_message, safe_url
from tests.conftest import Receiver

T0 = datetime(2025, 3, 14, 7, 30, tzinfo=UTC)
HOSTILE = "<!channel> <!here> <@U123> <https://evil.example|click> & <#C42> <!subteam^S1>"
EVIL_LINK = re.compile(r"<!|<@|<#|<http", re.IGNORECASE)
ENTITY_CUT = re.compile(r"&(?!amp;|lt;|gt;)")


# --------------------------------------------------------------------------- payloads

def make_hit(n: int = 1, *, rule: str = "harbour", rule_name: str = "Harbour strike",
             priority: str = "normal", title: str | None = None, url: str | None = None,
             snippet: str | None = None, summary: str = "Dock workers walked out at dawn.",
             author: str | None = "Mara Lindqvist", feed_name: str | None = "Coastal Gazette",
             also_in: list[dict[str, str]] | None = None) -> dict[str, Any]:
    hit = RuleHit(rule_id=rule,
                  matches=(Evidence(term="strike", text="strike", field="summary", start=5, end=11),),
                  snippet=snippet if snippet is not None
                  else "…the «strike» at the northern «harbour» entered its third day…",
                  score=1.5)
    payload = hit_payload(
        alert_id=f"alert-{rule}-{n}", rule_id=rule, rule_name=rule_name, priority=priority,
        article_id=n, title=title if title is not None else f"Harbour strike enters day {n}",
        url=url if url is not None else f"https://news.example/harbour/{n}?ref=rss&lang=en",
        feed_id="coastal", feed_name=feed_name, published_at=T0 + timedelta(minutes=n),
        author=author, summary=summary, hit=hit, entities={"GPE": ["Gdańsk"]},
        detected_at=T0 + timedelta(minutes=n, seconds=30))
    if also_in:
        payload["story"]["also_in"] = also_in
    return payload


def make_digest(hits: list[dict[str, Any]]) -> dict[str, Any]:
    return digest_payload(alert_id="digest-1", channel="slack", start=T0, end=T0 + timedelta(hours=1),
                          hits=hits)


def make_throttle(hits: list[dict[str, Any]]) -> dict[str, Any]:
    return throttle_payload(alert_id="throttle-1", rule=hits[0]["rule"], start=T0,
                            end=T0 + timedelta(minutes=10), hits=hits)


def make_health(problem: str = "failing", *, name: str = "Coastal Gazette",
                url: str = "https://coastal.example/feed.xml",
                last_error: str | None = "HTTP 502 from upstream") -> dict[str, Any]:
    return {"type": "health", "version": 1, "id": f"health-{problem}",
            "feed": {"id": "coastal", "name": name, "url": url}, "problem": problem,
            "since": "2025-03-14T06:00:00Z", "last_error": last_error}


def three_rule_digest(count: int = 120) -> dict[str, Any]:
    rules = [("harbour", "Harbour strike"), ("grain", "Grain exports"), ("ports", "Port authority")]
    return make_digest([make_hit(i, rule=rules[i % 3][0], rule_name=rules[i % 3][1],
                                 title=f"Story number {i} about the docks and the grain silos")
                        for i in range(count)])


# --------------------------------------------------------------------------- checks

def texts(message: dict[str, Any]) -> list[str]:
    """Every text Slack will render: the fallback and each text object in the blocks."""
    found = [message["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.get("blocks", []))
    return found


def u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_message(message: dict[str, Any]) -> None:
    """Valid for slack_sdk and within Slack's documented limits."""
    assert set(message) <= {"text", "blocks"}
    assert len(message["text"]) > 0 and u16(message["text"]) <= 4000
    blocks = message.get("blocks", [])
    assert len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None and block.type == raw["type"]
        block.validate_json()
        if raw["type"] == "header":
            assert raw["text"]["type"] == "plain_text"
            assert 0 < u16(raw["text"]["text"]) <= 150
        elif raw["type"] == "section":
            assert raw["text"]["type"] == "mrkdwn"
            assert 0 < u16(raw["text"]["text"]) <= 3000
        elif raw["type"] == "context":
            assert 1 <= len(raw["elements"]) <= 10
            for element in raw["elements"]:
                assert 0 < u16(element["text"]) <= 2000
        else:
            raise AssertionError(f"unexpected block type {raw['type']}")
    headers = [b["text"]["text"] for b in blocks if b["type"] == "header"]
    for text in texts(message)[:1] + [t for t in texts(message)[1:] if t not in headers]:
        # Mrkdwn is escaped, and truncation never leaves half an entity behind.
        assert not ENTITY_CUT.search(text), text


def links(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"<(https?://[^|<>]*)\|([^<>]*)>", text)]


def of_type(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == kind]


def context_texts(message: dict[str, Any]) -> list[str]:
    return [e["text"] for b in of_type(message, "context") for e in b["elements"]]


# --------------------------------------------------------------------------- messages

MESSAGES = {
    "hit": lambda: make_hit(),
    "high": lambda: make_hit(priority="high"),
    "also_in": lambda: make_hit(also_in=[{"source": f"Outlet {i}", "url": f"https://o{i}.example/x"}
                                         for i in range(12)]),
    "digest": three_rule_digest,
    "throttle": lambda: make_throttle([make_hit(i) for i in range(7)]),
    "throttle_many": lambda: make_throttle([make_hit(i) for i in range(400)]),
    "health": lambda: make_health(),
    "silent": lambda: make_health("silent", last_error=None),
    "recovered": lambda: make_health("recovered", last_error=None),
    "bare_hit": lambda: {"type": "hit", "id": "x", "rule": {"id": "r"}, "article": {}},
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_every_message_validates_within_limits(kind: str) -> None:
    message = build_message(MESSAGES[kind]())
    check_message(message)
    assert message["blocks"], "a known alert type is sent as blocks"


def test_hit_message() -> None:
    message = build_message(make_hit(3))
    check_message(message)
    header, title, meta, snippet = message["blocks"]
    assert header["type"] == "header" and header["text"]["text"] == "Harbour strike"
    assert links(title["text"]["text"]) == [("https://news.example/harbour/3?ref=rss&amp;lang=en",
                                             "Harbour strike enters day 3")]
    assert meta["type"] == "context"
    assert [e["text"] for e in meta["elements"]] == [
        "Coastal Gazette", "by Mara Lindqvist",
        "<!date^1741937580^{date_short_pretty} {time}|2025-03-14 07:33 UTC>"]
    assert snippet["text"]["text"] == "…the *strike* at the northern *harbour* entered its third day…"
    assert "rotating_light" not in json.dumps(message)
    assert "Also in" not in json.dumps(message)
    assert message["text"] == "Harbour strike: Harbour strike enters day 3 (Coastal Gazette)"


def test_high_priority_is_marked() -> None:
    message = build_message(make_hit(priority="high"))
    check_message(message)
    assert message["blocks"][0]["text"]["text"] == ":rotating_light: Harbour strike"
    assert any("High priority" in t for t in context_texts(message))
    assert message["text"].startswith("[HIGH] ")


def test_hit_without_snippet_shows_summary() -> None:
    message = build_message(make_hit(snippet="", summary="Cranes & <b>gantries</b> stood idle."))
    check_message(message)
    assert message["blocks"][-1]["text"]["text"] == "Cranes &amp; &lt;b&gt;gantries&lt;/b&gt; stood idle."


def test_also_in_outlets() -> None:
    also = [{"source": "Baltic Times", "url": "https://baltic.example/1"},
            {"source": "Port Daily", "url": "javascript:alert(1)"}]
    message = build_message(make_hit(also_in=also))
    check_message(message)
    (also_text,) = [t for t in context_texts(message) if t.startswith("Also in")]
    assert also_text == "Also in 2 outlets: <https://baltic.example/1|Baltic Times>, Port Daily"

    many = build_message(make_hit(also_in=[{"source": f"S{i}", "url": f"https://s{i}.example/"}
                                           for i in range(30)]))
    (also_text,) = [t for t in context_texts(many) if t.startswith("Also in")]
    assert also_text.startswith("Also in 30 outlets: ") and also_text.endswith(", …")
    assert len(links(also_text)) == 5


def test_matches_bold_but_real_quotes_stay() -> None:
    snippet = "Le maire a dit « Bonjour » puis «grève» et Nagorno-«Karabakh»'s «x»y"
    message = build_message(make_hit(snippet=snippet))
    text = message["blocks"][-1]["text"]["text"]
    assert "« Bonjour »" in text
    assert "*grève*" in text and "Nagorno-*Karabakh*'s" in text
    assert "*x*\u200by" in text   # bold next to a letter needs a word boundary


def test_digest_three_rules_120_hits() -> None:
    payload = three_rule_digest(120)
    message = build_message(payload)
    check_message(message)
    assert message["blocks"][0]["text"]["text"] == "Digest: 120 hits for 3 rules"
    sections = [b["text"]["text"] for b in of_type(message, "section")]
    body = "\n".join(sections)
    for name in ("Harbour strike", "Grain exports", "Port authority"):
        assert f"*{name}* · 40 hits" in body
    listed = links(body)
    assert 0 < len(listed) < 120
    assert all(label.startswith("Story number ") for _, label in listed)
    assert body.count("· Coastal Gazette") == len(listed)
    # Every rule gets its share of the room.
    per_rule = [body.split(f"*{n}*")[1].split("\n*")[0].count("<https://")
                for n in ("Harbour strike", "Grain exports", "Port authority")]
    assert min(per_rule) >= 10, per_rule
    last = message["blocks"][-1]
    assert last["type"] == "context"
    more = last["elements"][0]["text"]
    assert more.startswith(f"and {120 - len(listed)} more hits (")
    assert "Harbour strike: " in more and "Grain exports: " in more
    assert message["text"].startswith("Digest: 120 hits for 3 rules: Harbour strike (40)")


def test_small_digest_lists_everything() -> None:
    message = build_message(three_rule_digest(6))
    check_message(message)
    assert len(links(json.dumps(message["blocks"], ensure_ascii=False))) == 6
    assert not any(t.startswith("and ") for t in context_texts(message))


def test_digest_busy_rule_does_not_hide_quiet_ones() -> None:
    hits = [make_hit(i, title="A very long headline " * 9) for i in range(300)]
    hits += [make_hit(1000 + i, rule="quiet", rule_name="Quiet rule", title=f"Quiet story {i}")
             for i in range(2)]
    message = build_message(make_digest(hits))
    check_message(message)
    body = "\n".join(b["text"]["text"] for b in of_type(message, "section"))
    assert "Quiet story 0" in body and "Quiet story 1" in body
    assert message["blocks"][-1]["elements"][0]["text"].startswith("and ")


def test_digest_with_many_rules_stays_within_50_blocks() -> None:
    hits = [make_hit(i, rule=f"rule{i}", rule_name=f"Rule {i}") for i in range(80)]
    message = build_message(make_digest(hits))
    check_message(message)
    assert len(message["blocks"]) == 50
    more = message["blocks"][-1]["elements"][0]["text"]
    shown = sum(1 for b in of_type(message, "section") if b["text"]["text"].startswith("*Rule "))
    assert more.startswith(f"and {80 - shown} more hits (")


def test_throttle_message() -> None:
    payload = make_throttle([make_hit(i) for i in range(7)])
    message = build_message(payload)
    check_message(message)
    assert message["blocks"][0]["text"]["text"] == "and 7 more hits for Harbour strike"
    assert len(links(json.dumps(message["blocks"]))) == 7
    assert not any(t.startswith("and ") for t in context_texts(message))
    assert message["text"] == "and 7 more hits for Harbour strike"


def test_throttle_list_is_bounded() -> None:
    message = build_message(make_throttle([make_hit(i) for i in range(400)]))
    check_message(message)
    listed = len(links(json.dumps(message["blocks"])))
    assert 0 < listed < 400
    assert message["blocks"][-1]["elements"][0]["text"] == f"and {400 - listed} more hits"


@pytest.mark.parametrize(("problem", "words"), [("failing", "is failing"),
                                                ("silent", "has gone silent"),
                                                ("recovered", "has recovered")])
def test_health_message(problem: str, words: str) -> None:
    error = "HTTP 502 from upstream" if problem == "failing" else None
    message = build_message(make_health(problem, last_error=error))
    check_message(message)
    assert message["blocks"][0]["text"]["text"].endswith(f"Feed {problem}")
    text = message["blocks"][1]["text"]["text"]
    assert "<https://coastal.example/feed.xml|Coastal Gazette>" in text and words in text
    assert "<!date^1741932000^" in text
    assert message["text"] == f"Feed {problem}: Coastal Gazette"
    assert ("Last error: HTTP 502 from upstream" in context_texts(message)) == (problem == "failing")


def test_unknown_type_is_plain_text() -> None:
    message = build_message({"type": "<!channel> new", "id": "q"})
    assert set(message) == {"text"}
    assert message["text"] == "pressmon alert of unknown type &lt;!channel&gt; new, id q"


# --------------------------------------------------------------------------- hostile text

def hostile_hit() -> dict[str, Any]:
    return make_hit(
        7, rule_name="Harbour strike", title=f"Title {HOSTILE}", summary=f"Summary {HOSTILE}",
        snippet=f"…snippet «{HOSTILE}» and «strike» {HOSTILE}…", author=f"Author {HOSTILE}",
        feed_name=f"Source {HOSTILE}", url="https://news.example/a?x=1&y=2",
        also_in=[{"source": f"Other {HOSTILE}", "url": "https://other.example/b"}])


HOSTILE_MESSAGES = {
    "hit": hostile_hit,
    "hit_no_snippet": lambda: {**hostile_hit(), "snippet": ""},
    "digest": lambda: make_digest([hostile_hit(), make_hit(2)]),
    "throttle": lambda: make_throttle([hostile_hit(), hostile_hit()]),
    "health": lambda: make_health(name=f"Feed {HOSTILE}", last_error=f"boom {HOSTILE}"),
}
ALLOWED_URLS = {"https://news.example/a?x=1&amp;y=2", "https://other.example/b",
                "https://news.example/harbour/2?ref=rss&amp;lang=en", "https://coastal.example/feed.xml"}


@pytest.mark.parametrize("kind", sorted(HOSTILE_MESSAGES))
def test_hostile_article_text_stays_plain(kind: str) -> None:
    message = build_message(HOSTILE_MESSAGES[kind]())
    check_message(message)
    rendered = texts(message)
    assert any("&lt;!channel&gt;" in t for t in rendered), "the text is shown, escaped"
    for text in rendered:
        # Remove what we built ourselves: links to the payload's URLs and date tokens.
        rest = text
        for url, label in links(text):
            assert url in ALLOWED_URLS, url
            assert "<" not in label and ">" not in label
            rest = rest.replace(f"<{url}|{label}>", label)
        rest = re.sub(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|[0-9: -]+UTC>", "", rest)
        assert not EVIL_LINK.search(rest), text
        assert "<" not in rest and ">" not in rest, text
    assert "evil.example|click>" not in json.dumps(message)


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "data:text/html,hi", "ftp://files.example/a", "//news.example/x",
    "https:///nohost", "mailto:a@b.example", None, 42, "not a url"])
def test_unsafe_urls_are_not_linked(url: Any) -> None:
    payload = make_hit(title="Plain title")
    payload["article"]["url"] = url
    message = build_message(payload)
    check_message(message)
    assert message["blocks"][1]["text"]["text"] == "*Plain title*"
    assert safe_url(url) is None


def test_url_cannot_break_out_of_link() -> None:
    url = "https://news.example/a|<!channel>/b>c d\"e\n`f"
    payload = make_hit(title="Headline")
    payload["article"]["url"] = url
    message = build_message(payload)
    check_message(message)
    text = message["blocks"][1]["text"]["text"]
    assert text == "*<https://news.example/a%7C%3C!channel%3E/b%3Ec%20d%22e%0A%60f|Headline>*"
    assert links(text) == [("https://news.example/a%7C%3C!channel%3E/b%3Ec%20d%22e%0A%60f", "Headline")]


def test_overlong_url_is_not_linked() -> None:
    payload = make_hit(title="Headline", url="https://news.example/" + "a" * 5000)
    message = build_message(payload)
    check_message(message)
    assert message["blocks"][1]["text"]["text"] == "*Headline*"


# --------------------------------------------------------------------------- long text

@pytest.mark.parametrize("filler", ["word ", "&", "<>", "😀", "x"])
def test_long_text_stays_within_limits(filler: str) -> None:
    long = (filler * 10_000)[:10_000] if len(filler) == 1 else filler * (10_000 // len(filler))
    hit = make_hit(title=long, summary=long, snippet=f"«{long}» {long}", author=long, feed_name=long,
                   also_in=[{"source": long, "url": "https://o.example/" + "p" * 900}] * 20)
    for payload in (hit, {**hit, "snippet": ""}, make_digest([hit] * 60), make_throttle([hit] * 60),
                    make_health(name=long, last_error=long)):
        message = build_message(payload)
        check_message(message)
        assert message["blocks"]
    message = build_message(hit)
    assert message["blocks"][1]["text"]["text"].endswith("…>*")
    assert message["blocks"][-2]["text"]["text"].endswith("…")


def test_long_rule_name_fits_header() -> None:
    message = build_message(make_hit(rule_name="R" * 400, priority="high"))
    check_message(message)
    assert message["blocks"][0]["text"]["text"].endswith("…")


# --------------------------------------------------------------------------- delivery

def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def send_once(url: str, payload: dict[str, Any], timeout: float = 5.0) -> None:
    channel = SlackChannel("slack", webhook_url=url, timeout=timeout)
    try:
        await channel.send(payload)
    finally:
        await channel.aclose()


def secret_url(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}/services/T0AAA/B0BBB/s3cr3tT0kenXYZ"


def test_send_posts_the_message(receiver: Receiver) -> None:
    payload = make_hit(priority="high")
    run(send_once(secret_url(receiver), payload))
    (call,) = receiver.wait_for(1)
    assert call.path == "/services/T0AAA/B0BBB/s3cr3tT0kenXYZ"
    assert call.headers["Content-Type"] == "application/json"
    assert call.json() == build_message(payload)


def test_channel_reuses_one_client(receiver: Receiver) -> None:
    async def twice() -> None:
        channel = SlackChannel("slack", webhook_url=receiver.url, timeout=5)
        assert channel.name == "slack"
        await channel.send(make_hit(1))
        await channel.send(make_health())
        await channel.aclose()

    run(twice())
    first, second = receiver.wait_for(2)
    assert first.json()["blocks"][0]["text"]["text"] == "Harbour strike"
    assert second.json()["text"] == "Feed failing: Coastal Gazette"


def test_server_error_raises(receiver: Receiver) -> None:
    receiver.statuses = [500]
    with pytest.raises(DeliveryError) as info:
        run(send_once(secret_url(receiver), make_hit()))
    assert str(info.value) == "HTTP 500"
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_passed_on(receiver: Receiver, status: int) -> None:
    receiver.statuses = [status]
    receiver.extra_headers = {"Retry-After": "2"}
    with pytest.raises(DeliveryError) as info:
        run(send_once(secret_url(receiver), make_hit()))
    assert str(info.value) == f"HTTP {status}"
    assert info.value.retry_after == 2
    assert "s3cr3t" not in repr(info.value) and "127.0.0.1" not in str(info.value)


def test_retry_after_only_for_429_and_503(receiver: Receiver) -> None:
    receiver.statuses = [500]
    receiver.extra_headers = {"Retry-After": "2"}
    with pytest.raises(DeliveryError) as info:
        run(send_once(receiver.url, make_hit()))
    assert info.value.retry_after is None


@pytest.fixture
def answering() -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """A loopback endpoint answering scripted (status, body) pairs, like Slack's text errors."""
    script: list[tuple[int, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, body = script.pop(0) if script else (200, b"ok")
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/services/T1/B1/zz9SecretPart", script
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(("status", "body", "expected"), [
    (404, b"no_service", "HTTP 404: no_service"),
    (400, b"invalid_payload\n", "HTTP 400: invalid_payload"),
    (403, b"action_prohibited", "HTTP 403: action_prohibited"),
    (400, b"<html><body>Bad request to <b>hooks</b></body></html>", "HTTP 400"),
    (404, b"no such hook: zz9SecretPart", "HTTP 404"),
    (404, b"zz9SecretPart", "HTTP 404"),
    (400, b"x" * 500, "HTTP 400"),
])
def test_slack_error_body(answering: tuple[str, list[tuple[int, bytes]]], status: int, body: bytes,
                          expected: str) -> None:
    url, script = answering
    script.append((status, body))
    with pytest.raises(DeliveryError) as info:
        run(send_once(url, make_hit()))
    assert str(info.value) == expected
    assert "zz9SecretPart" not in str(info.value)


def test_ok_body_is_success(answering: tuple[str, list[tuple[int, bytes]]]) -> None:
    url, _ = answering
    run(send_once(url, make_hit()))


def test_connection_error_hides_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T1/B1/zz9SecretPart"
    with pytest.raises(DeliveryError) as info:
        run(send_once(url, make_hit()))
    assert "zz9SecretPart" not in str(info.value) and str(port) not in str(info.value)
    assert str(info.value) == "ConnectError"


def test_timeout_raises() -> None:
    with socket.socket() as sock:   # accepts (via the backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/services/T1/B1/zz9SecretPart"
        with pytest.raises(DeliveryError) as info:
            run(send_once(url, make_hit(), timeout=0.3))
    assert str(info.value) == "timed out"


@pytest.mark.parametrize("url", ["ftp://hooks.example/zz9SecretPart", "zz9SecretPart", "http://"])
def test_bad_webhook_url_rejected_without_echo(url: str) -> None:
    with pytest.raises(ValueError) as info:
        SlackChannel("slack", webhook_url=url, timeout=1)
    assert "zz9SecretPart" not in str(info.value)


def test_accepts_config_url(receiver: Receiver) -> None:
    from pydantic import HttpUrl

    run(send_once(HttpUrl(receiver.url), make_hit()))  # type: ignore[arg-type]
    assert len(receiver.wait_for(1)) == 1


def test_rule_names_escaped_in_mrkdwn_not_in_headers() -> None:
    message = build_message(make_hit(rule_name="R&D <budget>"))
    check_message(message)
    assert message["blocks"][0]["text"]["text"] == "R&D <budget>"   # plain_text: shown as is
    assert message["text"].startswith("R&amp;D &lt;budget&gt;: ")
    digest = build_message(make_digest([make_hit(1, rule_name="R&D <budget>")]))
    assert "*R&amp;D &lt;budget&gt;* · 1 hit\n" in digest["blocks"][2]["text"]["text"]
