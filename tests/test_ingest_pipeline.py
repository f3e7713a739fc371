"""What a poll means beyond one feed: stories across outlets, updated entries, full text,
language, adaptive intervals — each against loopback servers and a real SQLite file."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from monitor.service.poller import FeedPolicy, adaptive_interval, publishing_rate
from monitor.store.models import Alert, Article, Feed
from tests.conftest import Receiver, WriteConfig, rss

WHEN = format_datetime(datetime.now(UTC) - timedelta(minutes=10), usegmt=True)
WIRE = ("Azerbaijan and Armenia agreed on Tuesday to reopen two border crossings for "
        "freight, officials in both capitals said after a day of talks mediated in Tbilisi. "
        "Trucks carrying grain and construction materials will be the first to use the "
        "crossings, which have been closed for more than three decades, according to a "
        "joint statement read out by the mediators late in the evening.")


def item(guid: str, title: str, description: str, link: str | None = None) -> dict[str, str]:
    return {"guid": guid, "title": title, "description": description,
            "link": link or f"http://news.test/{guid}", "pubDate": WHEN}


def run_daemon(write_config: WriteConfig, tmp_path: Path, feeds: list[dict[str, Any]],
               rules: list[dict[str, Any]], receiver: Receiver | None = None,
               rounds: int = 1, between: Any = None) -> Daemon:
    channels: dict[str, Any] = {"console": {"type": "console"}}
    if receiver is not None:
        channels["hook"] = {"type": "webhook", "url": receiver.url}
    config = write_config({
        "database": f"sqlite:///{tmp_path / 'p.db'}",
        "poll": {"allow_private_networks": True},
        "feeds": feeds, "channels": channels,
        "defaults": {"notify": ["hook" if receiver else "console"]},
    }, {"rules": rules})
    daemon = Daemon(load_settings(config), console=io.StringIO())

    async def go() -> None:
        await daemon.start()
        try:
            for i in range(rounds):
                await daemon.poll_all_once()
                while await daemon.dispatcher.run_once():
                    pass
                if between:
                    between(i)
        finally:
            await daemon.close()

    asyncio.run(go())
    return daemon


def test_a_syndicated_story_alerts_once_and_lists_its_copies(
        tmp_path: Path, write_config: WriteConfig, receiver: Receiver) -> None:
    wire = rss([item("w1", "Border crossings to reopen for freight", WIRE,
                     "https://wire.test/story/1")])
    # The same wire story, another headline, trimmed; and a copy of the first URL with
    # tracking parameters under a different guid in a third outlet.
    copy = rss([item("c1", "Two crossings on Armenia-Azerbaijan border to open",
                     WIRE.rsplit(" according", 1)[0] + ".", "https://copy.test/a/77")])
    tracked = rss([item("t1", "Freight crossings", "Short teaser only.",
                        "https://WIRE.test/story/1?utm_source=x&fbclid=abc#top")])
    other = rss([item("o1", "Border crossing queues grow in Georgia",
                      "Lorries waited for hours at the Georgian border on Monday as new "
                      "scanners slowed checks; drivers said the delays cost them a day.")])
    empty = rss([])
    # The wire story is out first; the copies appear in the next poll.
    with FeedServer({"/w": wire, "/c": empty, "/t": empty, "/o": other}) as server:
        def copies_appear(i: int) -> None:
            server.set("/c", copy)
            server.set("/t", tracked)

        daemon = run_daemon(write_config, tmp_path, [
            {"id": "wire", "url": server.url("/w")}, {"id": "copy", "url": server.url("/c")},
            {"id": "tracked", "url": server.url("/t")}, {"id": "other", "url": server.url("/o")},
        ], [{"id": "crossings", "query": "border OR crossings"}], receiver, rounds=2,
            between=copies_appear)
    with daemon.db.session() as s:
        stories = {a.feed_id: a.story_id for a in s.scalars(select(Article))}
        alerts = list(s.scalars(select(Alert)))
    assert stories["wire"] == stories["copy"] == stories["tracked"] != stories["other"]
    assert len(alerts) == 2, "one alert for the wire story, one for the unrelated one"
    assert [len(a.payload["story"]["also_in"]) for a in alerts] == [0, 0]
    assert len(receiver.calls) == 2


def test_updated_entry_updates_without_a_second_alert(
        tmp_path: Path, write_config: WriteConfig, receiver: Receiver) -> None:
    items = [item("u1", "Karabakh talks", "First version.")]
    with FeedServer({"/f": rss(items)}) as server:
        def edit(i: int) -> None:
            if i == 0:
                items[0] = item("u1", "Karabakh talks end with a deal", "Second version.")
                server.set("/f", rss(items))

        daemon = run_daemon(write_config, tmp_path, [{"id": "f", "url": server.url("/f")}],
                            [{"id": "karabakh", "query": "karabakh"}], receiver, rounds=2,
                            between=edit)
    with daemon.db.session() as s:
        (article,) = s.scalars(select(Article))
    assert article.title == "Karabakh talks end with a deal" and article.updated_at is not None
    assert len(receiver.calls) == 1


def test_fulltext_puts_the_page_text_into_the_body(tmp_path: Path,
                                                   write_config: WriteConfig) -> None:
    page = ("<html><head><title>Port news</title></head><body><nav>Home · World · Sport</nav>"
            "<article><h1>Port of Poti expands</h1>"
            "<p>The harbour authority opened a new container berth on Friday morning.</p>"
            "<p>Two cranes arrived from Constanța last month and were tested this week.</p>"
            "<p>Dock workers said the night shifts would start once the lights are fixed.</p>"
            "<p>Officials said the Black Sea grain corridor traffic justified the work.</p>"
            "<p>The next berth is planned for the spring, if the dredging goes well.</p>"
            "</article><footer>© Port News</footer></body></html>").encode()
    with FeedServer({"/f": b"", "/page": page, "/missing": b""}) as server:
        server.set("/f", rss([item("p1", "Port of Poti expands", "A teaser.",
                                   server.url("/page")),
                              item("p2", "Another story", "Its page is gone.",
                                   server.url("/nope"))]))
        daemon = run_daemon(write_config, tmp_path,
                            [{"id": "f", "url": server.url("/f"), "fulltext": True}],
                            [{"id": "grain", "query": '"grain corridor"'}])
    with daemon.db.session() as s:
        articles = {a.entry_key: a for a in s.scalars(select(Article))}
        hits = s.scalars(select(Alert)).all()
    assert "container berth" in articles["p1"].body and "Home · World" not in articles["p1"].body
    assert articles["p1"].fulltext_error is None
    assert articles["p2"].body == "" and "HTTP 404" in (articles["p2"].fulltext_error or "")
    assert len(hits) == 1, "the rule matched words only the page has"


def test_language_is_detected_when_the_feed_does_not_say(tmp_path: Path,
                                                        write_config: WriteConfig) -> None:
    body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
            b"<item><guid>tr1</guid><title>Cumhurba\xc5\x9fkan\xc4\xb1 Bak\xc3\xbc ziyaretini "
            b"tamamlad\xc4\xb1</title><description>Heyet yar\xc4\xb1n sabah Ankara'ya "
            b"d\xc3\xb6necek ve g\xc3\xb6r\xc3\xbc\xc5\x9fmeler gelecek hafta devam edecek."
            b"</description></item></channel></rss>")
    with FeedServer({"/f": body}) as server:
        daemon = run_daemon(write_config, tmp_path, [{"id": "f", "url": server.url("/f")}],
                            [{"id": "tr", "query": "baku", "languages": ["tr"]},
                             {"id": "en", "query": "baku", "languages": ["en"]}])
    with daemon.db.session() as s:
        (article,) = s.scalars(select(Article))
        rules = [a.rule_id for a in s.scalars(select(Alert))]
    assert article.lang == "tr" and rules == ["tr"]


def test_adaptive_interval_follows_the_publishing_rate() -> None:
    policy = FeedPolicy(interval=timedelta(minutes=10), max_interval=timedelta(hours=6),
                        max_article_age=timedelta(days=2), min_interval=timedelta(minutes=2))
    assert adaptive_interval(policy, None) == timedelta(minutes=10)
    assert adaptive_interval(policy, 48) == timedelta(minutes=15)     # two polls per new entry
    assert adaptive_interval(policy, 5000) == timedelta(minutes=2)     # floor
    assert adaptive_interval(policy, 0.1) == timedelta(hours=6)        # ceiling
    fixed = FeedPolicy(interval=timedelta(minutes=5), max_interval=timedelta(hours=6),
                       max_article_age=timedelta(days=2), fixed=True)
    assert adaptive_interval(fixed, 5000) == timedelta(minutes=5)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert publishing_rate(None, 25, None, now) is None, "a first poll's backlog is no rate"
    assert publishing_rate(None, 2, now - timedelta(hours=1), now) == 48
    assert publishing_rate(48, 0, now - timedelta(hours=1), now) == 0.7 * 48


def test_feeds_table_records_the_learned_interval(tmp_path: Path,
                                                  write_config: WriteConfig) -> None:
    with FeedServer({"/f": rss([item("a", "A", "x")])}) as server:
        daemon = run_daemon(write_config, tmp_path, [{"id": "f", "url": server.url("/f")}], [],
                            rounds=2)
    with daemon.db.session() as s:
        feed = s.get(Feed, "f")
        assert feed is not None
        assert feed.interval_s == 600 and feed.entries_per_day == 0.0
