"""The daemon's HTTP endpoints: /healthz, /readyz and /metrics in Prometheus format."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_settings
from monitor.demo.server import FeedServer
from monitor.service.daemon import Daemon
from tests.conftest import WriteConfig, free_port, rss


def test_health_readiness_and_metrics(tmp_path: Path, write_config: WriteConfig) -> None:
    port = free_port()
    with FeedServer({"/f": rss([{"guid": "1", "title": "Baku metro", "description": "x"}])}
                    ) as server:
        config = write_config({
            "database": f"sqlite:///{tmp_path / 'h.db'}",
            "poll": {"allow_private_networks": True},
            "server": {"listen": f"127.0.0.1:{port}"},
            "feeds": [{"id": "f", "url": server.url("/f"), "interval": "1h"}],
        }, {"rules": [{"id": "baku", "query": "baku"}]})
        daemon = Daemon(load_settings(config), console=io.StringIO())

        async def scenario() -> tuple[int, dict[str, object], str, int]:
            running = asyncio.create_task(daemon.run())
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as client:
                for _ in range(100):
                    try:
                        health = await client.get(f"{base}/healthz")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
                for _ in range(100):   # the first poll and delivery happen at start
                    metrics = (await client.get(f"{base}/metrics")).text
                    if 'pressmon_alerts_total{channel="console",status="sent"} 1.0' in metrics:
                        break
                    await asyncio.sleep(0.05)
                ready = (await client.get(f"{base}/readyz")).json()
                daemon.reload_error = "rules.yaml:3: broken"
                unready = (await client.get(f"{base}/readyz")).status_code
            daemon.request_stop()
            assert await running == 0
            return health.status_code, ready, metrics, unready

        status, ready, metrics, unready = asyncio.run(scenario())
    assert status == 200
    assert ready == {"ready": True, "checks": {"database": "ok", "scheduler": "running",
                                               "reload": "ok"}}
    assert unready == 503
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("pressmon_fetches_total", (("status", "ok"),))] == 1
    assert samples[("pressmon_hits_total", (("rule", "baku"),))] == 1
    assert samples[("pressmon_articles_total", ())] == 1
    assert samples[("pressmon_alerts_total", (("channel", "console"), ("status", "sent")))] == 1
    assert "pressmon_outbox_depth" in families and "pressmon_fetch_seconds" in families
    assert samples[("pressmon_singleton_jobs", ())] == 1, "a lone daemon runs them"
