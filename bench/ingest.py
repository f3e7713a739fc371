"""Ingest benchmark (SPEC §9): polling 2,000 local feeds that answer after 200 ms.

    .venv/bin/python bench/ingest.py [--feeds N] [--items N] [--latency S] [--rules N] [--quick]
                                     [--no-reader]

Everything is synthetic and generated here. The vocabulary and the rules come from
``bench/match.py`` (invented common words, people, places, organisations, topics); the
rules (1,000 by default, with their entities) are written to a rules file and loaded the
way the daemon loads them. Each feed is an RSS 2.0 document of ``--items`` items of
100-300 words drawn from a pool of generated sentences; about one item in 16 mentions
something rules look for, so a few items hit a few rules. 80% of feeds declare their
language, the rest go through language detection.

The feed server is asyncio-based and runs in a thread of this (the bench) process, so its
CPU never counts as pressmon's. It listens on loopback addresses 127.0.0.2 .. 127.0.0.254
(one port each), feeds spread over them round-robin, so the fetcher's per-host cap sees
~250 different hosts (8 feeds per host at 2,000 feeds). Each request is answered after
``--latency`` seconds; a request with the current ETag in ``If-None-Match`` gets a 304.

pressmon runs in a subprocess (this script with ``--driver``): it builds the real
``Daemon`` from a generated ``pressmon.yaml`` (SQLite in a temporary folder, concurrency
200, per_host 4, ``allow_private_networks: [127.0.0.0/8]``), starts it (migrations, feed
sync, the worker processes up with their rules and models: timed and printed on its own, as
``reader``'s start is not timed at all), and times ``Daemon.poll_all_once`` for each cycle:

* first   - every feed new (25 new items each);
* steady  - 95% of feeds unchanged (304), 5% with one new item;
* idle    - 100% unchanged: its CPU / feeds is the CPU per unchanged feed.

CPU is the pressmon process's own (``getrusage``) plus its child processes' (parse
workers and the NLP process, read from ``/proc``); the "daemon" column is the pressmon
process's part alone (fetching, orchestration, the database). RSS is the pressmon process's peak
(``ru_maxrss``); the table also shows the worker processes' peaks and the sum.

Then, when the ``bench`` extra is installed, the same three cycles with the feed library
`reader` 3.26 (``bench/reader_baseline.py``, its own process, 32 threads): SPEC §9 states the
ingest targets as twice its speed, and measured here in the same run the ratios hold across
machines where wall-clock times do not. They print on the line before the last:

    vs_reader_first=<a> vs_reader_steady=<b> vs_reader_cpu_per_unchanged_feed=<c>

With ``--rounds N`` both are measured N times, alternately, each round on new databases,
and the medians are printed (the ratios: the median of each round's ratios). On a shared
2-core host the speed of the machine drifts by a fifth within an hour, and two busy cores
can each run at two thirds of the speed of one: a single run can tell ratios apart only
roughly.

The naive baseline is sequential ``feedparser.parse(url)`` over a sample of feeds, scaled
to all of them. The last line printed is machine-readable:

    first_cycle_s=<a> steady_cycle_s=<b> cpu_ms_per_unchanged_feed=<c> speedup_vs_naive=<d> rss_mb=<e>
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:
    from bench.match import BenchRule, Vocabulary

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [f"127.0.0.{i}" for i in range(2, 255)]
NAIVE_SAMPLE = 50
STEADY_CHANGED = 0.05
MENTION_RATE = 0.06           # items that mention something rules look for

# --------------------------------------------------------------------------
# synthetic content


@dataclass
class Item:
    guid: str
    title: str
    paragraphs: list[str]
    author: str
    published: datetime


@dataclass
class Corpus:
    rng: random.Random
    sentences: list[str]
    mentions: list[str]
    mention_cum: list[float]
    serial: int = 0

    def item(self, feed: int, now: datetime, *, mentions: bool = True) -> Item:
        rng = self.rng
        self.serial += 1
        words = rng.randint(100, 300)
        chosen: list[str] = []
        count = 0
        while count < words:
            sentence = rng.choice(self.sentences)
            chosen.append(sentence)
            count += sentence.count(" ") + 1
        if mentions and rng.random() < MENTION_RATE:
            for mention in rng.choices(self.mentions, cum_weights=self.mention_cum,
                                       k=rng.randint(1, 2)):
                i = rng.randrange(len(chosen))
                chosen[i] = chosen[i][:-1] + f", said {mention}."
        title = " ".join(rng.choice(self.sentences).split()[:rng.randint(5, 10)]).rstrip(".,")
        paragraphs = [" ".join(chosen[i:i + 4]) for i in range(0, len(chosen), 4)]
        return Item(guid=f"urn:bench:{feed}:{self.serial}", title=title, paragraphs=paragraphs,
                    author=rng.choice(("Desk", "Staff", "Wire", "Correspondent")),
                    published=now - timedelta(minutes=rng.randint(0, 72 * 60)))


def make_corpus(seed: int, rule_count: int) -> tuple[Corpus, str]:
    """Sentences, mentionable rule terms, and the rules file (YAML) with its entities."""
    from bench.match import make_rules, make_vocabulary

    rng = random.Random(seed)
    vocab = make_vocabulary(rng, size=0.3)
    cum: list[float] = []
    total = 0.0
    for w in vocab.common_weights:
        total += w
        cum.append(total)
    sentences = []
    for _ in range(20_000):
        words = rng.choices(vocab.common, cum_weights=cum, k=rng.randint(6, 18))
        words[0] = words[0].capitalize()
        sentences.append(" ".join(words) + ".")
    mention_cum: list[float] = []
    total = 0.0
    for w in vocab.mention_weights:
        total += w
        mention_cum.append(total)
    corpus = Corpus(random.Random(seed + 2), sentences, vocab.mentionable, mention_cum)
    rules = _specific_rules(make_rules(vocab, rule_count * 5 // 4, rng), vocab, corpus, rule_count)
    entities = {
        e.spec.id: {"type": e.spec.type, "aliases": list(e.spec.aliases),
                    **({"not": list(e.spec.not_names)} if e.spec.not_names else {})}
        for e in vocab.people + vocab.places + vocab.orgs}
    rule_list = []
    for r in rules:
        spec = r.spec
        rule: dict[str, object] = {"id": spec.id, "query": spec.query}
        if spec.exclude:
            rule["exclude"] = spec.exclude
        if spec.languages:
            rule["languages"] = list(spec.languages)
        rule_list.append(rule)
    # JSON is YAML: no quoting surprises with generated words.
    rules_yaml = json.dumps({"entities": entities, "rules": rule_list}, ensure_ascii=False, indent=1)
    return Corpus(rng, sentences, vocab.mentionable, mention_cum), rules_yaml


def _specific_rules(rules: list[BenchRule], vocab: Vocabulary, corpus: Corpus, wanted: int
                    ) -> list[BenchRule]:
    """Drop rules that fire on ordinary text (a prefix that is also a common word's start):
    their authors would narrow them, and they would turn every article into a hit."""
    from monitor.match import Document, Matcher

    now = datetime.now(UTC)
    sample = [corpus.item(-1, now, mentions=False) for _ in range(300)]
    matcher = Matcher([r.spec for r in rules], vocab.entities)
    fired: dict[str, int] = {}
    for item in sample:
        doc = Document(title=item.title, summary=" ".join(item.paragraphs), lang="en")
        for hit in matcher.match(doc):
            fired[hit.rule_id] = fired.get(hit.rule_id, 0) + 1
    return [r for r in rules if fired.get(r.spec.id, 0) <= 1][:wanted]


def render_feed(index: int, items: list[Item], lang: str | None) -> bytes:
    out = ['<?xml version="1.0" encoding="utf-8"?>\n'
           '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>',
           f"<title>Bench outlet {index}</title><link>https://outlet{index}.example/</link>",
           f"<description>Synthetic feed {index}</description>"]
    if lang:
        out.append(f"<language>{lang}</language>")
    for item in items:
        html = "".join(f"<p>{escape(p)}</p>" for p in item.paragraphs)
        out.append(
            f"<item><title>{escape(item.title)}</title>"
            f"<link>https://outlet{index}.example/news/{item.guid.rsplit(':', 1)[1]}"
            f"?utm_source=rss</link>"
            f'<guid isPermaLink="false">{item.guid}</guid>'
            f"<pubDate>{format_datetime(item.published)}</pubDate>"
            f"<dc:creator>{item.author}</dc:creator>"
            f"<description>{escape(html)}</description></item>")
    out.append("</channel></rss>\n")
    return "".join(out).encode()


# --------------------------------------------------------------------------
# the feed server


@dataclass
class Feed:
    items: list[Item]
    lang: str | None
    body: bytes = b""
    etag: str = ""


@dataclass
class FeedServer:
    """Answers ``GET /feed/<n>.xml`` after ``latency`` seconds; 304 on a matching ETag."""

    feeds: list[Feed]
    latency: float
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    ports: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0
    max_open: int = 0
    _open: int = 0

    def publish(self, index: int) -> None:
        feed = self.feeds[index]
        feed.body = render_feed(index, feed.items, feed.lang)
        feed.etag = '"' + hashlib.sha256(feed.body).hexdigest()[:24] + '"'

    def url(self, index: int) -> str:
        host = HOSTS[index % len(HOSTS)]
        return f"http://{host}:{self.ports[host]}/feed/{index}.xml"

    def start(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        async def listen() -> None:
            for host in HOSTS:
                server = await asyncio.start_server(self._serve, host, 0, backlog=4096)
                self.ports[host] = server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(listen())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True, name="feed-server").start()
        ready.wait()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        self.max_open = max(self.max_open, self._open)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else "/"
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                await self._delay(path)
                self.requests += 1
                writer.write(self._answer(path, headers))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except ConnectionError:
            return
        finally:
            self._open -= 1
            writer.close()

    async def _delay(self, path: str) -> None:
        """Before each answer: wait ``latency`` seconds (a subclass may also log or hold)."""
        await asyncio.sleep(self.latency)

    def _answer(self, path: str, headers: dict[str, str]) -> bytes:
        feed = None
        if path.startswith("/feed/") and path.endswith(".xml"):
            try:
                feed = self.feeds[int(path[6:-4])]
            except (ValueError, IndexError):
                feed = None
        if feed is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        if headers.get("if-none-match") == feed.etag:
            self.not_modified += 1
            return (f"HTTP/1.1 304 Not Modified\r\nETag: {feed.etag}\r\n"
                    f"Content-Length: 0\r\n\r\n").encode()
        return (f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                f"ETag: {feed.etag}\r\nContent-Length: {len(feed.body)}\r\n\r\n"
                ).encode() + feed.body


# --------------------------------------------------------------------------
# the pressmon side (a subprocess)


def processes() -> dict[int, tuple[int, float]]:
    """Every live process, from /proc: pid -> (parent pid, CPU seconds used)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return table


def _children_cpu() -> tuple[float, list[int]]:
    """CPU seconds of this process's live children, from /proc, and the workers' pids
    (every child but multiprocessing's resource tracker)."""
    me = os.getpid()
    total = 0.0
    pids = []
    for pid, (parent, cpu) in processes().items():
        if parent != me:
            continue
        total += cpu
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"resource_tracker" not in f.read():
                    pids.append(pid)
        except OSError:
            continue
    return total, pids


def _rss_mb(pid: int, key: str = "VmHWM") -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _drive(config: Path) -> None:
    import io
    from collections import Counter

    from monitor.config import load_settings
    from monitor.service.daemon import Daemon

    settings = load_settings(config)
    daemon = Daemon(settings, console=io.StringIO())
    started = time.perf_counter()
    await daemon.start()
    worker_peak = 0.0
    print(json.dumps({"ready": True, "start": time.perf_counter() - started}), flush=True)
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            usage = resource.getrusage(resource.RUSAGE_SELF)
            kids0, _ = _children_cpu()
            own0 = usage.ru_utime + usage.ru_stime
            started = time.perf_counter()
            results = await daemon.poll_all_once()
            wall = time.perf_counter() - started
            usage = resource.getrusage(resource.RUSAGE_SELF)
            kids, pids = _children_cpu()
            own = usage.ru_utime + usage.ru_stime - own0
            worker_peak = max(worker_peak, sum(_rss_mb(p) for p in pids))
            statuses = Counter(r.status for r in results)
            print(json.dumps({
                "wall": wall, "cpu": own + kids - kids0, "cpu_daemon": own,
                "statuses": dict(statuses), "new": sum(r.new_articles for r in results),
                "hits": sum(r.hits for r in results), "alerts": sum(r.alerts for r in results),
                "errors": sorted({r.error or "" for r in results if r.status == "error"})[:3],
                "workers": len(pids)}), flush=True)
    finally:
        _, pids = _children_cpu()
        worker_peak = max(worker_peak, sum(_rss_mb(p) for p in pids))
        await daemon.close()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rss_mb": rss, "worker_rss_mb": worker_peak,
                          "rules": len(settings.rules)}), flush=True)


