"""Shared fixtures: real databases (SQLite files, PostgreSQL schemas), loopback receivers."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings as hypothesis_settings

# Timing deadlines make property tests flaky on a loaded machine; in CI the examples are
# also fixed (derandomized) so that a run is reproducible.
hypothesis_settings.register_profile("pressmon", deadline=None,
                                     derandomize=bool(os.environ.get("CI")))
hypothesis_settings.load_profile("pressmon")

PG_ENV = "PRESSMON_TEST_DATABASE_URL"
ROOT = Path(__file__).resolve().parent.parent


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    from sqlalchemy import create_engine, text

    from monitor.store.db import normalize_url

    base = normalize_url(base)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pressmon.db'}"
    return str(request.getfixturevalue("pg_url"))


# --------------------------------------------------------------------------- receivers

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A loopback HTTP endpoint that records every POST and answers from a script."""

    statuses: list[int] = field(default_factory=list)   # answers for the first calls, then 200
    extra_headers: dict[str, str] = field(default_factory=dict)
    calls: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.calls) >= count:
                return list(self.calls)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} webhook calls within {timeout}s, "
                             f"got {len(self.calls)}")


def start_receiver(port: int = 0, hang_first: threading.Event | None = None
                   ) -> tuple[Receiver, Callable[[], None]]:
    """A loopback receiver; with ``hang_first``, the first call is read and left unanswered
    until the event is set (a crash "between sending and marking sent")."""
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                state.calls.append(Received(self.path, dict(self.headers.items()), body,
                                            time.monotonic()))
                first = len(state.calls) == 1
                status = state.statuses.pop(0) if state.statuses else 200
            if first and hang_first is not None:
                hang_first.wait(30)
                return
            self.send_response(status)
            headers = state.extra_headers if status != 200 else {}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        if hang_first is not None:
            hang_first.set()
        httpd.shutdown()
        httpd.server_close()

    return state, stop


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state, stop = start_receiver()
    yield state
    stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- configs and feeds

def rss(items: list[dict[str, str]], title: str = "Test Feed") -> bytes:
    """A small RSS 2.0 document; each item: guid, title, description, link, pubDate."""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
             f"<title>{title}</title><link>http://example.test/</link><language>en</language>"]
    for item in items:
        fields = "".join(f"<{k}>{v}</{k}>" for k, v in item.items())
        parts.append(f"<item>{fields}</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a pressmon.yaml (and rules file) into tmp_path; returns the config path."""

    def write(config: dict[str, Any], rules: dict[str, Any] | None = None) -> Path:
        config = dict(config)
        # Tests run side by side: never claim the default HTTP port.
        config.setdefault("server", {"listen": "127.0.0.1:0"})
        if rules is not None:
            (tmp_path / "rules").mkdir(exist_ok=True)
            (tmp_path / "rules" / "rules.yaml").write_text(
                yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
            config.setdefault("rules", ["rules/*.yaml"])
        path = tmp_path / "pressmon.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
        return path

    return write
