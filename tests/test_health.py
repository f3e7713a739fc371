"""Feed health: one alert per incident (failing, silent) and one when it ends."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from tests.conftest import Receiver, WriteConfig, rss


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_failing_and_silent_incidents(tmp_path: Path, receiver: Receiver,
                                      write_config: WriteConfig) -> None:
    clock = Clock()
    with FeedServer({"/ok.xml": rss([{"guid": "1", "title": "One", "description": "x"}])}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'h.db'}",
            "poll": {"allow_private_networks": True},
            "feeds": [{"id": "broken", "url": server.url("/broken.xml")},
                      {"id": "quiet", "url": server.url("/ok.xml")}],
            "channels": {"ops": {"type": "webhook", "url": receiver.url},
                         "console": {"type": "console"}},
            "health": {"notify": ["ops"], "failing_for": "1h", "silent_for": "2d"},
        }, {"rules": []})
        daemon = Daemon(load_settings(config), console=io.StringIO(), clock=clock)

        async def cycle(advance: timedelta) -> list[tuple[str, str]]:
            clock.now += advance
            await daemon.poll_all_once()
            await daemon.health_tick()
            before = len(receiver.calls)
            while await daemon.dispatcher.run_once():
                pass
            return [(c.json()["feed"]["id"], c.json()["problem"]) for c in receiver.calls[before:]]

        async def scenario() -> None:
            await daemon.start()
            try:
                assert await cycle(timedelta(0)) == []
                assert await cycle(timedelta(minutes=30)) == [], "failing, but not for 1h yet"
                assert await cycle(timedelta(minutes=31)) == [("broken", "failing")]
                assert await cycle(timedelta(hours=5)) == [], "one alert per incident"
                server.set("/broken.xml", rss([{"guid": "2", "title": "Two", "description": "y"}]))
                assert await cycle(timedelta(minutes=1)) == [("broken", "recovered")]
                # quiet has had no new entry since its first poll; broken since its recovery
                assert sorted(await cycle(timedelta(days=2))) == [("broken", "silent"),
                                                                   ("quiet", "silent")]
                server.set("/ok.xml", rss([{"guid": "3", "title": "Three", "description": "z"}]))
                assert await cycle(timedelta(minutes=1)) == [("quiet", "recovered")]
            finally:
                await daemon.close()

        asyncio.run(scenario())
    failing = receiver.calls[0].json()
    assert failing["type"] == "health" and failing["last_error"] == "HTTP 404 Not Found"
    assert failing["since"] == "2026-05-01T09:00:00Z"