@dataclass(frozen=True)
class Cycles:
    """What one measured process printed: ready (its start), its three cycles, its memory."""

    ready: dict[str, object]
    first: dict[str, object]
    steady: dict[str, object]
    idle: dict[str, object]
    memory: dict[str, object]

    @property
    def cycles(self) -> tuple[dict[str, object], ...]:
        return self.first, self.steady, self.idle

    @property
    def scores(self) -> tuple[float, float, float]:
        """What the targets and ratios are about: first and steady cycle (s), CPU per
        unchanged feed (ms, idle cycle)."""
        return (float(self.first["wall"]), float(self.steady["wall"]),  # type: ignore[arg-type]
                _cpu_ms_per_unchanged(self.idle))


def _medians(runs: list[Cycles]) -> tuple[float, float, float]:
    """``Cycles.scores``, each the median over the rounds."""
    first, steady, cpu = zip(*(run.scores for run in runs), strict=True)
    return median(first), median(steady), median(cpu)


class Driver:
    """A measured process driven over stdin/stdout: ``cycle`` -> one JSON line per cycle."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.ready = self.receive()

    def receive(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"pressmon driver exited with {self.proc.wait()}")
        return json.loads(line)

    def cycle(self) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("cycle\n")
        self.proc.stdin.flush()
        return self.receive()

    def quit(self) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        out = self.receive()
        self.proc.wait(timeout=60)
        return out


def _unchanged(cycle: dict[str, object]) -> int:
    """Feeds of a cycle that had nothing new (304, or the same body again)."""
    return sum(v for k, v in cycle["statuses"].items()  # type: ignore[union-attr]
               if k in ("not_modified", "unchanged"))


def _cpu_ms_per_unchanged(idle: dict[str, object]) -> float:
    return 1000 * float(idle["cpu"]) / max(1, _unchanged(idle))  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# the naive baseline


def naive(server: FeedServer, sample: list[int]) -> float:
    import feedparser

    started = time.perf_counter()
    for index in sample:
        parsed = feedparser.parse(server.url(index))
        if not parsed.entries:
            raise SystemExit(f"naive baseline: no entries in feed {index}")
    return time.perf_counter() - started


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=25)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="200 feeds")
    parser.add_argument("--no-reader", action="store_true",
                        help="skip the `reader` 3.26 baseline (run when installed: .[bench])")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure pressmon and reader this many times, alternately, each "
                             "round on new databases; report medians (default 1)")
    parser.add_argument("--driver", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        asyncio.run(_drive(args.driver))
        return 0
    if args.quick:
        args.feeds = min(args.feeds, 200)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from bench.reader_baseline import WORKERS as WORKERS_READER
    from bench.reader_baseline import available

    reader_version = available()
    if not reader_version and not args.no_reader:
        print("`reader` is not installed (pip install -e '.[bench]'): no side-by-side "
              "baseline this run", flush=True)
    t0 = time.perf_counter()
    corpus, rules_yaml = make_corpus(args.seed, args.rules)
    now = datetime.now(UTC)
    rng = random.Random(args.seed + 1)
    feeds = [Feed([corpus.item(i, now) for _ in range(args.items)],
                  None if rng.random() < 0.2 else "en") for i in range(args.feeds)]
    for feed in feeds:
        feed.items.sort(key=lambda item: item.published, reverse=True)
    server = FeedServer(feeds, args.latency)
    for i in range(len(feeds)):
        server.publish(i)
    server.start()
    size = sum(len(f.body) for f in feeds)
    print(f"generated {args.feeds} feeds x {args.items} items ({size / 1e6:.1f} MB), "
          f"{args.rules} rules in {time.perf_counter() - t0:.1f}s; serving on "
          f"{len(HOSTS)} loopback addresses 127.0.0.2-254 after {args.latency * 1000:.0f} ms",
          flush=True)

    changed = max(1, round(args.feeds * STEADY_CHANGED))

    def change_some() -> None:
        """One new item in 5% of the feeds (the steady cycle's work)."""
        later = datetime.now(UTC)
        for i in rng.sample(range(args.feeds), changed):
            feeds[i].items = [corpus.item(i, later), *feeds[i].items[:-1]]
            server.publish(i)

    def three_cycles(driver: Driver) -> Cycles:
        first = driver.cycle()
        change_some()
        return Cycles(driver.ready, first, driver.cycle(), driver.cycle(), driver.quit())

    with_reader = bool(reader_version) and not args.no_reader
    ours: list[Cycles] = []
    theirs: list[Cycles] = []
    for round_ in range(1, args.rounds + 1):
        # Each round on new databases (its first cycle finds every item new), pressmon and
        # then reader: side by side in time, so that a machine whose speed drifts (shared
        # hosts do, by a fifth within an hour) moves both of a round alike.
        with tempfile.TemporaryDirectory(prefix="pressmon-bench-") as tmp:
            folder = Path(tmp)
            (folder / "rules").mkdir()
            (folder / "rules" / "bench.yaml").write_text(rules_yaml, encoding="utf-8")
            config = {
                "database": f"sqlite:///{folder / 'pressmon.db'}",
                "poll": {"concurrency": args.concurrency, "per_host": args.per_host,
                         "timeout": "60s", "allow_private_networks": ["127.0.0.0/8"]},
                "feeds": [{"id": f"outlet-{i}", "url": server.url(i), "name": f"Outlet {i}"}
                          for i in range(args.feeds)],
                "rules": ["rules/*.yaml"],
                "channels": {"console": {"type": "console"}},
                "defaults": {"notify": ["console"]},
            }
            (folder / "pressmon.yaml").write_text(json.dumps(config, indent=1), encoding="utf-8")
            ours.append(three_cycles(
                Driver(str(Path(__file__).resolve()), "--driver", str(folder / "pressmon.yaml"))))
            progress = f"round {round_}/{args.rounds}: " if args.rounds > 1 else ""
            if with_reader:
                urls = folder / "urls.txt"
                urls.write_text("\n".join(server.url(i) for i in range(args.feeds)),
                                encoding="utf-8")
                print(f"{progress}pressmon done ({ours[-1].first['wall']:.1f} s first cycle); "
                      f"now reader {reader_version} on the same feeds", flush=True)
                theirs.append(three_cycles(Driver(str(ROOT / "bench" / "reader_baseline.py"),
                                                  str(folder / "reader.sqlite"), str(urls))))
            elif args.rounds > 1:
                print(f"{progress}pressmon done ({ours[-1].first['wall']:.1f} s first cycle)",
                      flush=True)

    sample = rng.sample(range(args.feeds), min(NAIVE_SAMPLE, args.feeds))
    naive_s = naive(server, sample) * args.feeds / len(sample)
    server.stop()

    def row(name: str, c: dict[str, object], note: str) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(c["statuses"].items()))  # type: ignore[union-attr]
        return (f"{name:<8}{c['wall']:>9.2f}{c['cpu']:>9.2f}{c['cpu_daemon']:>9.2f}  "
                f"{statuses:<28} new {c['new']:<6} hits {c['hits']:<5} alerts {c['alerts']:<5} "
                f"{note}")

    print(f"\n{'cycle':<8}{'wall s':>9}{'cpu s':>9}{'daemon':>9}  {'feeds':<28} "
          "articles / matching")
    for i, mine in enumerate(ours):
        if args.rounds > 1:
            print(f"round {i + 1}")
        print(row("first", mine.first, f"(worker processes: {mine.first['workers']}; before it, "
                                       f"pressmon's start {float(mine.ready['start']):.1f} s)"))  # type: ignore[arg-type]
        print(row("steady", mine.steady, f"({changed} feeds changed)"))
        print(row("idle", mine.idle, "(all unchanged)"))
        if theirs:
            for name, c in zip(("first", "steady", "idle"), theirs[i].cycles, strict=True):
                print(row(name, c, f"reader {reader_version}, {WORKERS_READER} threads"))
    for c in (c for run in ours + theirs for c in run.cycles):
        if c["errors"]:
            print("errors:", c["errors"])
    of = "median of the rounds" if args.rounds > 1 else ""
    first_s, steady_s, cpu_ms = _medians(ours)
    steady_cpu = median(1000 * float(r.steady["cpu"]) / max(1, _unchanged(r.steady))  # type: ignore[arg-type]
                        for r in ours)
    print(f"\nCPU per unchanged feed: {cpu_ms:.2f} ms (idle cycle, {_unchanged(ours[0].idle)} "
          f"feeds{'; ' + of if of else ''}); steady cycle {steady_cpu:.2f} ms per unchanged feed "
          f"incl. the {changed} changed")
    print(f"naive sequential feedparser.parse(url): {naive_s:.1f}s for {args.feeds} feeds "
          f"(measured on {len(sample)}, scaled)")
    rss = max(float(r.memory["rss_mb"]) for r in ours)  # type: ignore[arg-type]
    workers_rss = max(float(r.memory["worker_rss_mb"]) for r in ours)  # type: ignore[arg-type]
    print(f"peak RSS: pressmon {rss:.1f} MB, worker processes {workers_rss:.1f} MB "
          f"(sum {rss + workers_rss:.1f} MB), {ours[0].memory['rules']} rules; server max open "
          f"connections {server.max_open}")
    print("targets: first < 20 s, steady < 7 s, < 2 ms CPU per unchanged feed, RSS < 300 MB")
    if theirs:
        per_round = [tuple(t_ / o_ for t_, o_ in zip(t.scores, o.scores, strict=True))
                     for o, t in zip(ours, theirs, strict=True)]
        their_first, their_steady, their_cpu = _medians(theirs)
        print(f"reader {reader_version} on the same feeds, this run{' (' + of + ')' if of else ''}: "
              f"first {their_first:.2f} s, steady {their_steady:.2f} s, "
              f"{their_cpu:.2f} ms CPU per unchanged "
              f"feed, peak RSS {max(float(t.memory['rss_mb']) for t in theirs):.1f} MB; "  # type: ignore[arg-type]
              "SPEC §9 aims at 2x on each")
        if args.rounds > 1:
            print("ratios per round (first, steady, CPU per unchanged feed): " + "; ".join(
                " ".join(f"{x:.2f}" for x in r) for r in per_round))
        ratios = [median(r[k] for r in per_round) for k in range(3)]
        print(f"vs_reader_first={ratios[0]:.2f} vs_reader_steady={ratios[1]:.2f} "
              f"vs_reader_cpu_per_unchanged_feed={ratios[2]:.2f}")
    print(f"first_cycle_s={first_s:.2f} steady_cycle_s={steady_s:.2f} "
          f"cpu_ms_per_unchanged_feed={cpu_ms:.2f} "
          f"speedup_vs_naive={naive_s / first_s:.2f} "
          f"rss_mb={rss:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
