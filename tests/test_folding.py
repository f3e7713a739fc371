"""Digests, throttles and priority, driven by a controllable clock (no sleeping for hours)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from monitor.config import DigestSettings, load_settings
from monitor.demo.server import FeedServer
from monitor.notify.policy import digest_boundary, initial_status, window_start
from monitor.service.daemon import Daemon
from monitor.store import queries
from tests.conftest import Receiver, WriteConfig, rss

START = datetime(2026, 1, 1, 10, 15, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def items(clock: Clock) -> list[dict[str, str]]:
    when = format_datetime(clock.now - timedelta(minutes=5), usegmt=True)
    out = [{"guid": f"k{i}", "title": f"Karabakh report {i}", "description": "x", "pubDate": when}
           for i in range(5)]
    out.append({"guid": "b1", "title": "Baku summit opens", "description": "y", "pubDate": when})
    out += [{"guid": f"t{i}", "title": f"Tbilisi metro line {i}", "description": "z",
             "pubDate": when} for i in range(2)]
    return out


def test_throttle_summary_digest_and_high_priority(tmp_path: Path, receiver: Receiver,
                                                   write_config: WriteConfig) -> None:
    clock = Clock(START)
    with FeedServer({"/f.xml": rss(items(clock))}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'f.db'}",
            "poll": {"allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/f.xml")}],
            "channels": {
                "now": {"type": "webhook", "url": receiver.url},
                "daily": {"type": "webhook", "url": receiver.url + "?digest",
                          "digest": {"every": "1h"}},
            },
            "defaults": {"notify": ["now"]},
        }, {"rules": [
            {"id": "karabakh", "query": "karabakh", "throttle": "2/h", "notify": ["now"]},
            {"id": "baku", "query": "baku", "priority": "high", "notify": ["daily"]},
            {"id": "tbilisi", "query": "tbilisi", "notify": ["daily"]},
        ]})
        daemon = Daemon(load_settings(config), console=io.StringIO(), clock=clock)

        async def cycle() -> int:
            await daemon.poll_all_once()
            made = await daemon.folder.run_once()
            while await daemon.dispatcher.run_once():
                pass
            return made

        async def scenario() -> None:
            await daemon.start()
            try:
                assert await cycle() == 0
                kinds = sorted((c.json()["type"], c.json()["rule"]["id"]) for c in receiver.calls)
                assert kinds == [("hit", "baku"), ("hit", "karabakh"), ("hit", "karabakh")], \
                    "two karabakh alerts within the throttle, baku (high) bypasses the digest"

                clock.now += timedelta(minutes=30)   # the hour is not over: nothing folds
                assert await cycle() == 0 and len(receiver.calls) == 3

                clock.now += timedelta(minutes=30)
                assert await cycle() == 2
                assert len(receiver.calls) == 5
                by_type = {c.json()["type"]: c.json() for c in receiver.calls[3:]}
                summary = by_type["throttle"]
                assert summary["rule"]["id"] == "karabakh" and summary["count"] == 3
                assert {h["article"]["title"] for h in summary["hits"]} == {
                    f"Karabakh report {i}" for i in range(5)} - {
                    c.json()["article"]["title"] for c in receiver.calls[:3]
                    if c.json()["rule"]["id"] == "karabakh"}
                digest = by_type["digest"]
                assert digest["channel"] == "daily"
                assert sorted(h["article"]["title"] for h in digest["hits"]) == [
                    "Tbilisi metro line 0", "Tbilisi metro line 1"]
                assert digest["period"]["end"] == "2026-01-01T11:00:00Z"

                clock.now += timedelta(hours=3)    # nothing is folded or sent twice
                assert await cycle() == 0 and len(receiver.calls) == 5
            finally:
                await daemon.close()

        asyncio.run(scenario())
    statuses = sorted(d.status for d, _ in daemon.db.call(queries.list_deliveries, limit=100))
    assert statuses.count("folded") == 5 and statuses.count("sent") == 5


def test_digest_boundary_follows_local_time() -> None:
    daily = DigestSettings(every=timedelta(days=1), at="08:00", timezone="Europe/Istanbul")
    # 09:00 in Istanbul (UTC+3): the last period ended at 08:00 local = 05:00 UTC today.
    assert digest_boundary(datetime(2026, 3, 10, 6, 0, tzinfo=UTC), daily) == \
        datetime(2026, 3, 10, 5, 0, tzinfo=UTC)
    # 07:59 local: still yesterday's boundary.
    assert digest_boundary(datetime(2026, 3, 10, 4, 59, tzinfo=UTC), daily) == \
        datetime(2026, 3, 9, 5, 0, tzinfo=UTC)
    berlin = DigestSettings(every=timedelta(days=1), at="08:00", timezone="Europe/Berlin")
    # Across the spring DST change the period still ends at 08:00 local (06:00 UTC after it).
    assert digest_boundary(datetime(2026, 3, 30, 7, 0, tzinfo=UTC), berlin) == \
        datetime(2026, 3, 30, 6, 0, tzinfo=UTC)


def test_windows_and_initial_status() -> None:
    hour = timedelta(hours=1)
    assert window_start(datetime(2026, 1, 1, 10, 59, tzinfo=UTC), hour) == \
        datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert initial_status(throttled=False, digest=False, priority="normal") == "pending"
    assert initial_status(throttled=False, digest=True, priority="normal") == "held"
    assert initial_status(throttled=False, digest=True, priority="high") == "pending"
    assert initial_status(throttled=True, digest=False, priority="high") == "throttled"
