"""Fault-injection harness: a busy feed server, a receiver that can fail, a cluster of daemons.

Everything here drives pressmon from the outside only: a config file, ``pressmon run``
subprocesses, HTTP on loopback and plain SQL against PostgreSQL (to drop connections).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.conftest import rss
from tests.e2e.daemon import DaemonProcess
from tests.procs import descendants

HIT_WORD = "Karabakh"

# --------------------------------------------------------------------------- invented news

_WHO = ["A delegation of agronomists", "The regional water board", "Two rival cooperatives",
        "Volunteers from a rowing club", "The ministry of transport", "A team of geologists",
        "Local beekeepers", "An orchestra on tour", "Railway engineers", "A chess federation",
        "Carpet weavers", "The veterinary service", "Schoolteachers", "A film crew",
        "Road inspectors", "The postal company", "A hospital consortium", "Vineyard owners",
        "Students of architecture", "Bridge builders", "The forestry agency", "Mountain guides"]
_DID = ["inspected", "repaired", "mapped", "opened", "photographed", "surveyed", "restored",
        "measured", "catalogued", "rebuilt", "fenced", "cleaned", "insured", "audited",
        "electrified", "replanted", "renamed", "painted", "connected", "tested"]
_WHAT = ["an irrigation canal", "a stone bridge", "the old bus depot", "a mulberry orchard",
         "a seismic station", "two village schools", "the grain silo", "a weather mast",
         "a mountain pass", "the market hall", "a water tower", "three tunnels", "a bakery",
         "a radio relay", "the cable car", "a goat farm", "an apricot nursery", "a library"]
_WHEN = ["on Monday", "before dawn", "after a week of rain", "despite a strike", "at short notice",
         "ahead of the harvest", "late on Friday", "during a snowstorm", "in record time",
         "for the first time since spring", "under police escort", "with foreign funding"]
_THEN = ["Officials promised a second phase", "Residents complained about the noise",
         "The cost was put at {n} thousand manat", "Some {n} families are affected",
         "Work resumes in {n} days", "A report is due within {n} weeks",
         "Critics called the tender rushed", "Traffic was diverted for {n} hours",
         "The contractor hired {n} local workers", "Nobody was hurt",
         "Inspectors logged {n} defects", "The budget grew by {n} percent"]
_DECOY_PLACES = ["Ganja", "Lankaran", "Sheki", "Quba", "Gabala", "Shamakhi", "Mingachevir",
                 "Zaqatala", "Gusar", "Lerik", "Astara", "Balakan"]


def _sentences(rng: random.Random, count: int) -> str:
    return " ".join(s.format(n=rng.randint(2, 990)) + "." for s in rng.sample(_THEN, count))


def invent_item(rng: random.Random, serial: int, feed: int, hit: bool) -> dict[str, str]:
    """A fresh RSS item: a HIT names the watched region, a decoy a look-alike other place."""
    place = HIT_WORD if hit else rng.choice(_DECOY_PLACES)
    who, did, what, when = (rng.choice(x) for x in (_WHO, _DID, _WHAT, _WHEN))
    title = f"{who} {did} {what} in {place} {when}"
    description = (f"{who} {did} {what} near {place} {when}, report no. {serial}. "
                   f"{_sentences(rng, 3)}")
    guid = f"f{feed}-i{serial}-{rng.getrandbits(32):08x}"
    return {"guid": guid, "title": title, "description": description,
            "link": f"http://news.test/{feed}/{guid}",
            "pubDate": format_datetime(datetime.now(UTC), usegmt=True)}


# --------------------------------------------------------------------------- feed server

class QuietServer(ThreadingHTTPServer):
    """A loopback server that does not print a traceback when a killed client resets."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        return None


@dataclass(frozen=True)
class Get:
    feed: int
    start: float
    end: float
    status: int


@dataclass(frozen=True)
class Published:
    feed: int
    guid: str
    link: str
    hit: bool
    at: float


