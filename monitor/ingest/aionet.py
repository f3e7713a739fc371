"""An httpcore network backend on asyncio's own transports.

httpcore's default backend for asyncio goes through anyio: every read and write opens a
cancel scope (``anyio.fail_after``) and every connection starts a task group for Happy
Eyeballs. For a daemon that opens hundreds of short connections per poll that layer was
about a quarter of the fetch path's CPU. This backend does the same job with one
``asyncio.Protocol`` per connection, a future per wait and a timer per timed wait; TLS is
``loop.start_tls``. Addresses arrive already resolved and checked (``netguard``), so there
is nothing to race.

Errors map to httpcore's exceptions as its own backends map them: connecting raises
``ConnectError``/``ConnectTimeout`` (TLS handshakes included), reading ``ReadError``/
``ReadTimeout``, writing ``WriteError``/``WriteTimeout``. A read at the end of the stream
returns ``b""``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
from httpcore._utils import is_socket_readable

READ_BUFFER = 256 * 1024
"""Bytes buffered from the socket before it is no longer read (until the reader catches up)."""


class _Protocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one waiting reader or writer."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None      # a read waiting for data
        self.drained: asyncio.Future[None] | None = None     # a write waiting for room
        self.transport: asyncio.Transport | None = None
        self.paused = False         # we stopped reading: the buffer is full
        self.write_paused = False   # the transport asked us to stop writing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= READ_BUFFER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False        # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self.write_paused = False
        self._wake_writer(exc or ConnectionResetError("connection closed"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer(None)

    def _wake_reader(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _wake_writer(self, exc: BaseException | None) -> None:
        if self.drained is not None and not self.drained.done():
            if exc is None:
                self.drained.set_result(None)
            else:
                self.drained.set_exception(exc)


async def _wait(future: asyncio.Future[None], timeout: float | None,
                expired: type[Exception]) -> None:
    """Await ``future``; after ``timeout`` seconds raise ``expired`` instead."""
    if timeout is None:
        await future
        return
    loop = asyncio.get_running_loop()

    def expire() -> None:
        if not future.done():
            future.set_exception(expired(f"timed out after {timeout:g}s"))

    timer = loop.call_later(timeout, expire)
    try:
        await future
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        while not protocol.buffer:
            if protocol.eof:
                if protocol.error is not None:
                    raise httpcore.ReadError(str(protocol.error) or "connection lost")
                return b""
            protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                await _wait(protocol.waiter, timeout, httpcore.ReadTimeout)
            finally:
                protocol.waiter = None
        data = bytes(protocol.buffer[:max_bytes])
        del protocol.buffer[:max_bytes]
        if protocol.paused and len(protocol.buffer) < READ_BUFFER // 2:
            protocol.paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.eof or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "connection closed"))
        self._transport.write(buffer)
        while protocol.write_paused:
            protocol.drained = asyncio.get_running_loop().create_future()
            try:
                await _wait(protocol.drained, timeout, httpcore.WriteTimeout)
            except OSError as exc:
                raise httpcore.WriteError(str(exc) or "connection closed") from None
            finally:
                protocol.drained = None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake timed out after {timeout:g}s") from None
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        if transport is None:       # the connection closed during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        self._protocol.transport = transport    # pause and resume the decrypted stream
        return AsyncioStream(transport, self._protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # An idle connection with something to read has been closed by the server (EOF)
            # or has sent what nobody asked for: either way it cannot take a request. The
            # socket is asked too, for what arrived since the event loop last read it.
            # httpcore's own backends ask the socket with the same helper.
            return (self._protocol.eof or bool(self._protocol.buffer)
                    or is_socket_readable(self._transport.get_extra_info("socket")))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port,
                    local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting timed out after {timeout:g}s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
