"""Ingest performance machinery: the parse worker pool, NER only where it can alert, and a
smoke run of ``bench/ingest.py`` at a tiny size."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import Rule, RuleConfig
from monitor.ingest.identity import identify
from monitor.ingest.matching import ship
from monitor.ingest.parse import ParseError, parse_feed
from monitor.match import Matcher, RuleSpec
from monitor.service.poller import ParsePool, RuleSet, prepare, with_languages
from monitor.store import queries
from tests.conftest import WriteConfig
from tests.procs import alive

ROOT = Path(__file__).resolve().parent.parent

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://example.org/</link>
<language>en</language>
<item><title>First story</title><link>https://example.org/1</link><guid>g1</guid>
<pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate>
<description>&lt;p&gt;Some &lt;b&gt;text&lt;/b&gt; here&lt;/p&gt;</description></item>
<item><title>Second story</title><link>https://example.org/2</link><guid>g2</guid></item>
</channel></rss>"""
HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}


def test_parse_pool_gives_what_parse_feed_gives_and_stops_its_workers() -> None:
    pool = ParsePool(workers=1)

    async def run() -> None:
        assert not pool.pool.started
        parsed = await pool.run(parse_feed, RSS, HEADERS)
        assert parsed == parse_feed(RSS, HEADERS)
        assert pool.pool.started
        with pytest.raises(ParseError):
            await pool.run(parse_feed, b"this is not a feed", {"content-type": "text/plain"})
        executor = pool.pool.get()
        assert executor is not None
        # A worker imports the parser and the pure text code, nothing heavy: no database, no
        # configuration or rules, no NER model, no HTTP client.
        entries = parsed.entries
        assert await pool.run(identify, entries) == identify(entries)
        modules = await asyncio.get_running_loop().run_in_executor(
            executor, eval, "sorted(__import__('sys').modules)")
        assert "feedparser" in modules and "monitor.ingest.identity" in modules
        for heavy in ("sqlalchemy", "spacy", "monitor.config", "monitor.store", "monitor.service",
                      "monitor.nlp", "httpx", "pydantic", "yaml"):
            assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy
        pids = pool.pool.processes
        assert pids
        await asyncio.to_thread(pool.shutdown)
        assert not any(alive(pid) for pid in pids)
        # After shutdown (a closing daemon finishing its polls) parsing still works, in a thread.
        assert (await pool.run(parse_feed, RSS, HEADERS)).entries == parsed.entries
        assert not pool.pool.started

    asyncio.run(run())


def _compiled() -> str | None:
    """In a parse worker: the digest of the rules it has compiled."""
    from monitor.ingest import matching

    return matching._compiled[0] if matching._compiled else None


def test_started_workers_spawn_at_once_and_compile_the_rules(tmp_path: Path) -> None:
    """``start`` (a daemon calls it as polling begins) spawns the workers without waiting
    for them, and they compile the rules ahead of the first body to parse."""
    shipped = ship([RuleSpec("grain", '"grain corridor"')], {}, tmp_path)
    pool = ParsePool(workers=1)
    try:
        pool.start(shipped)
        (pid,) = pool.pool.processes
        pool.start(shipped)
        assert pool.pool.processes == [pid], "a second start changes nothing"
        assert asyncio.run(pool.run(_compiled)) == shipped.digest
    finally:
        pool.shutdown()
    assert not alive(pid)


def test_a_dead_worker_is_replaced() -> None:
    pool = ParsePool(workers=1)

    async def run() -> None:
        await pool.run(parse_feed, RSS, HEADERS)
        assert pool.pool.processes
        for pid in pool.pool.processes:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        # The parse that finds the pool broken still answers; later ones use new workers.
        while time.monotonic() < deadline:
            assert len((await pool.run(parse_feed, RSS, HEADERS)).entries) == 2
            if pool.pool.processes and all(alive(p) for p in pool.pool.processes):
                break
            await asyncio.sleep(0.1)
        assert len((await pool.run(parse_feed, RSS, HEADERS)).entries) == 2
        await asyncio.to_thread(pool.shutdown)

    asyncio.run(run())


class _Ner:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def entities(self, docs: list) -> list[dict[str, list[str]]]:  # type: ignore[type-arg]
        self.seen += [d.title for d in docs]
        return [{"PERSON": ["Someone"]} for _ in docs]


