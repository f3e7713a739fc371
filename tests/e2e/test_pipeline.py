"""The whole pipeline on real parts: feed server → daemon subprocess → signed webhook."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from monitor.demo.server import FeedServer
from tests.conftest import Receiver, WriteConfig, rss
from tests.e2e.daemon import DaemonProcess

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

RULES = {
    "entities": {
        "karabakh": {"type": "GPE", "aliases": ["Karabakh", "Nagorno-Karabakh", "Qarabağ"]},
        "erdogan": {"type": "PERSON", "aliases": ["Recep Tayyip Erdoğan", "Erdoğan"]},
    },
    "rules": [
        {"id": "karabakh", "name": "Karabakh", "query": "@karabakh",
         "exclude": "football"},
        {"id": "erdogan", "query": "@erdogan"},
    ],
}


def item(guid: str, title: str, description: str, age: timedelta = timedelta(minutes=5)
         ) -> dict[str, str]:
    when = format_datetime(datetime.now(UTC) - age, usegmt=True)
    return {"guid": guid, "title": title, "description": description,
            "link": f"http://news.test/{guid}", "pubDate": when}


def wait_polls(server: FeedServer, path: str, more: int, timeout: float = 15.0) -> None:
    target = server.requests[path] + more
    deadline = time.monotonic() + timeout
    while server.requests[path] < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"feed polled {server.requests[path]} times, wanted {target}")
        time.sleep(0.05)


def test_signed_webhook_once_per_article_across_polls_and_restarts(
        db_url: str, receiver: Receiver, write_config: WriteConfig, tmp_path: Path) -> None:
    items = [
        item("a1", "Talks on Karabakh transit routes resume",
             "Delegations met to discuss the transit road through Nagorno-Karabakh's south."),
        item("a2", "Qarabağ beat visitors in football friendly",
             "A football story that mentions Karabakh and must be excluded."),
        item("a3", "Harbour cranes replaced in Batumi", "Nothing here for any rule."),
        item("a4", "Old Karabakh report", "Published long ago: stored, never alerted.",
             age=timedelta(days=5)),
    ]
    with FeedServer({"/feed.xml": rss(items)}) as server:
        config = write_config({
            "database": db_url,
            "poll": {"interval": "1s", "allow_private_networks": True, "timeout": "5s"},
            "feeds": [{"id": "test-feed", "name": "Test Feed", "url": server.url("/feed.xml"),
                       "interval": "1s"}],
            "channels": {"hook": {"type": "webhook", "url": receiver.url, "secret": SECRET}},
            "defaults": {"notify": ["hook"]},
        }, RULES)
        daemon = DaemonProcess(config, tmp_path).start()
        try:
            first = receiver.wait_for(1)[0]
            payload = Webhook(SECRET).verify(first.body, first.headers)
            assert payload["type"] == "hit" and payload["version"] == 1
            assert payload["rule"] == {"id": "karabakh", "name": "Karabakh",
                                       "priority": "normal"}
            assert payload["article"]["title"] == "Talks on Karabakh transit routes resume"
            assert payload["article"]["source"] == {"id": "test-feed", "name": "Test Feed"}
            assert first.headers["webhook-id"] == payload["id"]
            terms = {(m["term"], m["field"]) for m in payload["matches"]}
            assert ("@karabakh", "title") in terms
            assert "«" in payload["snippet"]

            # Later polls see the same feed (304): nothing new is sent.
            wait_polls(server, "/feed.xml", 2)
            time.sleep(0.5)
            assert len(receiver.calls) == 1, daemon.logs()
            assert server.not_modified["/feed.xml"] >= 1

            code, took = daemon.stop()
            assert code == 0 and took < 10, daemon.logs()

            # A restart does not alert again either.
            daemon.start()
            wait_polls(server, "/feed.xml", 2)
            time.sleep(0.5)
            assert len(receiver.calls) == 1, daemon.logs()

            # A new matching item alerts exactly once.
            items.append(item("a5", "Erdoğan to visit Baku next week",
                              "The visit was announced by his office on Friday."))
            server.set("/feed.xml", rss(items))
            second = receiver.wait_for(2)[1]
            new = Webhook(SECRET).verify(second.body, second.headers)
            assert new["rule"]["id"] == "erdogan"
            assert new["article"]["title"] == "Erdoğan to visit Baku next week"
            assert new["id"] != payload["id"]
            wait_polls(server, "/feed.xml", 2)
            time.sleep(0.5)
            assert len(receiver.calls) == 2, daemon.logs()
            code, _ = daemon.stop()
            assert code == 0
        finally:
            daemon.kill()


@pytest.mark.parametrize("statuses", [[503, 503, 503]])
def test_webhook_retried_until_receiver_recovers(
        db_url: str, receiver: Receiver, write_config: WriteConfig, tmp_path: Path,
        statuses: list[int]) -> None:
    receiver.statuses = list(statuses)
    receiver.extra_headers = {"Retry-After": "0"}
    items = [item("b1", "Karabakh road reopens", "Traffic resumed on the Karabakh road.")]
    with FeedServer({"/feed.xml": rss(items)}) as server:
        config = write_config({
            "database": db_url,
            "poll": {"interval": "1s", "allow_private_networks": True},
            "feeds": [{"id": "f", "url": server.url("/feed.xml"), "interval": "1s"}],
            "channels": {"hook": {"type": "webhook", "url": receiver.url, "secret": SECRET}},
            "defaults": {"notify": ["hook"]},
        }, RULES)
        daemon = DaemonProcess(config, tmp_path).start()
        try:
            calls = receiver.wait_for(4)
            ids = {Webhook(SECRET).verify(c.body, c.headers)["id"] for c in calls}
            assert len(ids) == 1, "a retry must carry the same alert id"
            time.sleep(1.5)
            assert len(receiver.calls) == 4, "sent again after the receiver accepted it"
        finally:
            code, _ = daemon.stop()
            assert code == 0, daemon.logs()
