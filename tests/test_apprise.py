"""The Apprise channel through Apprise's own json:// service to a loopback receiver."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.match import Evidence, RuleHit
from monitor.notify.apprise import AppriseChannel
from monitor.notify.base import DeliveryError
from monitor.notify.payload import digest_payload, hit_payload, throttle_payload
from monitor.notify.render import render
from tests.conftest import Receiver

T0 = datetime(2024, 6, 10, 9, 0, tzinfo=UTC)
TOKEN = "tk9Q2mZr7vLx4Wp8"


def make_hit(n: int, *, priority: str = "normal", rule_id: str = "harbours",
             rule_name: str = "Harbours") -> dict[str, Any]:
    hit = RuleHit(rule_id, (Evidence("harbour", "harbour", "title", 4, 11),),
                  f"…the old «harbour» reopens, report {n}…", 1.0)
    return hit_payload(
        alert_id=f"apprise-alert-{n}", rule_id=rule_id, rule_name=rule_name, priority=priority,
        article_id=n, title=f"The harbour & the <quay> {n}", url=f"https://port.example.test/{n}",
        feed_id="coastline", feed_name="Coastline Daily", published_at=T0, author=None,
        summary="Boats return.", hit=hit, entities={}, detected_at=T0 + timedelta(minutes=3))


def send(channel: AppriseChannel, payload: dict[str, Any]) -> None:
    async def run() -> None:
        try:
            await channel.send(payload)
        finally:
            await channel.aclose()

    asyncio.run(run())


def json_url(receiver: Receiver, query: str = "") -> str:
    return f"json://127.0.0.1:{receiver.port}/hook{query}"


def test_hit_arrives_with_rendered_title_and_body(receiver: Receiver) -> None:
    payload = make_hit(1, priority="high")
    send(AppriseChannel("phones", url=json_url(receiver)), payload)
    call = receiver.wait_for(1)[0]
    assert call.path == "/hook"
    body = call.json()
    rendered = render(payload)
    assert body["title"] == rendered.title
    assert body["message"] == rendered.body
    assert "The harbour & the <quay> 1" in body["message"]   # plain text: not HTML-escaped
    assert body["type"] == "warning"                          # high priority


def test_digest_and_throttle_use_the_shared_rendering(receiver: Receiver) -> None:
    hits = [make_hit(2), make_hit(3, rule_id="ferries", rule_name="Ferries"), make_hit(4)]
    digest = digest_payload(alert_id="d-1", channel="phones", start=T0, end=T0 + timedelta(days=1),
                            hits=hits)
    throttle = throttle_payload(alert_id="t-1", rule={"id": "harbours", "name": "Harbours"},
                                start=T0, end=T0 + timedelta(hours=1), hits=hits[:2])
    channel = AppriseChannel("phones", url=json_url(receiver))
    send(channel, digest)
    channel = AppriseChannel("phones", url=json_url(receiver))
    send(channel, throttle)
    first, second = (call.json() for call in receiver.wait_for(2))
    assert (first["title"], first["message"]) == (render(digest).title, render(digest).body)
    assert first["title"] == "Digest: 3 hits for 2 rules"
    assert first["message"].index("== Harbours (2) ==") < first["message"].index("== Ferries (1) ==")
    assert (second["title"], second["message"]) == (render(throttle).title, render(throttle).body)
    assert first["type"] == second["type"] == "info"


def test_health_problem_sets_the_notification_type(receiver: Receiver) -> None:
    health = {"type": "health", "version": 1, "id": "h-1",
              "feed": {"id": "coastline", "name": "Coastline Daily", "url": "https://c.example/rss"},
              "problem": "failing", "since": "2024-06-10T09:00:00Z", "last_error": "HTTP 502"}
    send(AppriseChannel("phones", url=json_url(receiver)), health)
    send(AppriseChannel("phones", url=json_url(receiver)), {**health, "problem": "recovered"})
    failing, recovered = (call.json() for call in receiver.wait_for(2))
    assert failing["title"] == "Feed coastline: failing" and failing["type"] == "failure"
    assert recovered["title"] == "Feed coastline: recovered" and recovered["type"] == "success"


def test_server_error_is_a_delivery_error_without_the_token(receiver: Receiver) -> None:
    receiver.statuses = [500]   # then 200: Apprise must not retry by itself (the outbox does)
    url = json_url(receiver, f"?token={TOKEN}")
    with pytest.raises(DeliveryError) as caught:
        send(AppriseChannel("phones", url=url), make_hit(5))
    assert len(receiver.calls) == 1
    assert TOKEN not in str(caught.value) and str(receiver.port) not in str(caught.value)
    assert "Apprise JSON" in str(caught.value)


def test_unreachable_service_is_a_delivery_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DeliveryError, match="failure") as caught:
        send(AppriseChannel("phones", url=f"json://127.0.0.1:{port}/{TOKEN}"), make_hit(6))
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(("url", "secret"), [
    (f"tgram://{TOKEN}/not-a-chat", TOKEN),          # a Telegram URL with a malformed bot token
    (f"discord://{TOKEN}", TOKEN),                   # a Discord URL missing its webhook token
    # Apprise itself masks token-like parts, but logs these two verbatim:
    ("nosuchservice://relay/harbourkey", "harbourkey"),   # unknown scheme, short plain token
    ("tgram:/lighthousekeeper/12345", "lighthousekeeper"),  # "://" mistyped
    ("", ""),
])
def test_invalid_url_is_a_value_error_without_the_token(url: str, secret: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="apprise")
    with pytest.raises(ValueError, match="not a valid Apprise URL") as caught:
        AppriseChannel("phones", url=url)
    if secret:
        assert secret not in str(caught.value)
        assert caplog.records, "Apprise said why"
        assert secret not in caplog.text   # masked in Apprise's own log records too


def test_timeout_must_be_positive(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="timeout"):
        AppriseChannel("phones", url=json_url(receiver), timeout=0)
