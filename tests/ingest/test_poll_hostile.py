"""Hostile feeds through the whole daemon: a real SQLite file, loopback servers, one cycle.

The daemon does not pass ``poll.allow_private_networks`` to its Fetcher yet, so these tests
swap in a Fetcher that allows exactly 127.0.0.1/32 (``use_fetcher``).
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from monitor.config import load_settings
from monitor.ingest.fetch import Fetcher
from monitor.service.daemon import Daemon
from monitor.service.poller import FeedPolicy, PollResult, poll_delay
from monitor.store import queries
from monitor.store.models import Article, Feed, Hit
from tests.conftest import WriteConfig, rss
from tests.ingest.hostile import (
    HostileServer,
    brotli_bomb,
    endless,
    gzip_bomb,
    redirect,
    slow_drip,
    static,
)

RULES = {"rules": [{"id": "baku", "query": "Baku"}]}
LOOPBACK_ONLY = [ipaddress.ip_network("127.0.0.1/32")]
T = TypeVar("T")

TURKISH = "Türkiye'de ğüşıöç İstanbul Şişli"
BILLION_LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE rss [ <!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">'
                            for i in range(1, 10))
                  + ' ]>\n<rss version="2.0"><channel><title>Laughs</title><link>http://x/</link>'
                  '<item><guid>lol</guid><title>&lol9;</title><description>&lol9;</description>'
                  "</item></channel></rss>").encode()


def turkish_feed(declared: str) -> bytes:
    return (f'<?xml version="1.0" encoding="{declared}"?><rss version="2.0"><channel>'
            f"<title>Haber</title><language>tr</language><item><guid>tr-{declared}</guid>"
            f"<title>{TURKISH}</title><description>{TURKISH}</description></item>"
            "</channel></rss>").encode("windows-1254")


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


def make_daemon(write_config: WriteConfig, tmp_path: Path, feeds: dict[str, str],
                **poll: Any) -> Daemon:
    config = write_config({
        "database": f"sqlite:///{tmp_path / 'pressmon.db'}",
        "poll": {"interval": "10m", "max_interval": "6h", "timeout": "3s", "max_body": "1MiB",
                 **poll},
        "feeds": [{"id": fid, "url": url} for fid, url in feeds.items()],
        "channels": {"console": {"type": "console"}},
    }, RULES)
    return Daemon(load_settings(config), console=io.StringIO())


async def use_fetcher(daemon: Daemon, allow_private: Any = LOOPBACK_ONLY) -> None:
    """Replace the daemon's Fetcher with one that allows only ``allow_private``."""
    poll = daemon.settings.poll
    old = daemon.fetcher
    daemon.fetcher = Fetcher(timeout=poll.timeout, max_body=poll.max_body,
                             concurrency=poll.concurrency, per_host=poll.per_host,
                             allow_private=allow_private)
    daemon.poller._fetcher = daemon.fetcher
    await old.aclose()


def with_daemon(daemon: Daemon, body: Callable[[], Awaitable[T]]) -> T:
    async def go() -> T:
        await use_fetcher(daemon)
        await daemon.start()
        try:
            return await body()
        finally:
            await daemon.close()
    return asyncio.run(go())


def rows(daemon: Daemon) -> dict[str, Feed]:
    with daemon.db.session() as s:
        return {f.id: f for f in s.scalars(select(Feed))}


def near(when: datetime | None, expected: datetime, slack: float = 120) -> bool:
    assert when is not None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return abs((when - expected).total_seconds()) <= slack


