"""Scale-out benchmark (SPEC §8): 1, 2 and 3 `pressmon run` processes on one PostgreSQL.

    .venv/bin/python bench/scale.py [--feeds N] [--delay S] [--concurrency N]
                                    [--database-url URL] [--quick]

The workload is latency-bound on purpose: loopback feeds (1,200 by default) that answer
after 200 ms, each a few short items (cheap to parse and match), and a small
``poll.concurrency`` per process (10 by default). One process can then poll at most about
``concurrency / delay`` = 50 feeds/s however fast the machine is; N processes that share the
feeds through leases (a feed polled by one of them at a time) should poll about N times as
many. The question answered is whether they do.

For each process count (1, 2, 3), in one run:

* a fresh PostgreSQL schema ``bench_scale_<n>_<random>`` (the processes reach it through
  ``?options=-csearch_path%3D<schema>`` on the database URL), dropped afterwards, also on
  an error or Ctrl-C;
* the feed server (``bench.ingest.FeedServer``: 253 loopback addresses, ETag / 304) in a
  thread of this process, so its CPU is never pressmon's. It logs every feed request with
  its time and holds requests, unanswered and unlogged, until every process is ready;
* N daemons, ``python -m monitor run --config <file>``, each with its own config file that
  differs only in ``server.listen`` (a free loopback port, for ``/readyz`` and
  ``/metrics``). Every feed has a fixed ``interval: 1h``, so a correct run requests each
  feed exactly once. The first process starts alone (it creates the tables and the feed
  rows); the others start together once it is ready; when every ``/readyz`` answers 200 the
  feed server opens;
* two rounds. The first, not timed, polls every feed once: each is new (parsed, matched,
  stored) and gets its ETag. When no feed is leased any more, the bench makes every feed due
  at once (``UPDATE feeds SET next_poll_at = now()``) and times the second round, in which
  every answer is a 304 after the delay: the latency-bound work that dominates a running
  cluster;
* the measurement, from the feed server's log of the second round: seconds from its first
  request to the moment every feed has been requested, and feeds/s = feeds / seconds.
  Double polls are requests, within that window, for a feed that had already been
  requested: 0 when the processes share the feeds properly. "Fetches per process" is each
  process's ``pressmon_fetches_total`` (its ``/metrics``, both rounds): how the work was
  split. "cpu ms/feed" is the CPU time of all the processes and their parse workers in the
  window (PostgreSQL's not included) per feed, "host busy" how busy the machine's cores
  were (anything running): on a small machine, N processes may run out of cores before
  they run out of latency;
* SIGTERM to every process, and a wait for it to exit.

Progress goes to stderr. The last line printed is machine-readable:

    feeds_per_s_1=<a> feeds_per_s_2=<b> feeds_per_s_3=<c> ratio_3_vs_1=<r>

The PostgreSQL URL comes from ``--database-url``, else ``PRESSMON_BENCH_DATABASE_URL``,
else ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the role needs CREATE on the
database (for the schemas). ``--quick`` polls 300 feeds instead of 1,200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import Feed, FeedServer, Item, processes

ROOT = Path(__file__).resolve().parent.parent
DATABASE_ENV = "PRESSMON_BENCH_DATABASE_URL"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROCESS_COUNTS = (1, 2, 3)
FEED_INTERVAL = "1h"            # far longer than a run: a second request for a feed is a double
READY_TIMEOUT = 120.0           # seconds for a process to answer /readyz
STOP_TIMEOUT = 15.0             # seconds after SIGTERM (SPEC §8: exit within 10 s)

WORDS = ("the", "minister", "said", "talks", "on", "the", "harbour", "would", "resume", "next",
         "week", "while", "traders", "watched", "prices", "of", "wheat", "and", "fuel", "as",
         "council", "met", "in", "capital", "to", "discuss", "budget", "reform", "transport",
         "strike", "border", "trade", "energy", "exports")
MENTION = "grain corridor"
MENTION_RATE = 0.25
RULES = {"rules": [{"id": "grain-corridor", "query": '"grain corridor"'},
                   {"id": "harbour-strike", "query": "harbour AND strike"}]}


class BenchError(Exception):
    """The run cannot go on (a process died, never got ready, or feeds stopped coming)."""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM to this script cleans up as Ctrl-C does: processes stopped, schemas dropped."""
    raise KeyboardInterrupt


