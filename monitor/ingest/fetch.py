"""Fetching feeds over HTTP: conditional GET, bounded bodies, guarded redirects, per-host limits.

This module only moves bytes; deciding what a response means for a feed is the
poller's job.

Guarantees (SPEC §5):

* A body costs at most about ``max_body`` of memory: the declared length is checked first,
  then raw and decoded bytes are counted while streaming, and gzip/deflate/brotli are
  decoded here in bounded steps (a compression bomb stops at ``max_body``, it never gets
  to expand a whole network read at once).
* Connect and read timeouts, and one total deadline per fetch: a server that drips bytes is
  cut off at ``timeout`` whatever it does.
* Redirects are followed here, one hop at a time, at most ``MAX_REDIRECTS``; every target is
  checked by the SSRF guard (:mod:`monitor.ingest.netguard`) before and at connect time.
  When every hop was permanent (301/308) the final URL is reported as ``permanent_redirect``.
* ``Retry-After`` on 429/503 is reported as ``FetchError.retry_after`` (seconds);
  ``Cache-Control: max-age`` / ``Expires`` as ``FetchResult.freshness``.
* Cookies are kept, as a browser keeps them (some feed hosts set one to pass a consent or bot
  check and redirect back), but at most ``MAX_COOKIES`` of them after each response (and a
  response sets at most 128, aiohttp's cap on headers): a server that sets a new cookie on
  every answer cannot grow the daemon's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import zlib
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin

import aiohttp
import certifi
from yarl import URL

from monitor import __version__
from monitor.ingest.netguard import AllowPrivate, Guard, GuardedResolver, Refused, Resolver
from monitor.units import format_size

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ConnectionKey

USER_AGENT = f"pressmon/{__version__} (+https://github.com/pressmon/pressmon)"
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
try:
    import brotli

    _BrotliError: type[Exception] = brotli.error
    ACCEPT_ENCODING = "gzip, br"
    # brotli >= 1.2 can cap the output of one call; older versions expand a whole input at once.
    _BROTLI_LIMITS = hasattr(brotli.Decompressor(), "can_accept_more_data")
except ImportError:  # pragma: no cover - brotli is a dependency; stay usable without it
    brotli = None
    _BrotliError = zlib.error
    _BROTLI_LIMITS = False
    ACCEPT_ENCODING = "gzip"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_STATUSES = frozenset({301, 308})
RETRY_AFTER_STATUSES = frozenset({429, 503})
DECODE_STEP = 64 * 1024          # decoded bytes produced per decompression call
MAX_COOKIES = 1000
"""Cookies the fetcher keeps for all feeds together; past this, expired ones are dropped and,
if that is not enough, all of them (the hosts that need one set it again)."""


class FetchError(Exception):
    """A fetch failed; the message says why in words an operator understands.

    ``status`` is the HTTP status when there was one (410 means the feed is gone);
    ``retry_after`` is in seconds, from ``Retry-After`` on 429 or 503.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Validators:
    """What the last successful fetch left us to make the next one conditional."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    url: str                     # final URL after redirects
    status: int
    not_modified: bool
    content: bytes
    content_type: str | None
    validators: Validators
    body_hash: str | None
    permanent_redirect: str | None = None   # the final URL, when every hop was 301/308
    freshness: timedelta | None = None      # how long the server says the body stays fresh

    @property
    def headers_for_parser(self) -> dict[str, str]:
        return {"content-type": self.content_type} if self.content_type else {}


# --------------------------------------------------------------------------- headers

def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_freshness(headers: Mapping[str, str], now: datetime | None = None) -> timedelta | None:
    """How long a response stays fresh: ``Cache-Control: max-age`` (minus ``Age``), else
    ``Expires`` minus ``Date``; None when absent, zero, ``no-cache`` or ``no-store``."""
    directives: dict[str, str] = {}
    for part in (headers.get("cache-control") or "").split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = arg.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return None
    seconds: float | None = None
    if directives.get("max-age", "").isdigit():
        age = (headers.get("age") or "").strip()
        seconds = int(directives["max-age"]) - (int(age) if age.isdigit() else 0)
    elif (expires := _http_date(headers.get("expires"))) is not None:
        base = _http_date(headers.get("date")) or now or datetime.now(UTC)
        seconds = (expires - base).total_seconds()
    if seconds is None or seconds <= 0:
        return None
    return timedelta(seconds=min(seconds, 10 * 365 * 86400))


# --------------------------------------------------------------------------- decoding

class _Decoder:
    def decode(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Identity(_Decoder):
    def decode(self, data: bytes) -> Iterator[bytes]:
        yield data


class _Zlib(_Decoder):
    """gzip (several members too) or deflate (zlib-wrapped or raw), DECODE_STEP at a time."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
        self._d = zlib.decompressobj(self._wbits)
        self._started = False
        self._done = False
        self._members = 0         # complete gzip members decoded so far

    def decode(self, data: bytes) -> Iterator[bytes]:
        while not self._done:
            try:
                out = self._d.decompress(data, DECODE_STEP)
            except zlib.error:
                if self._members:
                    self._done = True     # garbage after a complete gzip member: ignored
                    return
                if self._gzip or self._started:
                    raise
                # "deflate" is often sent raw, without the zlib wrapper.
                self._wbits = -zlib.MAX_WBITS
                self._d = zlib.decompressobj(self._wbits)
                self._started = True
                continue
            self._started = True
            if out:
                yield out
            data = self._d.unconsumed_tail
            if self._d.eof:
                rest = self._d.unused_data
                self._members += 1
                if self._gzip and rest.lstrip(b"\0"):
                    self._d = zlib.decompressobj(self._wbits)   # the next gzip member
                    data = rest.lstrip(b"\0")
                    continue
                self._done = True     # trailing garbage after the stream is ignored
                return
            if not data and len(out) < DECODE_STEP:
                return

    def finish(self) -> Iterator[bytes]:
        yield from self.decode(b"")


