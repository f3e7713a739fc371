"""Three daemons on one PostgreSQL under faults: nothing lost, no duplicate alert, no double poll.

SPEC §5 (no alert is lost by a crash, a restart or a receiver outage) and §8 (several
processes share the work: a feed is polled by one of them at a time, an outbox row is sent
by one of them, no duplicate alert from running several).

The scenario: 200 feeds on a loopback server get new items at a steady rate, about 70% of
them naming the watched region (HITs), the rest look-alike decoys. Meanwhile, at seeded
random moments, daemons are SIGKILLed and restarted, the webhook receiver refuses
connections and then answers 503, and every daemon's PostgreSQL connections are dropped.
Then the daemons get time to catch up, and the deliveries are counted.

Reproduce a run with PRESSMON_FAULT_SEED=<seed> (printed at the start).
"""

from __future__ import annotations

import base64
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from standardwebhooks import Webhook

from tests.conftest import WriteConfig
from tests.faults.harness import (
    HIT_WORD,
    Chaos,
    Cluster,
    Delivery,
    FeedServer,
    Publisher,
    SwitchableReceiver,
    double_polls,
)

SECRET = "whsec_" + base64.b64encode(b"fault-injection-secret-32-bytes!").decode()

FEEDS = 200
PROCESSES = 3
PUBLISH_SECONDS = 50.0
ITEMS_PER_SECOND = 4.0
DECOY_SHARE = 0.3
KILLS = 5
PG_DROPS = 3
OUTAGE_SECONDS = 6.0        # refused, then as long again answering 503
CATCH_UP_SECONDS = 150.0
LEASE = "20s"

TERMINATE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND backend_type = 'client backend' AND application_name = :app")


def schedule(rng: random.Random, cluster: Cluster, receiver: SwitchableReceiver,
             drop_pg: Callable[[], str]) -> Chaos:
    """The faults, at seeded random moments within the publishing window."""
    chaos = Chaos()
    slot = PUBLISH_SECONDS / KILLS
    for k in range(KILLS):
        victim = rng.randrange(PROCESSES)
        at = k * slot + rng.uniform(1.0, slot - 4.0)
        chaos.at(at, f"SIGKILL daemon{victim}", lambda v=victim: cluster.kill(v))
        chaos.at(at + rng.uniform(1.0, 3.0), f"restart daemon{victim}",
                 lambda v=victim: cluster.restart(v))
    outage = rng.uniform(8.0, PUBLISH_SECONDS - 2 * OUTAGE_SECONDS - 4.0)
    chaos.at(outage, "receiver down (connection refused)", receiver.down)
    chaos.at(outage + OUTAGE_SECONDS, "receiver answers 503", receiver.failing)
    chaos.at(outage + 2 * OUTAGE_SECONDS, "receiver back to normal", receiver.up)
    third = (PUBLISH_SECONDS - 3.0) / PG_DROPS
    for k in range(PG_DROPS):
        chaos.at(3.0 + k * third + rng.uniform(0.0, third), "PostgreSQL connections dropped",
                 drop_pg)
    return chaos


def latencies(accepted: list[Delivery], receiver: SwitchableReceiver, server: FeedServer,
              published_at: dict[str, float], rel: Callable[[float], str]) -> list[str]:
    """How long hits took from publication to an accepted delivery; the slowest explained."""
    first_ok: dict[str, float] = {}
    for d in accepted:
        url = d.payload["article"]["url"]
        first_ok[url] = min(first_ok.get(url, d.at), d.at)
    first_try: dict[str, float] = {}
    for d in receiver.deliveries:
        url = d.payload.get("article", {}).get("url")
        if url:
            first_try[url] = min(first_try.get(url, d.at), d.at)
    waits = sorted((at - published_at[url], url) for url, at in first_ok.items()
                   if url in published_at)
    if not waits:
        return []
    out = [f"publication to delivery: median {waits[len(waits) // 2][0]:.1f}s, "
           f"max {waits[-1][0]:.1f}s"]
    feed_of = {p.link: p.feed for p in server.published}
    for wait, url in reversed(waits[-5:]):
        fetched = [g.start for g in server.gets if g.feed == feed_of[url] and g.status == 200
                   and g.start > published_at[url]]
        out.append(f"slow: {url} published {rel(published_at[url])}, its feed fetched "
                   f"{rel(min(fetched)) if fetched else 'never'}, first request seen "
                   f"{rel(first_try[url])}, accepted {rel(first_ok[url])} ({wait:.1f}s)")
    return out