def test_one_cycle_of_hostile_feeds_and_one_good_feed(server: HostileServer, tmp_path: Path,
                                                      write_config: WriteConfig) -> None:
    with HostileServer(host="127.0.0.2") as inside:
        secret = inside.route("/internal.xml", static(rss([{"guid": "x", "title": "Baku"}])))
        server.route("/loop-a", redirect("/loop-b", 302))
        for i in range(7):
            server.route(f"/hop{i}", redirect(f"/hop{i + 1}", 301))
        feeds = {
            "good": server.route("/good.xml", static(rss([
                {"guid": "g1", "title": "Baku port expands", "description": "More cranes."},
                {"guid": "g2", "title": "Tbilisi metro", "description": "New trains."}]))),
            "gzip-bomb": gzip_bomb(server, "/gzip-bomb"),
            "brotli-bomb": brotli_bomb(server, "/brotli-bomb"),
            "huge-declared": endless(server, "/huge", chunked=False, declared=2 << 30),
            "huge-undeclared": endless(server, "/until-close", chunked=False),
            "endless-chunked": endless(server, "/chunked", chunked=True),
            "slow-drip": slow_drip(server, "/drip", every=0.2),
            "redirect-loop": server.route("/loop-b", redirect("/loop-a", 301)),
            "too-many-redirects": server.url("/hop0"),
            "to-private": server.route("/escape", redirect(secret, 302)),
            "gone": server.route("/gone", static(b"", 410)),
            "rate-limited": server.route("/busy", static(b"", 429, Retry_After="7200")),
            "invalid-xml": server.route("/broken", static(
                b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title')),
            "html": server.route("/page", static(
                b"<!DOCTYPE html><html><head><title>Home</title></head><body>hi</body></html>",
                Content_Type="text/html; charset=utf-8")),
            "laughs": server.route("/laughs", static(BILLION_LAUGHS)),
            "tr-declared": server.route("/tr-1254", static(
                turkish_feed("windows-1254"), Content_Type="application/rss+xml")),
            "tr-mislabelled": server.route("/tr-utf8", static(
                turkish_feed("utf-8"), Content_Type="application/rss+xml; charset=utf-8")),
        }
        daemon = make_daemon(write_config, tmp_path, feeds)
        started = time.monotonic()
        results: list[PollResult] = with_daemon(daemon, daemon.poll_all_once)
        elapsed = time.monotonic() - started
        assert inside.hits["/internal.xml"] == 0
    now = datetime.now(UTC)
    by_id = {r.feed_id: r for r in results}
    assert set(by_id) == set(feeds), "every poll finished without raising"
    assert elapsed < 12, f"one cycle took {elapsed:.1f}s"

    good = by_id["good"]
    assert (good.status, good.new_articles, good.hits, good.alerts) == ("ok", 2, 1, 1)
    with daemon.db.session() as s:
        hit_titles = list(s.scalars(select(Article.title).join(Hit, Hit.article_id == Article.id)))
        stored = dict(s.execute(select(Article.feed_id, Article.title)).all())
    assert hit_titles == ["Baku port expands"]

    expected = {
        "gzip-bomb": ("error", "decoded gzip body exceeds max_body 1MiB"),
        "brotli-bomb": ("error", "decoded br body exceeds max_body 1MiB"),
        "huge-declared": ("error", "body of 2GiB exceeds max_body 1MiB"),
        "huge-undeclared": ("error", "body exceeds max_body 1MiB"),
        "endless-chunked": ("error", "body exceeds max_body 1MiB"),
        "slow-drip": ("error", "timed out after 3s"),
        "redirect-loop": ("error", "redirect loop: "),
        "too-many-redirects": ("error", "more than 5 redirects"),
        "to-private": ("error", "refused: 127.0.0.2 is a loopback address "
                                "(set poll.allow_private_networks to allow)"),
        "gone": ("gone", "HTTP 410 Gone"),
        "rate-limited": ("error", "HTTP 429 Too Many Requests"),
        "invalid-xml": ("error", "not a readable feed"),
        "html": ("error", "got an HTML page, not a feed"),
    }
    table = rows(daemon)
    for feed_id, (status, error) in expected.items():
        row = table[feed_id]
        assert by_id[feed_id].status == status, (feed_id, by_id[feed_id])
        assert (row.status, row.consecutive_failures, row.active) == (status, 1, True), feed_id
        assert row.last_error is not None and error in row.last_error, (feed_id, row.last_error)
        assert row.last_success_at is None and row.next_poll_at is not None
        assert near(row.next_poll_at, now + timedelta(minutes=10), slack=6 * 3600), feed_id
    # 410: polled again slowly, at max_interval; 429: when Retry-After says.
    assert near(table["gone"].next_poll_at, now + timedelta(hours=6))
    assert near(table["rate-limited"].next_poll_at, now + timedelta(hours=2))

    # feedparser does not expand the entities: the feed is read, its entry kept as written.
    assert by_id["laughs"].status == "ok" and len(stored["laughs"]) < 100
    # A declared windows-1254 feed reads right, and so does one mislabelled as UTF-8.
    assert stored["tr-declared"] == TURKISH
    assert by_id["tr-mislabelled"].status == "ok" and stored["tr-mislabelled"] == TURKISH
    for feed_id in ("good", "laughs", "tr-declared", "tr-mislabelled"):
        row = table[feed_id]
        assert row.status == "ok" and row.last_error is None and row.last_success_at is not None
        assert near(row.next_poll_at, now + timedelta(minutes=10))


def test_permanent_redirects_move_the_feed_and_a_302_does_not(
        server: HostileServer, tmp_path: Path, write_config: WriteConfig) -> None:
    document = rss([{"guid": "a", "title": "Baku", "description": "x"}])
    server.route("/feed.xml", static(document))
    server.route("/p2", redirect("/feed.xml", 308))
    server.route("/t2", redirect("/feed.xml", 302))
    feeds = {"moved": server.route("/p1", redirect(server.url("/p2"), 301)),
             "kept": server.route("/t1", redirect("/t2", 301))}
    daemon = make_daemon(write_config, tmp_path, feeds)
    configured = [(fid, url, None) for fid, url in feeds.items()]

    async def cycle() -> list[list[PollResult]]:
        first = await daemon.poll_all_once()
        # The config is read again unchanged (a reload): the effective URL stays.
        await daemon.db.run(queries.sync_feeds, configured, datetime.now(UTC))
        second = await daemon.poll_all_once()
        return [first, second]

    first, second = with_daemon(daemon, cycle)
    assert {r.status for r in first} == {"ok"}
    table = rows(daemon)
    assert (table["moved"].url, table["moved"].config_url) == (server.url("/feed.xml"),
                                                               feeds["moved"])
    assert (table["kept"].url, table["kept"].config_url) == (feeds["kept"], feeds["kept"])
    assert server.hits["/p1"] == 1 and server.hits["/t1"] == 2   # the moved feed went direct
    assert {r.status for r in second} == {"unchanged"}

    # A new URL in the config wins over the one a redirect taught us.
    daemon.db.call(queries.sync_feeds, [("moved", server.url("/other.xml"), None),
                                        ("kept", feeds["kept"], None)], datetime.now(UTC))
    table = rows(daemon)
    assert table["moved"].url == table["moved"].config_url == server.url("/other.xml")
    assert table["moved"].etag is None and table["moved"].body_hash is None


def test_rows_without_config_url_get_it_without_losing_the_url(tmp_path: Path,
                                                               write_config: WriteConfig) -> None:
    daemon = make_daemon(write_config, tmp_path, {"f": "http://feeds.example/rss"})
    now = datetime.now(UTC)

    async def go() -> None:
        await daemon.start()
        await daemon.close()

    asyncio.run(go())
    with daemon.db.session() as s:
        row = s.get(Feed, "f")
        assert row is not None and row.config_url == "http://feeds.example/rss"
        row.config_url, row.etag = None, '"v1"'       # as a row from before migration 0003
    daemon.db.call(queries.sync_feeds, [("f", "http://feeds.example/rss", None)], now)
    row = rows(daemon)["f"]
    assert (row.url, row.config_url, row.etag) == ("http://feeds.example/rss",
                                                   "http://feeds.example/rss", '"v1"')


def test_cache_control_raises_the_next_poll_up_to_max_interval(
        server: HostileServer, tmp_path: Path, write_config: WriteConfig) -> None:
    body = rss([{"guid": "a", "title": "t", "description": "x"}])
    feeds = {"hour": server.route("/hour", static(body, Cache_Control="max-age=3600")),
             "year": server.route("/year", static(body, Cache_Control="max-age=31536000")),
             "short": server.route("/short", static(body, Cache_Control="max-age=60"))}
    daemon = make_daemon(write_config, tmp_path, feeds)
    with_daemon(daemon, daemon.poll_all_once)
    now = datetime.now(UTC)
    table = rows(daemon)
    assert near(table["hour"].next_poll_at, now + timedelta(hours=1))
    assert near(table["year"].next_poll_at, now + timedelta(hours=6))
    assert near(table["short"].next_poll_at, now + timedelta(minutes=10))
    policy = FeedPolicy(timedelta(minutes=10), timedelta(hours=6), timedelta(days=2))
    assert poll_delay(policy, None, ttl=timedelta(hours=2)) == timedelta(hours=2)


def test_gone_feed_keeps_being_polled_slowly(server: HostileServer, tmp_path: Path,
                                             write_config: WriteConfig) -> None:
    daemon = make_daemon(write_config, tmp_path, {"gone": server.route("/gone",
                                                                      static(b"", 410))})

    async def twice() -> list[PollResult]:
        await daemon.poll_all_once()
        return await daemon.poll_all_once()    # poll_all_once polls every active feed

    (result,) = with_daemon(daemon, twice)
    row = rows(daemon)["gone"]
    assert result.status == "gone" and row.status == "gone" and row.active
    assert row.consecutive_failures == 2 and server.hits["/gone"] == 2
    assert near(row.next_poll_at, datetime.now(UTC) + timedelta(hours=6))


def test_ten_thousand_entries_are_stored_in_bounded_time(
        server: HostileServer, tmp_path: Path, write_config: WriteConfig) -> None:
    items = [{"guid": f"g{i}", "title": f"Story {i}" + (" from Baku" if i % 1000 == 0 else ""),
              "description": f"Text of story {i}."} for i in range(10_000)]
    daemon = make_daemon(write_config, tmp_path, {"big": server.route("/big", static(rss(items)))},
                         max_body="15MiB", timeout="10s")
    started = time.monotonic()
    (result,) = with_daemon(daemon, daemon.poll_all_once)
    elapsed = time.monotonic() - started
    assert (result.status, result.entries, result.new_articles, result.hits) == (
        "ok", 10_000, 10_000, 10)
    with daemon.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 10_000
    # ~7 s on an idle 2-core machine; the bound leaves room for a busy one.
    assert elapsed < 30, f"10,000 entries took {elapsed:.1f}s"