def _entry(key: str, title: str, published: datetime | None):  # type: ignore[no-untyped-def]
    from monitor.ingest.parse import Entry

    return Entry(key=key, url=f"https://example.org/{key}", title=title, summary="", body="",
                 author=None, lang="en", published_at=published)


def test_ner_runs_only_on_hits_that_can_alert() -> None:
    rules = {
        "loud": Rule(RuleConfig(id="loud", query="grain"), Path("r.yaml"), ("console",)),
        "quiet": Rule(RuleConfig(id="quiet", query="wheat"), Path("r.yaml"), ()),
    }
    ruleset = RuleSet(Matcher([RuleSpec("loud", "grain"), RuleSpec("quiet", "wheat")], {}), rules)
    now = datetime(2025, 1, 6, 12, tzinfo=UTC)
    too_old = now - timedelta(hours=48)
    entries = [
        (_entry("a", "grain fresh", now), None),
        (_entry("b", "grain undated", None), None),
        (_entry("c", "grain stale", now - timedelta(days=5)), None),
        (_entry("d", "wheat fresh but nobody is notified", now), None),
        (_entry("e", "nothing to see", now), None),
    ]
    feed = queries.FeedState("f", "https://example.org/feed", None, None, None, None, 0)
    ner = _Ner()
    identities = identify([e for e, _ in entries])
    out = prepare(ruleset, entries, identities, feed, lambda: ner, {}, too_old)  # type: ignore[arg-type,return-value]
    assert ner.seen == ["grain fresh", "grain undated"]
    assert [bool(p.hits) for p in out] == [True, True, True, True, False]
    assert [bool(p.entities) for p in out] == [True, True, False, False, False]
    # Without a cut-off (callers that alert on anything), every hit gets NER as before.
    ner = _Ner()
    prepare(ruleset, entries, identities, feed, lambda: ner, {})  # type: ignore[arg-type,return-value]
    assert len(ner.seen) == 4


def test_languages_are_detected_only_where_the_feed_names_none() -> None:
    ruleset = RuleSet(Matcher([RuleSpec("tr", "grain", languages=("tr",))], {}), {
        "tr": Rule(RuleConfig(id="tr", query="grain", languages=["tr"]), Path("r.yaml"), ())})
    feed = queries.FeedState("f", "https://example.org/feed", None, None, None, None, 0)
    asked: list[str] = []

    def detect(texts: list[str]) -> list[str | None]:
        asked.extend(texts)
        return ["tr" for _ in texts]

    entries = [(_entry("a", "grain declared", None), None),
               (dataclasses.replace(_entry("b", "grain undeclared", None), lang=None), None)]
    entries = with_languages(entries, detect)
    out = prepare(ruleset, entries, identify([e for e, _ in entries]), feed, lambda: None, {})
    assert [p.entry.lang for p in out] == ["en", "tr"]
    assert asked == ["grain undeclared  "]           # title, summary, body: one text
    assert [bool(p.hits) for p in out] == [False, True]


LAST_LINE = re.compile(
    r"^first_cycle_s=(\d+\.\d\d) steady_cycle_s=(\d+\.\d\d) cpu_ms_per_unchanged_feed=(\d+\.\d\d) "
    r"speedup_vs_naive=(\d+\.\d\d) rss_mb=(\d+\.\d\d)$")


@pytest.mark.timeout(240)
def test_ingest_bench_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--feeds", "20", "--items", "5",
         "--latency", "0.05", "--rules", "50", "--rounds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    first, steady, cpu_ms, speedup, rss = map(float, match.groups())
    # 20 feeds answering after 50 ms, at most 4 per host at once: well under a few seconds.
    assert 0.05 <= first < 30
    assert 0.05 <= steady < 30
    assert 0 < cpu_ms < 100
    assert speedup > 0
    assert 20 < rss < 2000
    table = "\n".join(lines)
    assert "first" in table and "steady" in table and "idle" in table
    assert "errors:" not in table
    assert "round 1" in table and "round 2" in table
    assert len([line for line in lines if line.startswith("first ")]) >= 2
    if importlib.util.find_spec("reader") is None:
        return      # the bench extra is not installed (make setup installs it): no baseline
    # reader 3.26 ran the same three cycles on the same feeds, in each round
    ratios = re.fullmatch(r"vs_reader_first=(\d+\.\d\d) vs_reader_steady=(\d+\.\d\d) "
                          r"vs_reader_cpu_per_unchanged_feed=(\d+\.\d\d)", lines[-2])
    assert ratios, lines[-2]
    assert all(float(r) > 0 for r in ratios.groups())
    assert lines[-3].startswith("ratios per round") and lines[-3].count(";") == 1
    theirs = [line for line in lines if "reader 3.26, 32 threads" in line]
    assert len(theirs) == 6
    for first, steady, idle in (theirs[:3], theirs[3:]):
        assert "ok 20 " in first and "new 100 " in first
        assert "new 1 " in steady                     # 5% of 20 feeds changed: one
        assert "not_modified 20 " in idle and "new 0 " in idle


