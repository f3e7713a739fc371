"""The daemon's HTTP endpoints: /healthz, /readyz, /metrics and the WebSub callbacks.

Bound to ``server.listen`` (loopback by default). Failing to bind is logged and the
daemon runs on without HTTP: polling and alerting never depend on it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


class WebSubCallbacks(Protocol):
    async def verify(self, feed_id: str, query: dict[str, str]) -> tuple[int, str]: ...

    async def deliver(self, feed_id: str, body: bytes, headers: dict[str, str]) -> int: ...


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:8080`` or ``:8080`` (all interfaces)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"server.listen {listen!r}: expected host:port, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":8080" asks for all


class HttpServer:
    MAX_BODY = 16 * 1024 * 1024

    def __init__(self, listen: str, *, ready: Readiness,
                 metrics: Callable[[], bytes] | None = None,
                 websub: WebSubCallbacks | None = None) -> None:
        self._host, self._port = parse_listen(listen)
        self._ready = ready
        self._metrics = metrics
        self.websub = websub
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=self.MAX_BODY)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_handler)
        app.router.add_get("/websub/{feed_id}", self._websub_verify)
        app.router.add_post("/websub/{feed_id}", self._websub_deliver)
        return app

    async def start(self) -> bool:
        runner = web.AppRunner(self._app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            log.error("HTTP server cannot listen on %s:%d (%s); running without /healthz, "
                      "/metrics and WebSub", self._host, self._port, exc.strerror or exc)
            await runner.cleanup()
            return False
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("HTTP on http://%s:%d/ (healthz, readyz, metrics, websub)", self._host, self.port)
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ok, checks = await self._ready()
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    async def _metrics_handler(self, _request: web.Request) -> web.Response:
        if self._metrics is None:
            return web.Response(status=404, text="metrics are not enabled\n")
        return web.Response(body=self._metrics(),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _websub_verify(self, request: web.Request) -> web.Response:
        if self.websub is None:
            return web.Response(status=404)
        status, text = await self.websub.verify(request.match_info["feed_id"], dict(request.query))
        return web.Response(status=status, text=text)

    async def _websub_deliver(self, request: web.Request) -> web.Response:
        if self.websub is None:
            return web.Response(status=404)
        body = await request.read()
        status = await self.websub.deliver(request.match_info["feed_id"], body,
                                           {k.lower(): v for k, v in request.headers.items()})
        return web.Response(status=status)