# --------------------------------------------------------------------------
# feeds and the feed server


def make_feeds(count: int, items: int, seed: int) -> list[Feed]:
    """``count`` feeds of ``items`` short items each (a title and ~25 words)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    feeds = []
    for index in range(count):
        entries = []
        for n in range(items):
            words = rng.choices(WORDS, k=rng.randint(18, 30))
            if rng.random() < MENTION_RATE:
                words[rng.randrange(len(words))] = MENTION
            title = " ".join(rng.choices(WORDS, k=6)).capitalize()
            entries.append(Item(guid=f"urn:bench-scale:{index}:{n}", title=title,
                                paragraphs=[" ".join(words).capitalize() + "."], author="Desk",
                                published=now - timedelta(minutes=rng.randint(0, 600))))
        feeds.append(Feed(entries, "en"))
    return feeds


@dataclass
class LoggingFeedServer(FeedServer):
    """``bench.ingest.FeedServer`` that logs each feed request (monotonic time, feed index)
    and holds every request, unlogged, while the gate is closed."""

    log: list[tuple[float, int]] = field(default_factory=list)
    first: dict[int, float] = field(default_factory=dict)   # feed -> time of its first request
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def _delay(self, path: str) -> None:
        await self.gate.wait()
        match = re.fullmatch(r"/feed/(\d+)\.xml", path)
        if match:
            now, index = time.monotonic(), int(match.group(1))
            self.log.append((now, index))
            self.first.setdefault(index, now)
        await super()._delay(path)

    def _call(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the server's loop and wait for it."""
        async def call() -> None:
            fn()
        asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=10)

    def open(self) -> None:
        self._call(self.gate.set)

    def reset(self, *, close: bool = True) -> None:
        """Forget the log; close the gate too, unless ``close`` is False (between rounds)."""
        def reset() -> None:
            if close:
                self.gate.clear()
            self.log = []
            self.first = {}
        self._call(reset)


# --------------------------------------------------------------------------
# PostgreSQL schemas


def normalize_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def schema_url(base: str, schema: str) -> str:
    """The URL whose connections use ``schema`` (as tests/conftest.py ``_pg_schema_url``)."""
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema(base: str, processes: int) -> Iterator[str]:
    """A new, empty schema for one process count; dropped on the way out, whatever happens."""
    from sqlalchemy import create_engine, text

    schema = f"bench_scale_{processes}_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            yield schema_url(base, schema)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        admin.dispose()