def test_a_started_daemon_has_its_workers_ready(tmp_path: Path, write_config: WriteConfig,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """``Daemon.start`` returns ready to poll: the parse workers have compiled the rules and
    the language process has its model (NER too, where installed), so that the first polls
    wait for none of them. While it runs, the garbage collector runs less often, in the daemon
    and in its parse workers."""
    import io
    import logging

    from monitor import nlp
    from monitor.config import load_settings
    from monitor.ingest.worker import GC_THRESHOLD
    from monitor.service.daemon import Daemon

    config = write_config({"database": f"sqlite:///{tmp_path / 'p.db'}", "feeds": []},
                          {"rules": [{"id": "grain", "query": '"grain corridor"'}]})
    daemon = Daemon(load_settings(config), console=io.StringIO())

    before = gc.get_threshold()

    async def go() -> None:
        with caplog.at_level(logging.INFO, logger="monitor.service.daemon"):
            await daemon.start()
        try:
            assert gc.get_threshold() == GC_THRESHOLD != before
            pool = daemon.parse_pool.pool
            assert len(pool.processes) == pool.workers
            shipped = daemon._ruleset.shipped
            assert shipped is not None
            executor = pool.get()
            assert executor is not None
            # The workers took one compiling call each (a quick one may have taken two).
            found = await asyncio.gather(*(
                asyncio.get_running_loop().run_in_executor(executor, _compiled)
                for _ in range(4 * pool.workers)))
            assert shipped.digest in found and set(found) <= {shipped.digest, None}
            # The parse workers collect garbage as the daemon does.
            thresholds = await asyncio.get_running_loop().run_in_executor(
                executor, gc.get_threshold)
            assert thresholds == GC_THRESHOLD
            languages = daemon.nlp.languages_pool
            assert languages.started and len(languages.processes) == 1
            assert daemon.nlp.ner_pool.started == nlp.available()
            assert "worker processes ready in" in caplog.text
        finally:
            await daemon.close()

    asyncio.run(go())
    assert gc.get_threshold() == before, "closing gives the process its GC thresholds back"


def test_workers_that_fail_or_hang_at_start_are_logged_and_polling_goes_on(
        tmp_path: Path, write_config: WriteConfig, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that cannot start is logged (the first call that needs it starts another);
    one still loading after ``WORKERS_READY_TIMEOUT`` is waited for no longer."""
    import io
    import logging
    from concurrent.futures import Future

    from monitor.config import load_settings
    from monitor.service import daemon as daemon_module

    config = write_config({"database": f"sqlite:///{tmp_path / 'p.db'}", "feeds": []},
                          {"rules": [{"id": "grain", "query": '"grain corridor"'}]})
    daemon = daemon_module.Daemon(load_settings(config), console=io.StringIO())
    failed: Future[object] = Future()
    failed.set_exception(RuntimeError("no such model"))
    loading: Future[object] = Future()
    monkeypatch.setattr(daemon_module, "WORKERS_READY_TIMEOUT", 0.2)

    async def go() -> None:
        try:
            with caplog.at_level(logging.INFO, logger="monitor.service.daemon"):
                await daemon._workers_ready([failed, loading])
        finally:
            await daemon.close()

    began = time.monotonic()
    asyncio.run(go())
    assert time.monotonic() - began < 5
    assert "a worker process did not start: RuntimeError('no such model')" in caplog.text
    assert "worker processes not ready after" in caplog.text
    assert "ready in" not in caplog.text
