"""Crash safety: SIGKILL around a delivery loses nothing; a re-send keeps the alert id."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from monitor.demo.server import FeedServer
from tests.conftest import Receiver, WriteConfig, free_port, rss, start_receiver
from tests.e2e.daemon import DaemonProcess
from tests.e2e.test_pipeline import item
from tests.procs import alive, descendants


def config_for(write_config: WriteConfig, tmp_path: Path, feed_url: str, hook_url: str) -> Path:
    return write_config({
        "database": f"sqlite:///{tmp_path / 'c.db'}",
        "poll": {"interval": "1s", "allow_private_networks": True},
        "feeds": [{"id": "f", "url": feed_url, "interval": "1s"}],
        "channels": {"hook": {"type": "webhook", "url": hook_url, "timeout": "30s"}},
        "defaults": {"notify": ["hook"]},
    }, {"rules": [{"id": "karabakh", "query": "karabakh"}]})


def test_killed_between_send_and_mark_resends_the_same_alert(
        tmp_path: Path, write_config: WriteConfig) -> None:
    release = threading.Event()
    receiver, stop = start_receiver(hang_first=release)
    try:
        with FeedServer({"/f.xml": rss([item("c1", "Karabakh talks", "x")])}) as server:
            daemon = DaemonProcess(config_for(write_config, tmp_path, server.url("/f.xml"),
                                              receiver.url), tmp_path).start()
            try:
                first = receiver.wait_for(1)[0]   # received, never answered
                daemon.kill()                     # SIGKILL before it could mark it sent
                release.set()
                daemon.start()
                second = receiver.wait_for(2)[1]
                assert second.json()["id"] == first.json()["id"]
                time.sleep(2)
                assert len(receiver.calls) == 2, "sent again after it was marked sent"
                code, _ = daemon.stop()
                assert code == 0
            finally:
                daemon.kill()
    finally:
        stop()


def test_killed_before_sending_sends_after_restart(tmp_path: Path,
                                                   write_config: WriteConfig) -> None:
    port = free_port()   # nothing listens yet: the first attempt cannot send
    with FeedServer({"/f.xml": rss([item("c1", "Karabakh talks", "x")])}) as server:
        daemon = DaemonProcess(config_for(write_config, tmp_path, server.url("/f.xml"),
                                          f"http://127.0.0.1:{port}/hook"), tmp_path).start()
        receiver: Receiver | None = None
        stop = None
        try:
            deadline = time.monotonic() + 15
            while "failed (attempt 1)" not in daemon.logs():
                assert time.monotonic() < deadline, daemon.logs()
                time.sleep(0.1)
            daemon.kill()
            receiver, stop = start_receiver(port)
            daemon.start()
            (call,) = receiver.wait_for(1, timeout=30)
            assert call.json()["article"]["title"] == "Karabakh talks"
            code, _ = daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
            if stop:
                stop()


def test_retry_after_is_not_undercut(tmp_path: Path, write_config: WriteConfig,
                                     receiver: Receiver) -> None:
    receiver.statuses = [429]
    receiver.extra_headers = {"Retry-After": "2"}
    with FeedServer({"/f.xml": rss([item("c1", "Karabakh talks", "x")])}) as server:
        daemon = DaemonProcess(config_for(write_config, tmp_path, server.url("/f.xml"),
                                          receiver.url), tmp_path).start()
        try:
            first, second = receiver.wait_for(2, timeout=30)
            assert second.at - first.at >= 2.0
            assert second.json()["id"] == first.json()["id"]
        finally:
            code, _ = daemon.stop()
            assert code == 0


def test_parse_workers_exit_when_the_daemon_is_killed(tmp_path: Path,
                                                      write_config: WriteConfig) -> None:
    """A SIGKILLed daemon cannot stop its feed-parsing workers: they notice and exit."""
    with FeedServer({"/f.xml": rss([item("c1", "Harbour news", "x")])}) as server:
        daemon = DaemonProcess(config_for(write_config, tmp_path, server.url("/f.xml"),
                                          f"http://127.0.0.1:{free_port()}/hook"),
                               tmp_path).start()
        try:
            assert daemon.proc is not None
            deadline = time.monotonic() + 30
            while "1 new and 0 updated" not in daemon.logs():   # parsed in a worker
                assert time.monotonic() < deadline, daemon.logs()
                time.sleep(0.1)
            workers = descendants(daemon.proc.pid)
            assert workers, "the feed was parsed in worker processes"
            daemon.kill()
            deadline = time.monotonic() + 5
            while any(alive(w) for w in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not [w for w in workers if alive(w)], "orphaned parse workers"
        finally:
            daemon.kill()