@pytest.mark.timeout(400)
def test_cluster_under_faults_loses_nothing_and_polls_each_feed_once(
        pg_url: str, write_config: WriteConfig, tmp_path: Path) -> None:
    seed = int(os.environ.get("PRESSMON_FAULT_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nfault injection seed: {seed} (PRESSMON_FAULT_SEED={seed} to repeat)")
    rng = random.Random(seed)

    # The daemons' connections carry a name of their own, so dropping them touches no one else.
    app = f"pressmon-faults-{uuid.uuid4().hex[:8]}"
    db_url = f"{pg_url}{'&' if '?' in pg_url else '?'}application_name={app}"
    admin = create_engine(pg_url, poolclass=NullPool)

    def drop_pg() -> str:
        with admin.connect() as conn:
            return f"{conn.execute(TERMINATE, {'app': app}).scalar()} connections terminated"

    intervals = {n: float(rng.choice([3, 4, 5])) for n in range(FEEDS)}
    server = FeedServer(FEEDS)
    receiver = SwitchableReceiver(Webhook(SECRET).verify)
    config = write_config({
        "database": db_url,
        # A killed daemon's feeds go to the others once its leases lapse: 20s, far longer than
        # any feed's interval, short enough for the run to catch up within a minute or so.
        "poll": {"interval": "5s", "concurrency": 20, "timeout": "5s", "lease": LEASE,
                 "allow_private_networks": True},
        "feeds": [{"id": f"feed-{n}", "url": server.url(n), "interval": f"{intervals[n]:g}s"}
                  for n in range(FEEDS)],
        "channels": {"hook": {"type": "webhook", "url": receiver.url, "secret": SECRET,
                              "timeout": "10s"}},
        "defaults": {"notify": ["hook"]},
    }, {"rules": [{"id": "karabakh", "name": "Karabakh", "query": HIT_WORD.lower()}]})
    cluster = Cluster(config, tmp_path, PROCESSES)
    began = time.monotonic()
    try:
        cluster.start()
        cluster.wait_ready(timeout=90)
        print(f"  {PROCESSES} daemons running after {time.monotonic() - began:.1f}s")

        chaos = schedule(rng, cluster, receiver, drop_pg)
        publisher = Publisher(server, random.Random(rng.random()), per_second=ITEMS_PER_SECOND,
                              duration=PUBLISH_SECONDS, decoy_share=DECOY_SHARE)
        t0 = time.monotonic()
        chaos.start()
        publisher.start()
        publisher.join()
        chaos.join()
        hits = {p.link for p in server.published if p.hit}
        print(f"  [t={time.monotonic() - t0:6.1f}s] publishing stopped: "
              f"{len(server.published)} items, {len(hits)} hits; waiting for deliveries")

        deadline = time.monotonic() + CATCH_UP_SECONDS
        while time.monotonic() < deadline:
            if hits <= {d.payload["article"]["url"] for d in receiver.accepted()
                        if d.payload.get("type") == "hit"}:
                break
            time.sleep(0.5)
        time.sleep(3.0)   # late re-sends, if any, are counted too
        print(f"  [t={time.monotonic() - t0:6.1f}s] stopping the daemons")
        stopped = cluster.stop()
    finally:
        cluster.kill_all()
        receiver.down()
        server.stop()
        admin.dispose()
    wall = time.monotonic() - began

    # ------------------------------------------------------------------ counting
    decoys = {p.link for p in server.published if not p.hit}
    accepted = [d for d in receiver.accepted() if d.payload.get("type") == "hit"]
    ids_per_url: dict[str, set[str]] = {}
    for d in accepted:
        ids_per_url.setdefault(d.payload["article"]["url"], set()).add(d.alert_id)
    per_id = Counter(d.alert_id for d in accepted)
    delivered = hits & ids_per_url.keys()
    lost = sorted(hits - delivered)
    duplicates = sum(n - 1 for n in per_id.values())
    two_ids = {url: ids for url, ids in ids_per_url.items() if len(ids) > 1}
    decoys_sent = sorted(decoys & ids_per_url.keys())
    unknown = sorted(ids_per_url.keys() - hits - decoys)
    unsigned = [d for d in accepted if not d.signed]
    mismatched = [d for d in accepted if d.alert_id != d.payload.get("id")]
    pairs = double_polls(server.gets, intervals)

    line = (f"expected={len(hits)} delivered={len(delivered)} lost={len(lost)} "
            f"duplicates={duplicates} crashes={cluster.kills} double_polls={len(pairs)}")
    print(f"\n{line}")

    def rel(t: float) -> str:
        return f"{t - t0:.2f}s"

    details = [f"seed={seed} wall={wall:.0f}s GETs={len(server.gets)} "
               f"webhook requests={len(receiver.deliveries)} "
               f"(accepted {len(receiver.accepted())})", *stopped]
    details += [f"fault at {rel(at)}: {name}" for at, name in chaos.log]
    details += [f"fault error: {e}" for e in chaos.errors]
    if duplicates:
        details.append("re-sent alert ids (allowed: crash between send and mark): " + ", ".join(
            f"{i} x{n}" for i, n in per_id.most_common() if n > 1)[:2000])
    details += [f"double poll: feed-{a.feed} GET {rel(a.start)}-{rel(a.end)} and "
                f"{rel(b.start)}-{rel(b.end)} (interval {intervals[a.feed]:g}s)"
                for a, b in pairs[:15]]
    published_at = {p.link: p.at for p in server.published}
    details += [f"lost: {url} published at {rel(published_at[url])}" for url in lost[:15]]
    details += latencies(accepted, receiver, server, published_at, rel)
    details += [f"two alert ids for one item: {url}: {sorted(ids)}" for url, ids in two_ids.items()]
    details += [f"decoy delivered: {url}" for url in decoys_sent]
    details += [f"never published but delivered: {url}" for url in unknown]
    details += [f"daemon log x{n}: {msg}" for msg, n in cluster.problems().most_common(25)]
    report = "\n".join(details)
    print(report)

    failure = f"{line}\n{report}\n{cluster.log_tails()}"
    assert not chaos.errors, failure
    assert not two_ids, failure
    assert not decoys_sent, failure
    assert not unknown, failure
    assert not unsigned and not mismatched, failure
    assert not lost, failure
    assert not pairs, failure
