"""Fetching feeds over HTTP: conditional GET, bounded bodies, per-host limits.

This module only moves bytes; deciding what a response means for a feed is the
poller's job.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.units import format_size

USER_AGENT = f"pressmon/{__version__} (+https://github.com/pressmon/pressmon)"
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A fetch failed; the message says why in words an operator understands."""

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

    @property
    def headers_for_parser(self) -> dict[str, str]:
        return {"content-type": self.content_type} if self.content_type else {}


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Fetcher:
    """One shared HTTP client with a global and a per-host concurrency cap."""

    def __init__(self, *, timeout: timedelta, max_body: int, concurrency: int = 50,
                 per_host: int = 4) -> None:
        seconds = timeout.total_seconds()
        self._timeout = seconds
        self._max_body = max_body
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(seconds, connect=min(seconds, 10.0)),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._global = asyncio.Semaphore(concurrency)
        self._per_host_limit = per_host
        self._per_host: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self._per_host_limit))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, validators: Validators = Validators()) -> FetchResult:
        host = (urlsplit(url).hostname or "").lower()
        async with self._global, self._per_host[host]:
            try:
                # The total deadline also cuts off servers that drip bytes slowly.
                async with asyncio.timeout(self._timeout):
                    return await self._fetch(url, validators)
            except TimeoutError:
                raise FetchError(f"timed out after {self._timeout:g}s") from None
            except httpx.TooManyRedirects:
                raise FetchError(f"more than {MAX_REDIRECTS} redirects") from None
            except httpx.TimeoutException:
                raise FetchError(f"timed out after {self._timeout:g}s") from None
            except httpx.HTTPError as exc:
                raise FetchError(_describe(exc)) from None

    async def _fetch(self, url: str, validators: Validators) -> FetchResult:
        headers = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        async with self._client.stream("GET", url, headers=headers) as response:
            final_url = str(response.url)
            if response.status_code == 304:
                return FetchResult(final_url, 304, True, b"", None, validators, None)
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".strip(),
                                 status=response.status_code,
                                 retry_after=parse_retry_after(response.headers.get("retry-after")))
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self._max_body:
                raise FetchError(f"body of {format_size(int(declared))} exceeds max_body "
                                 f"{format_size(self._max_body)}", status=response.status_code)
            chunks: list[bytes] = []
            size = 0
            # aiter_bytes yields decoded bytes, so a compression bomb is cut at max_body too.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_body:
                    raise FetchError(f"body exceeds max_body {format_size(self._max_body)}",
                                     status=response.status_code)
                chunks.append(chunk)
            content = b"".join(chunks)
            return FetchResult(
                url=final_url,
                status=response.status_code,
                not_modified=False,
                content=content,
                content_type=response.headers.get("content-type"),
                validators=Validators(etag=response.headers.get("etag"),
                                      last_modified=response.headers.get("last-modified")),
                body_hash=hashlib.sha256(content).hexdigest(),
            )


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {exc}"
    if isinstance(exc, httpx.DecodingError):
        return f"cannot decode body: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
