"""The daemon as a service, as a subprocess: single instance, secrets kept out of logs,
JSON logs, a clean SIGTERM under load, /healthz and /readyz (also with the database gone)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor.demo.server import FeedServer
from tests.conftest import PG_ENV, Receiver, WriteConfig, free_port, rss
from tests.e2e.daemon import DaemonProcess
from tests.e2e.test_pipeline import item


def wait_until(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_second_daemon_on_one_sqlite_file_refuses(tmp_path: Path,
                                                  write_config: WriteConfig) -> None:
    config = write_config({"database": f"sqlite:///{tmp_path / 'one.db'}"}, {"rules": []})
    first = DaemonProcess(config, tmp_path).start()
    try:
        wait_until(lambda: "running; press Ctrl-C" in first.logs())
        second = DaemonProcess(config, tmp_path).start()
        assert second.proc is not None
        assert second.proc.wait(timeout=20) == 1
        assert "another pressmon daemon (pid" in second.logs()
        assert first.alive()
        assert first.stop()[0] == 0
    finally:
        first.kill()


def test_secrets_never_reach_the_logs(tmp_path: Path, write_config: WriteConfig,
                                      receiver: Receiver) -> None:
    token = "T0KEN-s3cr3t-do-not-log"
    receiver.statuses = [500] * 20
    with FeedServer({"/f": rss([item("s1", "Karabakh", "x")])}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 's.db'}",
            "poll": {"allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/f"), "interval": "1s"}],
            "channels": {
                "hook": {"type": "webhook", "url": f"{receiver.url}/{token}",
                         "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4"},
                "down": {"type": "webhook", "url": f"http://127.0.0.1:9/x?key={token}"},
            },
            "defaults": {"notify": ["hook", "down"]},
        }, {"rules": [{"id": "k", "query": "karabakh"}]})
        daemon = DaemonProcess(config, tmp_path, "--log-level", "DEBUG",
                               "--log-format", "json", global_args=True).start()
        try:
            wait_until(lambda: daemon.logs().count("failed (attempt") >= 2)
            assert daemon.stop()[0] == 0
        finally:
            daemon.kill()
    logs = daemon.logs() + daemon.stdout.read_text()
    assert token not in logs and "c2VjcmV0LXNpZ25pbmcta2V5" not in logs
    for line in daemon.logs().splitlines():
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= entry.keys()


@pytest.fixture
def slow_port() -> Iterator[int]:
    """A server whose every answer takes 30 s: fetches that are in flight when we stop."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            time.sleep(30)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    slow = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    slow.daemon_threads = True
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    yield int(slow.server_address[1])
    slow.shutdown()


def test_sigterm_under_load_exits_cleanly_within_10s(tmp_path: Path, write_config: WriteConfig,
                                                     slow_port: int) -> None:
    port = slow_port
    config = write_config({
        "database": f"sqlite:///{tmp_path / 'l.db'}",
        "poll": {"allow_private_networks": True, "timeout": "60s", "per_host": 50},
        "feeds": [{"id": f"slow-{i}", "url": f"http://127.0.0.1:{port}/{i}"} for i in range(40)],
    }, {"rules": []})
    daemon = DaemonProcess(config, tmp_path).start()
    try:
        wait_until(lambda: "running; press Ctrl-C" in daemon.logs())
        time.sleep(1.0)   # 40 fetches hang in flight
        code, took = daemon.stop(timeout=15)
        assert code == 0 and took < 10, daemon.logs()
    finally:
        daemon.kill()


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut, to take the database away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def test_health_and_readiness_over_http_with_the_database_going_away(
        pg_url: str, tmp_path: Path, write_config: WriteConfig) -> None:
    from sqlalchemy.engine import make_url

    real = make_url(pg_url)
    proxy = Proxy((real.host or "127.0.0.1", real.port or 5432))
    url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    port = free_port()
    config = write_config({"database": url, "server": {"listen": f"127.0.0.1:{port}"}},
                          {"rules": []})
    daemon = DaemonProcess(config, tmp_path).start()
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200
                   if "running" in daemon.logs() else False, timeout=30)
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, b"ok\n")
        proxy.cut()
        wait_until(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 503, timeout=30)
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert json.loads(body)["checks"]["database"].startswith("unreachable")
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "alive, just not ready"
    finally:
        daemon.kill()
    assert os.environ.get(PG_ENV)


def test_a_second_sigint_exits_at_once(tmp_path: Path, write_config: WriteConfig,
                                       slow_port: int) -> None:
    import signal

    config = write_config({
        "database": f"sqlite:///{tmp_path / 'i.db'}",
        "poll": {"allow_private_networks": True, "timeout": "60s"},
        "feeds": [{"id": "slow", "url": f"http://127.0.0.1:{slow_port}/"}],
    }, {"rules": []})
    daemon = DaemonProcess(config, tmp_path).start()
    try:
        wait_until(lambda: "running; press Ctrl-C" in daemon.logs())
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGINT)
        assert daemon.proc.wait(timeout=10) == 130, daemon.logs()
        # The first signal began an up-to-8 s drain (a fetch hangs); the second cuts it short.
        assert time.monotonic() - started < 5, daemon.logs()
        assert "second stop signal" in daemon.logs()
    finally:
        daemon.kill()