class FeedServer:
    """``count`` RSS feeds at /feed/<n>.xml with ETags; records every GET with its timing."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.gets: list[Get] = []
        self.published: list[Published] = []
        self._items: dict[int, list[dict[str, str]]] = {}
        self._docs: dict[int, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        old = format_datetime(datetime.now(UTC) - timedelta(days=5), usegmt=True)
        for n in range(count):
            # One old entry, so a feed is never empty (an empty feed is a failed poll); too old
            # to alert and without the watched word anyway.
            self._items[n] = [{"guid": f"f{n}-archive", "title": f"Archive notice {n}",
                               "description": "Opening hours of the reading room changed.",
                               "link": f"http://news.test/{n}/archive", "pubDate": old}]
            self._render(n)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                start = time.monotonic()
                feed = server._feed_of(self.path)
                if feed is None:
                    self._reply(404, b"not found")
                    return
                with server._lock:
                    body, etag = server._docs[feed]
                if self.headers.get("If-None-Match") == etag:
                    status = self._reply(304, b"", {"ETag": etag})
                else:
                    status = self._reply(200, body, {"ETag": etag,
                                                     "Content-Type": "application/rss+xml"})
                with server._lock:
                    server.gets.append(Get(feed, start, time.monotonic(), status))

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> int:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)
                self.wfile.flush()
                return status

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

        self._httpd = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="feeds").start()

    def _feed_of(self, path: str) -> int | None:
        name = path.split("?", 1)[0]
        if not (name.startswith("/feed/") and name.endswith(".xml")):
            return None
        number = name[len("/feed/"):-len(".xml")]
        return int(number) if number.isdigit() and int(number) < self.count else None

    def _render(self, feed: int) -> None:
        body = rss(list(reversed(self._items[feed])), title=f"Feed {feed}")
        self._docs[feed] = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def url(self, feed: int) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/feed/{feed}.xml"

    def publish(self, feed: int, item: dict[str, str], hit: bool) -> None:
        with self._lock:
            self._items[feed].append(item)
            self._render(feed)
            self.published.append(Published(feed, item["guid"], item["link"], hit,
                                            time.monotonic()))

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Publisher:
    """Publishes invented items to random feeds at a steady rate, in a thread."""

    def __init__(self, server: FeedServer, rng: random.Random, *, per_second: float,
                 duration: float, decoy_share: float) -> None:
        self.server, self.rng = server, rng
        self.per_second, self.duration, self.decoy_share = per_second, duration, decoy_share
        self._thread = threading.Thread(target=self._run, daemon=True, name="publisher")

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        serial = 0
        while (now := time.monotonic()) - started < self.duration:
            target = started + serial / self.per_second
            if now < target:
                time.sleep(target - now)
                continue
            feed = self.rng.randrange(self.server.count)
            hit = self.rng.random() >= self.decoy_share
            self.server.publish(feed, invent_item(self.rng, serial, feed, hit), hit)
            serial += 1


def double_polls(gets: list[Get], intervals: dict[int, float]) -> list[tuple[Get, Get]]:
    """Pairs of GETs of one feed that overlap, or start less than half its interval apart."""
    by_feed: dict[int, list[Get]] = {}
    for get in gets:
        by_feed.setdefault(get.feed, []).append(get)
    pairs = []
    for feed, polls in by_feed.items():
        polls.sort(key=lambda g: g.start)
        for i, first in enumerate(polls):
            for second in polls[i + 1:]:
                if second.start >= first.end and second.start - first.start >= intervals[feed] / 2:
                    break
                pairs.append((first, second))
    return pairs


# --------------------------------------------------------------------------- webhook receiver

@dataclass(frozen=True)
class Delivery:
    alert_id: str
    payload: dict[str, Any]
    status: int
    at: float
    signed: bool


class SwitchableReceiver:
    """A webhook endpoint: ``up()`` answers 200, ``down()`` closes the port (connections are
    refused), ``failing()`` answers 503. Every request it read is recorded."""

    def __init__(self, verify: Callable[[bytes, dict[str, str]], Any]) -> None:
        self.deliveries: list[Delivery] = []
        self.status = 200
        self._verify = verify
        self._lock = threading.Lock()
        self._httpd: QuietServer | None = None
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                try:
                    receiver._verify(body, headers)
                    signed = True
                except Exception:  # noqa: BLE001 - recorded and asserted on by the test
                    signed = False
                with receiver._lock:
                    status = receiver.status
                    receiver.deliveries.append(Delivery(
                        headers.get("webhook-id", ""), json.loads(body), status,
                        time.monotonic(), signed))
                # No keep-alive: "down" must refuse every later request, not just new sockets.
                self.close_connection = True
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

        return Handler

    def up(self) -> None:
        with self._lock:
            self.status = 200
        if self._httpd is None:
            # HTTPServer sets SO_REUSEADDR: the port freed by down() can be bound again at once.
            self._httpd = QuietServer(("127.0.0.1", self.port), self._handler())
            self.port = self._httpd.server_address[1]
            threading.Thread(target=self._httpd.serve_forever, daemon=True, name="hook").start()

    def failing(self, status: int = 503) -> None:
        self.up()
        with self._lock:
            self.status = status

    def down(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def accepted(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]


# --------------------------------------------------------------------------- daemons and faults

class Cluster:
    """Several ``pressmon run`` processes on one config; each with its own log folder."""

    READY_LINE = "running; press Ctrl-C to stop"

    def __init__(self, config: Path, log_dir: Path, size: int) -> None:
        self.daemons = []
        for n in range(size):
            folder = log_dir / f"daemon{n}"
            folder.mkdir(parents=True, exist_ok=True)
            self.daemons.append(DaemonProcess(config, folder))
        self.kills = 0

    def start(self) -> None:
        for daemon in self.daemons:
            daemon.start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for n, daemon in enumerate(self.daemons):
            while self.READY_LINE not in daemon.logs():
                if not daemon.alive():
                    raise AssertionError(f"daemon {n} exited at start\n{self.log_tails()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon {n} not running after {timeout}s\n"
                                         f"{self.log_tails()}")
                time.sleep(0.2)

    def kill(self, n: int) -> None:
        """A crash: SIGKILL daemon ``n``."""
        self._kill_tree(n)
        self.kills += 1

    def _kill_tree(self, n: int) -> None:
        """SIGKILL daemon ``n`` and then its children (feed parsing workers), as when its
        container or machine dies; a bare SIGKILL would leave the workers orphaned."""
        daemon = self.daemons[n]
        children = descendants(daemon.proc.pid) if daemon.alive() and daemon.proc else []
        daemon.kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self, n: int) -> None:
        self.daemons[n].start()

    def stop(self) -> list[str]:
        """SIGTERM to all at once; returns how each one ended."""
        for daemon in self.daemons:
            if daemon.alive():
                assert daemon.proc is not None
                daemon.proc.terminate()
        outcomes = []
        for n, daemon in enumerate(self.daemons):
            try:
                assert daemon.proc is not None
                outcomes.append(f"daemon{n}: exit {daemon.proc.wait(timeout=15)}")
            except Exception:  # noqa: BLE001 - reported, and killed below
                outcomes.append(f"daemon{n}: did not stop within 15s (killed)")
                self._kill_tree(n)
        return outcomes

    def kill_all(self) -> None:
        for n in range(len(self.daemons)):
            self._kill_tree(n)

    def stderr_files(self) -> list[Path]:
        return sorted(p for d in self.daemons for p in d.log_dir.glob("daemon-*.err"))

    def log_tails(self, lines: int = 25) -> str:
        out = []
        for path in self.stderr_files():
            text = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.parent.name}/{path.name} (last {lines} of {len(text)} lines)")
            out.extend(text[-lines:])
        return "\n".join(out)

    def problems(self) -> Counter[str]:
        """Log messages at WARNING and above, and the exceptions of tracebacks, from every run
        of every daemon, counted (ids, numbers and times blanked so that alike ones group)."""
        found: Counter[str] = Counter()
        for path in self.stderr_files():
            for line in path.read_text(errors="replace").splitlines():
                if m := _LOG_LINE.match(line):
                    if m["level"] in ("WARNING", "ERROR", "CRITICAL"):
                        found[_blank(f"{m['level']} {m['message']}")] += 1
                elif m := _EXCEPTION_LINE.match(line):
                    found[_blank(line)] += 1
        return found


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<level>[A-Z]+)\s+(?P<message>.*)$")
_EXCEPTION_LINE = re.compile(r"^[a-z_][\w.]*\.[A-Z]\w*(Error|Exception|Shutdown|Violation)\b")


def _blank(text: str) -> str:
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)
    text = re.sub(r"\d+(\.\d+)?", "<n>", text)
    return text[:200]


@dataclass(order=True)
class Fault:
    at: float
    name: str = field(compare=False)
    action: Callable[[], str | None] = field(compare=False)


@dataclass
class Chaos:
    """A seeded timetable of faults, run in a thread relative to ``start()``."""

    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def at(self, when: float, name: str, action: Callable[[], str | None]) -> None:
        self.faults.append(Fault(when, name, action))

    def start(self) -> Chaos:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos")
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        for fault in sorted(self.faults):
            delay = self._started + fault.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name = fault.name
            try:
                note = fault.action()
            except Exception as exc:  # noqa: BLE001 - a failed fault is reported, not fatal
                self.errors.append(f"{fault.name}: {exc!r}")
                note = f"FAILED: {exc!r}"
            if note:
                name = f"{name} ({note})"
            stamp = time.monotonic()
            self.log.append((stamp, name))
            print(f"  [t={stamp - self._started:6.1f}s] {name}", flush=True)
