"""Prometheus metrics (SPEC §8), on a registry of the daemon's own.

Labels stay bounded: feed status words, rule ids and channel names from the config,
never URLs or article ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter("pressmon_fetches", "Feed fetches by outcome", ["status"], registry=r)
        self.fetch_seconds = Histogram(
            "pressmon_fetch_seconds", "Time to fetch a feed", registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60))
        self.articles = Counter("pressmon_articles", "New articles stored", registry=r)
        self.hits = Counter("pressmon_hits", "Hits stored, by rule", ["rule"], registry=r)
        self.alerts = Counter("pressmon_alerts", "Delivery attempts by channel and outcome",
                              ["channel", "status"], registry=r)
        self.outbox_depth = Gauge("pressmon_outbox_depth", "Deliveries waiting to be sent",
                                  registry=r)
        self.oldest_pending = Gauge("pressmon_outbox_oldest_pending_seconds",
                                    "Age of the oldest delivery waiting to be sent", registry=r)
        self.reloads = Counter("pressmon_reloads", "Configuration reloads by outcome",
                               ["status"], registry=r)
        self.reload_errors = Counter("pressmon_reload_errors", "Reloads that failed validation",
                                     registry=r)
        self.feeds = Gauge("pressmon_feeds", "Active feeds by status", ["status"], registry=r)
        self.singleton = Gauge("pressmon_singleton_jobs",
                               "1 if this process runs the cluster's digests, health checks, "
                               "WebSub upkeep and retention", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
