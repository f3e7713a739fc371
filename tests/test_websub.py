"""WebSub end to end: a loopback hub we write, subscription with intent verification,
signed pushes, lease state, and the polling fallback catching what push missed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from monitor.service.http import HttpServer
from monitor.store.models import Feed
from tests.conftest import Receiver, WriteConfig, free_port


class Hub:
    """A minimal WebSub hub: takes subscriptions, verifies intent, publishes signed content."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, str]] = {}
        self.verified = threading.Event()
        self.challenge_answer: str | None = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                hub.subscriptions[form["hub.topic"]] = form
                threading.Thread(target=hub._verify, args=(form,), daemon=True).start()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hub"

    def _verify(self, form: dict[str, str]) -> None:
        query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.topic": form["hub.topic"],
                                        "hub.challenge": "c-12345", "hub.lease_seconds": "3600"})
        with urllib.request.urlopen(f"{form['hub.callback']}?{query}", timeout=5) as response:
            self.challenge_answer = response.read().decode()
        self.verified.set()

    def publish(self, topic: str, body: bytes, *, secret: str | None = None) -> int:
        form = self.subscriptions[topic]
        key = (secret or form["hub.secret"]).encode()
        request = urllib.request.Request(form["hub.callback"], data=body, method="POST", headers={
            "Content-Type": "application/rss+xml",
            "X-Hub-Signature": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()})
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def feed_xml(hub: str, self_url: str, titles: list[str]) -> bytes:
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    items = "".join(f"<item><guid>{t}</guid><title>{t}</title><description>x</description>"
                    f"<pubDate>{when}</pubDate></item>" for t in titles)
    return (f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f'<channel><title>Pushy</title><link>http://pushy.test/</link><language>en</language>'
            f'<atom:link rel="hub" href="{hub}"/><atom:link rel="self" href="{self_url}"/>'
            f"{items}</channel></rss>").encode()


def test_websub_subscribe_verify_push_and_fallback(tmp_path: Path, receiver: Receiver,
                                                   write_config: WriteConfig) -> None:
    hub = Hub()
    port = free_port()
    titles = ["Karabakh roads reopen"]
    with FeedServer() as server:
        topic = server.url("/f.xml")
        server.set("/f.xml", lambda: feed_xml(hub.url, topic, titles))
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'w.db'}",
            "poll": {"allow_private_networks": True},
            "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
            "feeds": [{"id": "pushy", "url": topic}],
            "channels": {"hook": {"type": "webhook", "url": receiver.url}},
            "defaults": {"notify": ["hook"]},
        }, {"rules": [{"id": "karabakh", "query": "karabakh"}]})
        daemon = Daemon(load_settings(config), console=io.StringIO())

        def feed_row() -> Feed:
            with daemon.db.session() as s:
                row = s.get(Feed, "pushy")
                assert row is not None
                return row

        async def scenario() -> dict[str, Any]:
            await daemon.start()
            assert daemon.websub is not None
            daemon.http = HttpServer(f"127.0.0.1:{port}", ready=daemon.readiness,
                                     metrics=daemon.metrics.render, websub=daemon.websub)
            assert await daemon.http.start()
            try:
                await daemon.poll_all_once()
                assert feed_row().hub_url == hub.url
                await daemon.websub.maintain()
                assert await asyncio.to_thread(hub.verified.wait, 10)
                assert hub.challenge_answer == "c-12345"
                row = feed_row()
                assert row.websub_state == "active" and row.websub_lease_until is not None

                # A signed push with a new item: alerted within a second of the notification.
                first_alerts = len(receiver.calls)
                sent = time.monotonic()
                body = feed_xml(hub.url, topic, [*titles, "Karabakh bridge opens"])
                assert await asyncio.to_thread(hub.publish, topic, body) == 202
                deadline = time.monotonic() + 5
                while len(receiver.calls) == first_alerts and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                latency = receiver.calls[-1].at - sent
                pushed = receiver.calls[-1].json()

                # A forged push is ignored.
                forged = feed_xml(hub.url, topic, ["Karabakh forged story"])
                assert await asyncio.to_thread(hub.publish, topic, forged, secret="wrong") == 202
                await asyncio.sleep(0.5)
                forged_alerts = [c for c in receiver.calls
                                 if c.json()["article"]["title"] == "Karabakh forged story"]

                # Polling finds an item push never brought: push is no longer trusted.
                titles.extend(["Karabakh bridge opens", "Karabakh tunnel survey"])
                await daemon.poll_all_once()
                return {"latency": latency, "pushed": pushed, "forged": forged_alerts,
                        "unreliable": feed_row().push_unreliable}
            finally:
                await daemon.close()

        try:
            result = asyncio.run(scenario())
        finally:
            hub.stop()
    assert result["pushed"]["article"]["title"] == "Karabakh bridge opens"
    assert result["latency"] < 1.0, f"push to webhook took {result['latency']:.2f}s"
    assert result["forged"] == []
    assert result["unreliable"] is True


def test_subscriptions_are_renewed_before_the_lease_ends(tmp_path: Path) -> None:
    from monitor.ingest import websub
    from monitor.store import queries
    from monitor.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'l.db'}")
    db.upgrade()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    db.call(queries.sync_feeds, [("a", "http://a.test/f", None), ("b", "http://b.test/f", None)],
            now)
    db.call(queries.record_hub, "a", "http://hub.test/", "http://a.test/f")
    db.call(queries.record_hub, "b", "http://hub.test/", "http://b.test/f")
    db.call(websub._set_state, "a", "active", now + timedelta(hours=5))
    db.call(websub._set_state, "b", "failed", now + timedelta(minutes=10))
    assert db.call(websub._due, now) == [], "active with a long lease; failed, waiting to retry"
    later = now + timedelta(hours=4, minutes=1)
    assert [f for f, _, _ in db.call(websub._due, later)] == ["a", "b"]
    db.dispose()
