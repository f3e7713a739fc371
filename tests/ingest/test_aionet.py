"""The asyncio network backend under httpcore's own connection pool, against loopback servers:
plain and TLS (trustme) requests, keep-alive reuse and a server closing an idle connection,
bodies larger than the read buffer, timeouts, refused connections, bad certificates."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable

import httpcore
import pytest
import trustme

from monitor.ingest.aionet import READ_BUFFER, AsyncioBackend

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes,
                  *, keep_alive: bool = True) -> bool:
    """Reads one request and answers it; False when the client has gone."""
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (
        len(body), b"" if keep_alive else b"Connection: close\r\n") + body)
    await writer.drain()
    return True


async def _server(serve: Serve, ssl_context: ssl.SSLContext | None = None
                  ) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1]


def _pool(**options: object) -> httpcore.AsyncConnectionPool:
    return httpcore.AsyncConnectionPool(network_backend=AsyncioBackend(), **options)  # type: ignore[arg-type]


async def _get(pool: httpcore.AsyncConnectionPool, url: str, **timeouts: float) -> bytes:
    response = await pool.request("GET", url, extensions={"timeout": timeouts})
    assert response.status == 200
    return response.content


def test_plain_requests_reuse_the_connection() -> None:
    connections = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await _answer(reader, writer, b"hello %d" % len(connections)):
            pass
        writer.close()

    async def main() -> None:
        server, port = await _server(serve)
        async with server, _pool() as pool:
            for _ in range(3):
                assert await _get(pool, f"http://127.0.0.1:{port}/") == b"hello 1"
        assert len(connections) == 1

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    served = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(1)
        await _answer(reader, writer, b"once")
        writer.close()          # keep-alive promised, then closed: the pool must notice

    async def main() -> None:
        server, port = await _server(serve)
        async with server, _pool() as pool:
            assert await _get(pool, f"http://127.0.0.1:{port}/") == b"once"
            await asyncio.sleep(0.1)
            assert await _get(pool, f"http://127.0.0.1:{port}/") == b"once"
        assert len(served) == 2

    asyncio.run(main())


def test_a_body_larger_than_the_read_buffer_arrives_whole() -> None:
    body = bytes(range(256)) * (4 * READ_BUFFER // 256 + 7)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(reader, writer, body, keep_alive=False)
        writer.close()

    async def main() -> None:
        server, port = await _server(serve)
        got = bytearray()
        async with server, _pool() as pool, pool.stream(
                "GET", f"http://127.0.0.1:{port}/") as response:
            async for chunk in response.aiter_stream():
                got += chunk
                await asyncio.sleep(0)      # a slow reader: the socket gets paused
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()

    asyncio.run(main())


def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def main() -> None:
        server, port = await _server(serve)
        async with server, _pool() as pool:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(httpcore.ReadTimeout):
                await _get(pool, f"http://127.0.0.1:{port}/", read=0.2)
            assert loop.time() - started < 2

    asyncio.run(main())


def test_a_server_that_stops_mid_body_is_an_error_not_a_short_body() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server, port = await _server(serve)
        async with server, _pool() as pool:
            with pytest.raises(httpcore.RemoteProtocolError):
                await _get(pool, f"http://127.0.0.1:{port}/")

    asyncio.run(main())


def test_a_closed_port_is_a_connect_error_and_no_time_is_a_connect_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]      # nothing listens once the socket is closed

    async def main() -> None:
        backend = AsyncioBackend()
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("127.0.0.1", port, timeout=2)
        with pytest.raises(httpcore.ConnectTimeout):
            await backend.connect_tcp("127.0.0.1", port, timeout=0)

    asyncio.run(main())


@pytest.fixture(scope="module")
def tls() -> tuple[trustme.CA, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    return ca, server


def test_tls_requests_verify_the_certificate(tls: tuple[trustme.CA, ssl.SSLContext]) -> None:
    ca, server_context = tls

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await _answer(reader, writer, b"secret"):
            pass
        writer.close()

    async def main() -> None:
        server, port = await _server(serve, server_context)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        async with server:
            async with _pool(ssl_context=client) as pool:
                assert await _get(pool, f"https://localhost:{port}/") == b"secret"
                assert await _get(pool, f"https://localhost:{port}/") == b"secret"
                info = pool.connections[0]._connection._network_stream  # type: ignore[attr-defined]
                assert info.get_extra_info("ssl_object") is not None
            # Trusting nothing but the system's CAs: the handshake fails, as a connect error.
            async with _pool(ssl_context=ssl.create_default_context()) as pool:
                with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await _get(pool, f"https://localhost:{port}/")

    asyncio.run(main())


def test_a_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)      # a plain TCP server: the client's hello gets no answer
        writer.close()

    async def main() -> None:
        server, port = await _server(serve)
        async with server, _pool() as pool:
            with pytest.raises(httpcore.ConnectTimeout):
                await _get(pool, f"https://localhost:{port}/", connect=0.3)

    asyncio.run(main())


def test_an_idle_connection_is_readable_once_the_server_closes_it() -> None:
    """Before the event loop has read the FIN the socket says so; after, the protocol does."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(reader, writer, b"x")
        writer.close()
        await writer.wait_closed()
        closed.set()

    async def main() -> None:
        server, port = await _server(serve)
        async with server:
            stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
            assert stream.get_extra_info("is_readable") is False
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in await stream.read(1024, timeout=2)
            await closed.wait()
            readable = stream.get_extra_info("is_readable")   # the FIN may not be read yet
            await asyncio.sleep(0.05)
            assert readable is True and stream.get_extra_info("is_readable") is True
            assert await stream.read(1024, timeout=2) == b""
            await stream.aclose()

    asyncio.run(main())