# --------------------------------------------------------------------------
# the daemons


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (the parse workers), from /proc."""
    table = processes()
    tree, grown = {pid}, True
    while grown:
        found = {child for child, (parent, _) in table.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    return sum(table[member][1] for member in tree if member in table)


def host_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(values) / tick
    return total - (values[3] + values[4]) / tick, total    # idle and iowait are not busy


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        return 0, ""


class Daemon:
    """One ``python -m monitor run`` with its own config file and log file."""

    def __init__(self, folder: Path, name: str, config: dict[str, object]) -> None:
        self.name = name
        self.port = free_port()
        self.config = folder / f"{name}.yaml"
        self.log = folder / f"{name}.log"
        config = {**config, "server": {"listen": f"127.0.0.1:{self.port}"}}
        self.config.write_text(json.dumps(config, indent=1), encoding="utf-8")  # JSON is YAML
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PRESSMON_DATABASE_URL", None)      # it would win over the config's database
        with self.log.open("wb") as log:
            # A session of its own: a Ctrl-C reaches this script only, which stops it.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(self.config)],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def errors(self) -> list[str]:
        """Lines of its log at level ERROR or above, and tracebacks."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines()
                if re.search(r" (ERROR|CRITICAL) |^Traceback", line)]

    def ready(self) -> bool:
        return http_get(f"http://127.0.0.1:{self.port}/readyz")[0] == 200

    def fetches(self) -> int | None:
        """Fetches so far, all outcomes (``pressmon_fetches_total`` on /metrics)."""
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        if status != 200:
            return None
        return round(sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                         if line.startswith("pressmon_fetches_total")))

    def terminate(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for the exit after SIGTERM; kill at the deadline (and say so)."""
        try:
            return self.proc.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            progress(f"  {self.name} did not stop within {STOP_TIMEOUT:.0f}s after SIGTERM: killed")
            self.proc.kill()
            return self.proc.wait()


def wait_ready(daemons: list[Daemon]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(daemons)
    while waiting:
        for daemon in waiting:
            daemon.check_alive()
        waiting = [d for d in waiting if not d.ready()]
        if waiting and time.monotonic() > deadline:
            raise BenchError(f"{waiting[0].name} not ready after {READY_TIMEOUT:.0f}s:\n"
                             f"{waiting[0].tail()}")
        if waiting:
            time.sleep(0.2)


def stop(daemons: list[Daemon]) -> tuple[list[int], float]:
    """SIGTERM to all at once; their exit codes and the seconds until the last one exited."""
    started = time.monotonic()
    for daemon in daemons:
        daemon.terminate()
    deadline = started + STOP_TIMEOUT
    codes = [daemon.wait(deadline - time.monotonic()) for daemon in daemons]
    return codes, time.monotonic() - started


# --------------------------------------------------------------------------
# one measurement


@dataclass
class Result:
    processes: int
    seconds: float
    feeds: int
    doubles: int
    fetches: list[int | None]
    cpu: float                      # pressmon's CPU seconds in the window, all processes
    host_busy: float                # share of the machine's CPU busy in the window (0..1)
    stop_codes: list[int]
    stop_seconds: float

    @property
    def feeds_per_s(self) -> float:
        return self.feeds / self.seconds if self.seconds > 0 else 0.0


def wait_round(server: LoggingFeedServer, daemons: list[Daemon], timeout: float,
               label: str) -> tuple[list[tuple[float, int]], float]:
    """Until every feed has been requested in this round; returns the log and the end."""
    feeds = len(server.feeds)
    opened = time.monotonic()
    shown = 0.0
    while len(server.first) < feeds:
        for daemon in daemons:
            daemon.check_alive()
        now = time.monotonic()
        if now - opened > timeout:
            raise BenchError(f"{label}: only {len(server.first)} of {feeds} feeds requested "
                             f"after {timeout:.0f}s")
        if now - shown >= 1.0:
            shown = now
            extra = len(server.log) - len(server.first)
            progress(f"  {label} {now - opened:5.1f}s  {len(server.first):>5} / {feeds} feeds "
                     f"requested, {extra} more than once")
        time.sleep(0.05)
    return list(server.log), max(server.first.values())


def settle(url: str, timeout: float) -> None:
    """Until no feed is being polled and every one has been polled successfully."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                busy = conn.execute(text(
                    "SELECT count(*) FROM feeds WHERE lease_owner IS NOT NULL"
                    " OR last_success_at IS NULL")).scalar_one()
            if not busy:
                return
            time.sleep(0.2)
        raise BenchError(f"{busy} feeds still being polled after the first round")
    finally:
        engine.dispose()