class _Brotli(_Decoder):
    def __init__(self) -> None:
        if brotli is None:  # pragma: no cover
            raise FetchError("unsupported Content-Encoding 'br' (brotli is not installed)")
        self._d = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        if not _BROTLI_LIMITS:  # pragma: no cover - brotli < 1.2: small inputs, checked often
            for start in range(0, len(data), 256):
                if not self._d.is_finished():
                    yield self._d.process(data[start:start + 256])
            return
        if self._d.is_finished():
            return
        out = self._d.process(data, output_buffer_limit=DECODE_STEP)
        if out:
            yield out
        while not self._d.can_accept_more_data():
            out = self._d.process(b"", output_buffer_limit=DECODE_STEP)
            if not out:
                break
            yield out


def _decoders(content_encoding: str | None) -> list[_Decoder]:
    """Decoders in the order to apply them (the reverse of the order of encoding)."""
    names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
    out: list[_Decoder] = []
    for name in reversed(names):
        if name in ("identity", ""):
            continue
        if name in ("gzip", "x-gzip"):
            out.append(_Zlib(gzip=True))
        elif name == "deflate":
            out.append(_Zlib(gzip=False))
        elif name == "br":
            out.append(_Brotli())
        else:
            raise FetchError(f"unsupported Content-Encoding {name!r}")
    return out or [_Identity()]


def _pipe(decoders: list[_Decoder], data: bytes, *, final: bool = False) -> Iterator[bytes]:
    pieces: Iterator[bytes] = iter((data,))
    for i, decoder in enumerate(decoders):
        pieces = _through(decoder, pieces, final=final, first=i == 0)
    return pieces


def _through(decoder: _Decoder, pieces: Iterator[bytes], *, final: bool,
             first: bool) -> Iterator[bytes]:
    for piece in pieces:
        if piece or first:
            yield from decoder.decode(piece)
    if final:
        yield from decoder.finish()


# --------------------------------------------------------------------------- the fetcher

