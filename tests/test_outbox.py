"""The outbox: per-channel retries, backoff, Retry-After, giving up, and requeueing."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.notify.console import ConsoleChannel
from monitor.notify.outbox import Dispatcher, RetryPolicy, backoff
from monitor.notify.webhook import WebhookChannel
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.models import Delivery
from tests.conftest import Receiver, WriteConfig


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def setup_outbox(db_url: str, receiver: Receiver, policy: RetryPolicy) -> tuple[
        Database, Dispatcher, Clock, io.StringIO]:
    db = Database(db_url)
    db.upgrade()
    clock = Clock()
    console = io.StringIO()
    channels = {"hook": WebhookChannel("hook", url=receiver.url, secret=None, timeout=5),
                "console": ConsoleChannel("console", console)}
    dispatcher = Dispatcher(db, channels, {"hook": policy, "console": policy}, clock=clock)
    payload = {"type": "hit", "version": 1, "id": "alert-1",
               "rule": {"id": "r", "name": "R", "priority": "normal"},
               "article": {"title": "T", "url": None, "source": {"id": "f", "name": "F"}},
               "snippet": "s"}
    db.call(queries.insert_alert, alert_id="alert-1", kind="hit", payload=payload,
            channels={"hook": "pending", "console": "pending"}, now=clock.now)
    return db, dispatcher, clock, console


def deliveries(db: Database) -> dict[str, Delivery]:
    return {d.channel: d for d, _ in db.call(queries.list_deliveries)}


_loop: asyncio.AbstractEventLoop | None = None


@pytest.fixture(autouse=True)
def event_loop_for_test() -> object:
    """One loop per test: the webhook channel's connection pool belongs to one loop."""
    global _loop
    _loop = asyncio.new_event_loop()
    yield _loop
    _loop.close()
    _loop = None


def run(dispatcher: Dispatcher) -> int:
    assert _loop is not None
    return _loop.run_until_complete(dispatcher.run_once())


def test_retries_until_receiver_recovers_and_channels_are_independent(
        db_url: str, receiver: Receiver) -> None:
    receiver.statuses = [503, 503, 503]
    db, dispatcher, clock, console = setup_outbox(db_url, receiver, RetryPolicy(max_attempts=10))
    assert run(dispatcher) == 2
    state = deliveries(db)
    assert state["console"].status == "sent" and state["hook"].status == "pending"
    assert state["hook"].attempts == 1 and state["hook"].last_error == "HTTP 503"
    assert run(dispatcher) == 0, "not due before its backoff"
    for _ in range(3):
        clock.now += timedelta(hours=2)
        run(dispatcher)
    state = deliveries(db)
    assert state["hook"].status == "sent" and state["hook"].attempts == 4
    assert [c.json()["id"] for c in receiver.calls] == ["alert-1"] * 4
    assert console.getvalue().count("[r] T") == 1, "the console got it once, at once"
    db.dispose()


def test_retry_after_is_honoured(db_url: str, receiver: Receiver) -> None:
    receiver.statuses = [429]
    receiver.extra_headers = {"Retry-After": "120"}
    db, dispatcher, clock, _ = setup_outbox(db_url, receiver, RetryPolicy())
    run(dispatcher)
    hook = deliveries(db)["hook"]
    assert hook.next_attempt_at == clock.now + timedelta(seconds=120)
    clock.now += timedelta(seconds=119)
    assert run(dispatcher) == 0
    clock.now += timedelta(seconds=1)
    assert run(dispatcher) == 1 and deliveries(db)["hook"].status == "sent"
    db.dispose()


def test_gives_up_after_max_attempts_and_can_be_requeued(
        tmp_path: Path, receiver: Receiver, write_config: WriteConfig,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    receiver.statuses = [500] * 3
    db, dispatcher, clock, _ = setup_outbox(url, receiver, RetryPolicy(max_attempts=3))
    for _ in range(3):
        run(dispatcher)
        clock.now += timedelta(hours=2)
    hook = deliveries(db)["hook"]
    assert hook.status == "failed" and hook.attempts == 3
    assert run(dispatcher) == 0

    config = write_config({"database": url, "rules": []})
    assert main(["alerts", "list", "--status", "failed", "--config", str(config)]) == 0
    assert "failed" in capsys.readouterr().out
    assert main(["alerts", "retry", "--all-failed", "--config", str(config)]) == 0
    assert "requeued 1" in capsys.readouterr().out
    clock.now = datetime.now(UTC) + timedelta(seconds=1)
    assert run(dispatcher) == 1
    assert deliveries(db)["hook"].status == "sent"
    db.dispose()


def test_gives_up_after_max_age(db_url: str, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    db, dispatcher, clock, _ = setup_outbox(
        db_url, receiver, RetryPolicy(max_attempts=100, max_age=timedelta(minutes=1)))
    run(dispatcher)
    clock.now += timedelta(minutes=5)
    run(dispatcher)
    assert deliveries(db)["hook"].status == "failed"
    db.dispose()


def test_backoff_grows_exponentially_with_jitter() -> None:
    assert backoff(1, lambda: 1.0) == 5.0 and backoff(1, lambda: 0.0) == 2.5
    assert backoff(4, lambda: 1.0) == 40.0
    assert backoff(30, lambda: 1.0) == 3600.0


def test_concurrent_runs_in_one_process_send_once(db_url: str, receiver: Receiver) -> None:
    db, dispatcher, _, console = setup_outbox(db_url, receiver, RetryPolicy())

    async def both() -> list[int]:
        return list(await asyncio.gather(dispatcher.run_once(), dispatcher.run_once()))

    assert _loop is not None
    assert sorted(_loop.run_until_complete(both())) == [0, 2]
    assert len(receiver.calls) == 1 and console.getvalue().count("[r] T") == 1
    db.dispose()