def make_all_due(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE feeds SET next_poll_at = now()"))
    engine.dispose()


def measure(server: LoggingFeedServer, config: dict[str, object], processes: int, folder: Path,
            timeout: float) -> Result:
    feeds = len(server.feeds)
    url = str(config["database"])
    server.reset()
    daemons: list[Daemon] = []
    try:
        progress(f"{processes} process(es): starting")
        # The first one creates the tables and the feed rows alone; the others then start
        # together and find both in place.
        daemons.append(Daemon(folder, f"p{processes}-1", config))
        wait_ready(daemons)
        daemons += [Daemon(folder, f"p{processes}-{i}", config) for i in range(2, processes + 1)]
        wait_ready(daemons)
        # Round 1, not timed: every feed is new (parsed, stored) and gets its ETag.
        server.open()
        wait_round(server, daemons, timeout, "first poll")
        settle(url, timeout)
        # Round 2, timed: every feed due at once, every answer a 304 after the delay.
        server.reset(close=False)
        cpu0 = sum(tree_cpu(d.proc.pid) for d in daemons)
        host0 = host_cpu()
        make_all_due(url)
        log, end = wait_round(server, daemons, timeout, "re-poll")
        cpu = sum(tree_cpu(d.proc.pid) for d in daemons) - cpu0
        host1 = host_cpu()
        host_busy = (host1[0] - host0[0]) / max(1e-9, host1[1] - host0[1])
        # Polls still in flight count on /metrics when they end.
        time.sleep(max(1.0, 3 * server.latency))
        fetches = [daemon.fetches() for daemon in daemons]
        codes, stop_seconds = stop(daemons)
        for daemon, code in zip(daemons, codes, strict=True):
            if code != 0:
                progress(f"  {daemon.name} exited with {code} after SIGTERM:\n{daemon.tail()}")
            if errors := daemon.errors():
                progress(f"  {daemon.name}: {len(errors)} error line(s) in its log, the first: "
                         f"{errors[0]}")
    finally:
        stop(daemons)       # after an error or Ctrl-C (no-op for processes already gone)

    start = log[0][0]
    doubles = sum(1 for t, _ in log if t <= end) - feeds
    result = Result(processes, end - start, feeds, doubles, fetches, cpu, host_busy, codes,
                    stop_seconds)
    progress(f"  {result.seconds:.2f}s for {feeds} feeds: {result.feeds_per_s:.1f} feeds/s, "
             f"{doubles} double polls; stopped in {stop_seconds:.1f}s")
    return result


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1200)
    parser.add_argument("--items", type=int, default=3, help="items per feed")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--concurrency", type=int, default=10, help="poll.concurrency per process")
    parser.add_argument("--database-url", default=os.environ.get(DATABASE_ENV, DEFAULT_DATABASE_URL),
                        help=f"PostgreSQL (default: ${DATABASE_ENV}, else {DEFAULT_DATABASE_URL})")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed per process count for every feed to be requested")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="300 feeds")
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds = min(args.feeds, 300)
    base = normalize_url(args.database_url)
    if not base.startswith("postgresql"):
        parser.error(f"--database-url: a PostgreSQL URL is needed, not {base.split(':')[0]}")
    signal.signal(signal.SIGTERM, interrupt)

    server = LoggingFeedServer(make_feeds(args.feeds, args.items, args.seed), args.delay)
    for i in range(args.feeds):
        server.publish(i)
    server.start()
    bound = args.concurrency / args.delay
    print(f"{args.feeds} loopback feeds x {args.items} items answering after "
          f"{args.delay * 1000:.0f} ms; poll.concurrency {args.concurrency} per process "
          f"(latency bound {bound:.0f} feeds/s per process); PostgreSQL "
          f"{base.rsplit('@', 1)[-1]}", flush=True)

    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pressmon-scale-") as tmp:
            folder = Path(tmp)
            (folder / "rules.yaml").write_text(json.dumps(RULES, indent=1), encoding="utf-8")
            for processes in PROCESS_COUNTS:
                with fresh_schema(base, processes) as url:
                    config = {
                        "database": url,
                        "poll": {"concurrency": args.concurrency, "per_host": 4,
                                 "timeout": "60s", "allow_private_networks": True},
                        "feeds": [{"id": f"feed-{i}", "url": server.url(i), "name": f"Feed {i}",
                                   "interval": FEED_INTERVAL} for i in range(args.feeds)],
                        "rules": ["rules.yaml"],
                        "channels": {},
                        "defaults": {"notify": []},
                    }
                    results.append(measure(server, config, processes, folder, args.timeout))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; processes stopped, schemas dropped", file=sys.stderr)
        return 130
    finally:
        server.stop()

    print(f"\n{'processes':>9} {'seconds':>9} {'feeds/s':>9} {'double polls':>13} {'cpu ms/feed':>12} "
          f"{'host busy':>10}  fetches per process")
    for r in results:
        split = " / ".join("?" if f is None else str(f) for f in r.fetches)
        print(f"{r.processes:>9} {r.seconds:>9.2f} {r.feeds_per_s:>9.1f} {r.doubles:>13} "
              f"{1000 * r.cpu / r.feeds:>12.1f} {r.host_busy:>10.0%}  {split}")
    print(f"(cpu ms/feed: pressmon's CPU in the window, all processes and their parse workers, "
          f"not PostgreSQL's; host busy: the machine's {os.cpu_count()} cores, anything running)")
    rate = {r.processes: r.feeds_per_s for r in results}
    ratio = rate[3] / rate[1] if rate[1] else 0.0
    print(f"\n3 processes poll {ratio:.2f}x as fast as 1 (ideal: 3x, each bound at {bound:.0f} feeds/s); "
          f"double polls should be 0")
    print(f"feeds_per_s_1={rate[1]:.1f} feeds_per_s_2={rate[2]:.1f} feeds_per_s_3={rate[3]:.1f} "
          f"ratio_3_vs_1={ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
