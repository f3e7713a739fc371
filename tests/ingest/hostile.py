"""Loopback HTTP servers that misbehave at the byte level, for fetch and poll tests.

A :class:`HostileServer` runs its own asyncio loop in a thread (so the code under test can
own the main thread's loop) and answers each path with a handler that writes raw bytes:
compression bombs generated on the fly, endless chunked bodies, slow drips, redirect games.
Every connection is closed after one response. Generators stop when the client goes away,
and after ``GIVE_UP`` seconds in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import brotli

GIVE_UP = 30.0
ZEROS = bytes(1 << 20)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class HostileServer:
    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    requests: list[Request] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)     # body bytes written per path
    port: int = 0
    tls: ssl.SSLContext | None = None                     # serve HTTPS with this context

    def url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> HostileServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def start() -> None:
                self._server = await asyncio.start_server(self._serve, self.host, 0,
                                                          ssl=self.tls)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=f"hostile:{self.host}")
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("hostile server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            line, *rest = head.decode("latin-1").split("\r\n")
            method, target, _ = line.split(" ", 2)
            headers = {}
            for item in rest:
                if ":" in item:
                    key, value = item.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            path = target.split("?", 1)[0]
            request = Request(method, path, headers)
            self.hits[path] += 1
            self.requests.append(request)
            handler = self.routes.get(path)
            if handler is None:
                await write_response(writer, 404, b"not found", {"Content-Type": "text/plain"})
            else:
                await handler(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError,
                asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):   # the peer may be long gone
                writer.close()


# --------------------------------------------------------------------------- responses

REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
           307: "Temporary Redirect", 308: "Permanent Redirect", 404: "Not Found",
           410: "Gone", 429: "Too Many Requests", 503: "Service Unavailable"}


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_response(writer: asyncio.StreamWriter, status: int, body: bytes,
                         headers: dict[str, str] | None = None) -> None:
    headers = {"Content-Length": str(len(body)), **(headers or {})}
    writer.write(head(status, headers) + body)
    await writer.drain()


def static(body: bytes, status: int = 200, **headers: str) -> Handler:
    """A plain response; header names use underscores for dashes (Content_Type=…)."""
    real = {k.replace("_", "-"): v for k, v in headers.items()}
    real.setdefault("Content-Type", "application/rss+xml; charset=utf-8")

    async def handle(request: Request, writer: asyncio.StreamWriter) -> None:
        await write_response(writer, status, body, real)

    return handle


def redirect(location: str, status: int = 301) -> Handler:
    return static(b"", status, Location=location)


def _streaming(server: HostileServer, path: str, headers: dict[str, str],
               chunks: Callable[[], object], *, chunked: bool = False,
               delay: float = 0.0) -> Handler:
    """Write headers, then whatever ``chunks()`` yields, until the client goes away."""

    async def handle(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, headers))
        started = time.monotonic()
        for chunk in chunks():  # type: ignore[attr-defined]
            if not chunk:
                continue
            if chunked:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            else:
                writer.write(chunk)
            server.sent[path] += len(chunk)
            await writer.drain()
            if delay:
                await asyncio.sleep(delay)
            if writer.is_closing() or time.monotonic() - started > GIVE_UP:
                return

    return handle


def gzip_bomb(server: HostileServer, path: str, size: int = 1 << 30) -> str:
    """``size`` zero bytes gzip-compressed on the fly (about 1 MiB on the wire per GiB)."""

    def chunks() -> object:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        for _ in range(size // len(ZEROS)):
            yield compressor.compress(ZEROS)
        yield compressor.flush()

    return server.route(path, _streaming(server, path, {
        "Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}, chunks))


def brotli_bomb(server: HostileServer, path: str, size: int = 1 << 30) -> str:
    """``size`` zero bytes brotli-compressed on the fly (a few KiB on the wire per GiB)."""

    def chunks() -> object:
        compressor = brotli.Compressor(quality=5)
        for _ in range(size // len(ZEROS)):
            yield compressor.process(ZEROS) + compressor.flush()
        yield compressor.finish()

    return server.route(path, _streaming(server, path, {
        "Content-Type": "application/rss+xml", "Content-Encoding": "br"}, chunks))


def endless(server: HostileServer, path: str, *, chunked: bool,
            declared: int | None = None, piece: bytes = b"<item>" + b"x" * 16_000) -> str:
    """A body that never ends: chunked, or ``Connection: close`` with or without a
    (false or huge) Content-Length."""
    headers = {"Content-Type": "application/rss+xml"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    if declared is not None:
        headers["Content-Length"] = str(declared)

    def chunks() -> object:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        while True:
            yield piece

    return server.route(path, _streaming(server, path, headers, chunks, chunked=chunked))


def slow_drip(server: HostileServer, path: str, every: float = 0.2) -> str:
    """Headers promise a small body, then one byte every ``every`` seconds, forever: never
    idle long enough for a read timeout."""

    def chunks() -> object:
        while True:
            yield b" "

    return server.route(path, _streaming(server, path, {
        "Content-Type": "application/rss+xml", "Content-Length": "100000"}, chunks,
        delay=every))