MAX_ERROR = 300
"""Characters of a client error kept in the message (it may quote a hostile server)."""
KEEPALIVE = 5.0
"""Seconds an idle connection stays open for another request to its host."""


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, keeping a connection after its response only while another
    request to the same host waits (``waiting``); it takes the connection over. Idle
    connections never pile up, whatever the number of hosts: a feed host is asked again
    minutes later, when a kept connection would have gone stale anyway.

    (``_release`` is the connector's hook for a connection coming back, ``should_close`` its
    way to close one instead of pooling it; aiohttp is pinned below 4.)"""

    def __init__(self, waiting: Mapping[str, int], **options: Any) -> None:
        super().__init__(**options)
        self._waiting_for = waiting

    def _release(self, key: ConnectionKey, protocol: ResponseHandler, *,
                 should_close: bool = False) -> None:
        keep = bool(self._waiting_for.get((key.host or "").lower()))
        super()._release(key, protocol, should_close=should_close or not keep)


class Fetcher:
    """One shared HTTP client (aiohttp) with a global and a per-host concurrency cap.

    ``allow_private``: True allows every address, False (default) refuses loopback, private,
    link-local, CGNAT, multicast, reserved and metadata addresses, a list of networks allows
    just those (``poll.allow_private_networks``). ``resolver`` replaces DNS and
    ``ssl_context`` the certificate authorities of certifi (tests).

    aiohttp parses responses in C (llhttp): a fetch costs about a third of the CPU that httpx
    and h11 took. Connections are reused by the requests that queue for a host
    (``_Connector``).
    """

    def __init__(self, *, timeout: timedelta, max_body: int, concurrency: int = 50,
                 per_host: int = 4, allow_private: AllowPrivate = False,
                 resolver: Resolver | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        seconds = timeout.total_seconds()
        self._timeout = seconds
        self._max_body = max_body
        self._concurrency = concurrency
        self._ssl = ssl_context
        self._guard = Guard.build(allow_private, resolver)
        self._session: aiohttp.ClientSession | None = None
        self.cookies: aiohttp.CookieJar | None = None     # made with the session, on its loop
        self._global = asyncio.Semaphore(concurrency)
        self._per_host_limit = per_host
        self._per_host: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self._per_host_limit))
        self._waiting: defaultdict[str, int] = defaultdict(int)   # requests queued per host

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use: aiohttp binds it to the running loop."""
        if self._session is None:
            # Cookies from hosts named by address are kept too (a feed server may be one).
            self.cookies = aiohttp.CookieJar(unsafe=True)
            connector = _Connector(
                self._waiting, limit=self._concurrency, limit_per_host=0, use_dns_cache=False,
                resolver=GuardedResolver(self._guard), keepalive_timeout=KEEPALIVE,
                ssl=self._ssl or ssl.create_default_context(cafile=certifi.where()))
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=self.cookies,
                headers={"User-Agent": USER_AGENT, "Accept": ACCEPT,
                         "Accept-Encoding": ACCEPT_ENCODING},
                # Per step; the whole fetch has one deadline (``fetch``).
                timeout=aiohttp.ClientTimeout(total=None, connect=min(self._timeout, 10.0),
                                              sock_read=self._timeout),
                auto_decompress=False,       # decoded here, in bounded steps
                trust_env=False,             # a proxy would resolve names past the guard
                read_bufsize=DECODE_STEP,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self, url: str, validators: Validators = Validators()) -> FetchResult:
        host = _host(url)
        self._waiting[host] += 1
        queued = True
        try:
            async with self._global, self._per_host[host]:
                self._waiting[host] -= 1
                queued = False
                try:
                    # The total deadline also cuts off servers that drip bytes slowly.
                    async with asyncio.timeout(self._timeout):
                        return await self._fetch(url, validators)
                except TimeoutError:
                    raise FetchError(f"timed out after {self._timeout:g}s") from None
                except Refused as exc:
                    raise FetchError(str(exc)) from None
                except aiohttp.ClientError as exc:
                    raise FetchError(_describe(exc)) from None
        finally:
            if queued:                    # cancelled while it waited for its turn
                self._waiting[host] -= 1
            if not self._waiting[host]:
                del self._waiting[host]

    async def _fetch(self, url: str, validators: Validators) -> FetchResult:
        headers = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        current = urldefrag(url).url
        chain = [current]
        permanent = True
        while True:
            self._guard.check_url(current)
            response = await self._client().get(current, headers=headers,
                                                allow_redirects=False)
            try:
                location = response.headers.get("location")
                if response.status in REDIRECT_STATUSES and location:
                    try:
                        target = urldefrag(urljoin(current, location.strip())).url
                    except ValueError as exc:
                        raise FetchError(f"HTTP {response.status} to an invalid URL "
                                         f"{location[:200]!r}: {exc}") from None
                    if target in chain:
                        raise FetchError("redirect loop: " + " → ".join([*chain, target]))
                    if len(chain) > MAX_REDIRECTS:
                        raise FetchError(f"more than {MAX_REDIRECTS} redirects: "
                                         + " → ".join([*chain, target]))
                    permanent = permanent and response.status in PERMANENT_STATUSES
                    chain.append(target)
                    current = target
                    continue
                moved = current if permanent and len(chain) > 1 else None
                return await self._read(response, current, moved, validators,
                                        redirected=len(chain) > 1)
            finally:
                response.close()          # unread (an error, a redirect): not reused
                self._bound_cookies()

    def _bound_cookies(self) -> None:
        """At most ``MAX_COOKIES`` (and one response's) cookies for all feeds: past it,
        expired ones are dropped and, if that is not enough, all of them (the hosts that
        need one set it again)."""
        jar = self.cookies
        if jar is not None and len(jar) > MAX_COOKIES:
            jar.clear(lambda cookie: False)      # drops the expired ones
            if len(jar) > MAX_COOKIES:
                jar.clear()

    async def _read(self, response: aiohttp.ClientResponse, url: str, moved: str | None,
                    validators: Validators, *, redirected: bool) -> FetchResult:
        status = response.status
        where = f" at {url}" if redirected else ""
        if status == 304:
            return FetchResult(url, 304, True, b"", None, validators, None,
                               permanent_redirect=moved,
                               freshness=parse_freshness(response.headers))
        if status >= 300:
            reason = f"HTTP {status} {response.reason or ''}".strip()
            if 300 <= status < 400:
                reason += " without a Location to follow"
            retry_after = (parse_retry_after(response.headers.get("retry-after"))
                           if status in RETRY_AFTER_STATUSES else None)
            raise FetchError(reason + where, status=status, retry_after=retry_after)
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self._max_body:
            raise FetchError(f"body of {format_size(int(declared))} exceeds max_body "
                             f"{format_size(self._max_body)}", status=status)
        encoding = response.headers.get("content-encoding")
        decoders = _decoders(encoding)
        body = bytearray()
        raw = 0
        try:
            async for chunk in response.content.iter_any():
                raw += len(chunk)
                if raw > self._max_body:
                    raise self._too_big(status, encoding)
                for piece in _pipe(decoders, chunk):
                    if len(body) + len(piece) > self._max_body:
                        raise self._too_big(status, encoding)
                    body += piece
            for piece in _pipe(decoders, b"", final=True):
                if len(body) + len(piece) > self._max_body:
                    raise self._too_big(status, encoding)
                body += piece
        except (zlib.error, _BrotliError) as exc:
            raise FetchError(f"cannot decode {encoding} body: {exc}", status=status) from None
        content = bytes(body)
        del body
        return FetchResult(
            url=url,
            status=status,
            not_modified=False,
            content=content,
            content_type=response.headers.get("content-type"),
            validators=Validators(etag=response.headers.get("etag"),
                                  last_modified=response.headers.get("last-modified")),
            body_hash=hashlib.sha256(content).hexdigest(),
            permanent_redirect=moved,
            freshness=parse_freshness(response.headers),
        )

    def _too_big(self, status: int, encoding: str | None) -> FetchError:
        what = f"decoded {encoding} body" if encoding else "body"
        return FetchError(f"{what} exceeds max_body {format_size(self._max_body)}", status=status)


def _host(url: str) -> str:
    """The URL's host as aiohttp keys its connections (IDNA, lower case); "" when it has none
    or cannot be read (the guard then says why)."""
    try:
        return (URL(url).raw_host or "").lower()
    except (TypeError, ValueError):
        return ""


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        what = f"cannot connect: {exc.os_error}" if str(exc.os_error) else "cannot connect"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        what = "protocol error: the server closed the connection before answering in full"
    elif isinstance(exc, aiohttp.ClientResponseError):
        what = f"protocol error: {exc.message}"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        what = f"protocol error: {exc}"
    elif isinstance(exc, aiohttp.InvalidURL):
        what = f"invalid URL: {exc}"
    else:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # aiohttp quotes what it could not parse: the server's bytes, of any length.
    lines = what.strip().splitlines() or [""]
    first = lines[0].rstrip(":")
    return first if len(first) <= MAX_ERROR else first[:MAX_ERROR - 1] + "…"
