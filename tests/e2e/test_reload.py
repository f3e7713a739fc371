"""Hot reload: a changed rules file or SIGHUP swaps rules in whole; a broken one changes nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import yaml

from monitor.demo.server import FeedServer
from tests.conftest import Receiver, WriteConfig, rss
from tests.e2e.daemon import DaemonProcess
from tests.e2e.test_pipeline import item


def wait_log(daemon: DaemonProcess, text: str, count: int = 1, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while daemon.logs().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"log never said {text!r} ({count}x):\n{daemon.logs()}")
        time.sleep(0.1)


def rules(*extra: dict[str, str]) -> dict[str, object]:
    return {"entities": {"karabakh": {"aliases": ["Karabakh"]}},
            "rules": [{"id": "karabakh", "query": "@karabakh"}, *extra]}


def test_rules_reload_on_change_and_sighup_keeping_last_good(
        tmp_path: Path, receiver: Receiver, write_config: WriteConfig) -> None:
    items = [item("k1", "Karabakh roads", "x")]
    with FeedServer({"/f.xml": rss(items)}) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'r.db'}",
            "poll": {"interval": "1s", "allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/f.xml"), "interval": "1s"}],
            "channels": {"hook": {"type": "webhook", "url": receiver.url}},
            "defaults": {"notify": ["hook"]},
        }, rules())
        rules_file = tmp_path / "rules" / "rules.yaml"
        daemon = DaemonProcess(config, tmp_path).start()
        try:
            assert receiver.wait_for(1)[0].json()["rule"]["id"] == "karabakh"

            rules_file.write_text(yaml.safe_dump(rules({"id": "baku", "query": "Baku"})))
            wait_log(daemon, "reloaded (file change): 1 feeds, 2 rules")
            items.append(item("b1", "Baku metro extends", "y"))
            server.set("/f.xml", rss(items))
            assert receiver.wait_for(2)[1].json()["rule"]["id"] == "baku"

            rules_file.write_text(yaml.safe_dump(rules({"id": "baku", "query": "(Baku OR"})))
            wait_log(daemon, "reload (file change) failed; the rules in force stay")
            assert "rules.yaml:" in daemon.logs() and "rules[1].query: column" in daemon.logs()
            items.append(item("b2", "Baku and Karabakh", "z"))
            server.set("/f.xml", rss(items))
            calls = receiver.wait_for(4)
            assert sorted(c.json()["rule"]["id"] for c in calls[2:]) == ["baku", "karabakh"]

            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGHUP)
            wait_log(daemon, "reload (SIGHUP) failed")
            rules_file.write_text(yaml.safe_dump(rules()))
            wait_log(daemon, "reloaded (file change): 1 feeds, 1 rules")
            daemon.proc.send_signal(signal.SIGHUP)
            wait_log(daemon, "reloaded (SIGHUP): 1 feeds, 1 rules")
            assert daemon.alive()
            code, _ = daemon.stop()
            assert code == 0
        finally:
            daemon.kill()
