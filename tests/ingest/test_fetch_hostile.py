"""The Fetcher against servers that misbehave: bounded memory, bounded time, clear errors."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import brotli
import pytest
import trustme

from monitor.ingest.fetch import Fetcher, FetchError, FetchResult, parse_freshness
from tests.ingest.hostile import (
    HostileServer,
    Request,
    brotli_bomb,
    endless,
    gzip_bomb,
    redirect,
    slow_drip,
    static,
    write_response,
)

MAX_BODY = 1 << 20                     # 1 MiB
LOOPBACK_ONLY = [ipaddress.ip_network("127.0.0.1/32")]
FEED = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        b"<item><guid>1</guid><title>Baku</title></item></channel></rss>")
T = TypeVar("T")


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


def run(make: Callable[[Fetcher], Awaitable[T]], *, timeout: float = 5.0,
        allow_private: Any = LOOPBACK_ONLY, **kwargs: Any) -> T:
    async def go() -> T:
        fetcher = Fetcher(timeout=timedelta(seconds=timeout), max_body=MAX_BODY,
                          allow_private=allow_private, **kwargs)
        try:
            return await make(fetcher)
        finally:
            await fetcher.aclose()
    return asyncio.run(go())


def fetch(url: str, **kwargs: Any) -> FetchResult:
    return run(lambda f: f.fetch(url), **kwargs)


def fetch_error(url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, **kwargs)
    return info.value


class Bounded:
    """Wall time and peak traced memory (Python allocations, all threads) of a block."""

    def __enter__(self) -> Bounded:
        tracemalloc.start()
        self.base = tracemalloc.get_traced_memory()[0]
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started
        self.peak = tracemalloc.get_traced_memory()[1] - self.base
        tracemalloc.stop()


# --------------------------------------------------------------------------- bodies

def test_good_feed_gzip_and_brotli_are_decoded(server: HostileServer) -> None:
    plain = server.route("/plain", static(FEED))
    gz = server.route("/gz", static(gzip.compress(FEED), Content_Encoding="gzip"))
    br = server.route("/br", static(brotli.compress(FEED), Content_Encoding="br"))
    for url in (plain, gz, br):
        result = fetch(url)
        assert result.status == 200 and result.content == FEED and not result.not_modified
        assert result.permanent_redirect is None and result.freshness is None
    accepted = {e.strip() for e in server.requests[0].headers["accept-encoding"].split(",")}
    assert {"gzip", "br"} <= accepted


@pytest.mark.parametrize("bomb", [gzip_bomb, brotli_bomb])
def test_compression_bomb_stops_at_max_body(server: HostileServer, bomb: Any) -> None:
    url = bomb(server, "/bomb")                     # 1 GiB of zeros, compressed on the fly
    with Bounded() as bound:
        error = fetch_error(url)
    assert "body exceeds max_body 1MiB" in str(error) and "decoded" in str(error)
    assert bound.seconds < 5
    assert bound.peak < 4 * MAX_BODY, f"peak {bound.peak} bytes"


def test_declared_oversize_body_is_refused_before_reading(server: HostileServer) -> None:
    url = endless(server, "/huge", chunked=False, declared=2 << 30)
    with Bounded() as bound:
        error = fetch_error(url)
    assert str(error) == "body of 2GiB exceeds max_body 1MiB"
    assert bound.seconds < 3 and bound.peak < 2 * MAX_BODY


@pytest.mark.parametrize("chunked", [False, True], ids=["until-close", "endless-chunked"])
def test_undeclared_oversize_body_is_cut_while_streaming(server: HostileServer,
                                                         chunked: bool) -> None:
    url = endless(server, "/endless", chunked=chunked)
    with Bounded() as bound:
        error = fetch_error(url)
    assert str(error) == "body exceeds max_body 1MiB"
    assert bound.seconds < 5
    assert bound.peak < 4 * MAX_BODY, f"peak {bound.peak} bytes"


@pytest.mark.parametrize("shape", ["many-lines", "one-long-line"])
def test_endless_headers_are_a_bounded_protocol_error(server: HostileServer, shape: str) -> None:
    async def headers(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n" + (b"X-Filler: " if shape == "one-long-line" else b""))
        for n in range(100_000):
            writer.write(b"X-Filler-%d: %s\r\n" % (n, b"a" * 100) if shape == "many-lines"
                         else b"a" * 1000)
            await writer.drain()

    url = server.route("/headers", headers)
    with Bounded() as bound:
        error = fetch_error(url)
    assert str(error).startswith("protocol error: ") and len(str(error)) <= 300
    assert bound.seconds < 3 and bound.peak < 2 * MAX_BODY, f"peak {bound.peak} bytes"


def test_lying_content_length_is_not_trusted(server: HostileServer) -> None:
    url = endless(server, "/liar", chunked=False, declared=1000)
    # The parser stops at the declared length: the body is what it declared, never more;
    # when the bytes after it arrive before the body is taken, the fetch is a protocol error
    # (aiohttp refuses data after a response it was told ends the connection).
    try:
        result = fetch(url)
    except FetchError as error:
        assert str(error) == "protocol error: Data after `Connection: close`"
    else:
        assert len(result.content) == 1000


def test_slow_drip_is_cut_at_the_total_deadline(server: HostileServer) -> None:
    url = slow_drip(server, "/drip", every=0.2)        # never idle long enough for a read timeout
    started = time.monotonic()
    error = fetch_error(url, timeout=1.5)
    elapsed = time.monotonic() - started
    assert str(error) == "timed out after 1.5s"
    assert 1.4 <= elapsed < 3.0


def test_invalid_gzip_is_a_clear_error(server: HostileServer) -> None:
    url = server.route("/bad", static(b"this is not gzip at all", Content_Encoding="gzip"))
    assert "cannot decode gzip body" in str(fetch_error(url))


def test_unknown_content_encoding_is_a_clear_error(server: HostileServer) -> None:
    url = server.route("/zz", static(b"\x00\x01", Content_Encoding="snappy"))
    assert str(fetch_error(url)) == "unsupported Content-Encoding 'snappy'"


# --------------------------------------------------------------------------- redirects

def test_redirect_loop_is_a_clear_error(server: HostileServer) -> None:
    server.route("/a", redirect(server.url("/b"), 302))
    url = server.route("/b", redirect("/a", 301))
    started = time.monotonic()
    error = fetch_error(url)
    assert str(error).startswith("redirect loop: ") and str(error).count("→") == 2
    assert time.monotonic() - started < 2 and server.hits["/b"] == 1


def test_more_than_five_redirects_is_a_clear_error(server: HostileServer) -> None:
    for i in range(7):
        server.route(f"/r{i}", redirect(f"/r{i + 1}", 302))
    server.route("/r7", static(FEED))
    error = fetch_error(server.url("/r0"))
    assert str(error).startswith("more than 5 redirects: ")
    assert server.hits["/r6"] == 0


def test_five_redirects_are_followed(server: HostileServer) -> None:
    for i in range(5):
        server.route(f"/h{i}", redirect(f"/h{i + 1}", 308))
    server.route("/h5", static(FEED))
    result = fetch(server.url("/h0"))
    assert result.content == FEED and result.url == server.url("/h5")
    assert result.permanent_redirect == server.url("/h5")


def test_permanent_chain_reports_the_final_url_a_302_does_not(server: HostileServer) -> None:
    server.route("/feed", static(FEED))
    server.route("/p2", redirect("/feed", 308))
    server.route("/p1", redirect(server.url("/p2"), 301))
    server.route("/t2", redirect("/feed", 302))
    server.route("/t1", redirect("/t2", 301))
    moved = fetch(server.url("/p1"))
    assert moved.permanent_redirect == server.url("/feed") == moved.url
    kept = fetch(server.url("/t1"))
    assert kept.permanent_redirect is None and kept.url == server.url("/feed")


def test_redirect_to_another_loopback_address_is_refused(server: HostileServer) -> None:
    # 127.0.0.2 is loopback on Linux too: serve there, and prove nothing reached it.
    with HostileServer(host="127.0.0.2") as other:
        target = other.route("/feed", static(FEED))
        url = server.route("/go", redirect(target, 302))
        error = fetch_error(url)
        assert str(error) == ("refused: 127.0.0.2 is a loopback address "
                              "(set poll.allow_private_networks to allow)")
        assert other.hits["/feed"] == 0
        # allow_private=True allows it, and the same redirect then works.
        assert fetch(url, allow_private=True).content == FEED


def test_redirect_to_another_scheme_is_refused(server: HostileServer) -> None:
    url = server.route("/file", redirect("file:///etc/passwd", 302))
    assert "only http and https are fetched" in str(fetch_error(url))


def test_private_first_url_is_refused_without_connecting(server: HostileServer) -> None:
    url = server.route("/feed", static(FEED))
    error = fetch_error(url, allow_private=False)
    assert str(error) == ("refused: 127.0.0.1 is a loopback address "
                          "(set poll.allow_private_networks to allow)")
    assert server.hits["/feed"] == 0


def test_names_are_checked_after_resolution_and_connected_by_checked_address(
        server: HostileServer) -> None:
    url = server.route("/feed", static(FEED))
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return {"feeds.example": ["10.0.0.5"], "rebind.example": ["93.184.215.14", "127.0.0.2"],
                "ok.example": ["127.0.0.1"]}[host]

    error = fetch_error(f"http://feeds.example:{server.port}/feed", resolver=resolver)
    assert str(error) == ("refused: feeds.example resolves to a private address 10.0.0.5 "
                          "(set poll.allow_private_networks to allow)")
    error = fetch_error(f"http://rebind.example:{server.port}/feed", resolver=resolver)
    assert "rebind.example resolves to a loopback address 127.0.0.2" in str(error)
    # A name the guard resolved is connected by that address, never resolved again.
    result = fetch(f"http://ok.example:{server.port}/feed", resolver=resolver)
    assert result.content == FEED and server.requests[-1].headers["host"].startswith("ok.example")
    assert asked == ["feeds.example", "rebind.example", "ok.example"]
    assert server.hits["/feed"] == 1 and url


def test_https_is_verified_against_the_name_while_connecting_to_the_checked_address() -> None:
    """The guard hands the client addresses; TLS still checks the certificate against the
    host name of the URL (SNI and verification), not against the address."""
    ca = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("feeds.example").configure_cert(served)
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with HostileServer(tls=served) as server:
        server.route("/feed", static(FEED))
        result = fetch(f"https://feeds.example:{server.port}/feed", resolver=resolver,
                       ssl_context=trusted)
        assert result.status == 200 and result.content == FEED
        assert server.requests[-1].headers["host"] == f"feeds.example:{server.port}"
        # The same server under another name: its certificate does not name that one.
        error = fetch_error(f"https://other.example:{server.port}/feed", resolver=resolver,
                            ssl_context=trusted)
        assert str(error).startswith("cannot connect: ") and "certificate" in str(error)
        # Nor is a certificate from an authority the fetcher does not trust accepted.
        error = fetch_error(f"https://feeds.example:{server.port}/feed", resolver=resolver)
        assert str(error).startswith("cannot connect: ") and "certificate" in str(error)
        assert server.hits["/feed"] == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed",
                                 "gopher://127.0.0.1/", "http:///nohost"])
def test_non_http_urls_are_refused(url: str) -> None:
    assert str(fetch_error(url)).startswith("refused: ")


def test_metadata_address_is_refused_even_by_name() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    error = fetch_error("http://metadata.google.internal/computeMetadata/v1/", resolver=resolver,
                        allow_private=False)
    assert "resolves to a cloud metadata address 169.254.169.254" in str(error)


# --------------------------------------------------------------------------- statuses, caching

def test_gone_and_other_statuses(server: HostileServer) -> None:
    gone = server.route("/gone", static(b"gone", 410))
    missing = server.url("/missing")
    error = fetch_error(gone)
    assert error.status == 410 and str(error) == "HTTP 410 Gone" and error.retry_after is None
    error = fetch_error(missing)
    assert error.status == 404 and str(error) == "HTTP 404 Not Found"


def test_retry_after_seconds_and_date(server: HostileServer) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    server.route("/429", static(b"", 429, Retry_After="120"))
    server.route("/503", static(b"", 503, Retry_After=later))
    server.route("/500", static(b"", 500, Retry_After="120"))
    assert fetch_error(server.url("/429")).retry_after == 120
    after = fetch_error(server.url("/503")).retry_after
    assert after is not None and 7100 < after <= 7200
    assert fetch_error(server.url("/500")).retry_after is None    # only on 429 and 503


def test_freshness_from_cache_control_and_expires(server: HostileServer) -> None:
    server.route("/cc", static(FEED, Cache_Control="public, max-age=3600", Age="600"))
    date = datetime.now(UTC)
    server.route("/exp", static(FEED, Date=format_datetime(date, usegmt=True),
                                Expires=format_datetime(date + timedelta(hours=2), usegmt=True)))
    server.route("/nostore", static(FEED, Cache_Control="no-store, max-age=3600"))
    assert fetch(server.url("/cc")).freshness == timedelta(seconds=3000)
    assert fetch(server.url("/exp")).freshness == timedelta(hours=2)
    assert fetch(server.url("/nostore")).freshness is None
    assert parse_freshness({"expires": "0"}) is None
    assert parse_freshness({"cache-control": "max-age=abc"}) is None


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "localhost"])
def test_odd_spellings_of_loopback_are_refused_after_resolution(host: str) -> None:
    error = fetch_error(f"http://{host}:9/feed", allow_private=False)
    assert str(error).startswith(f"refused: {host} resolves to a loopback address")


def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise OSError(f"cannot resolve {host}: Name or service not known")

    error = fetch_error("http://nowhere.example/feed", resolver=resolver)
    assert str(error) == "cannot connect: cannot resolve nowhere.example: Name or service not known"


def test_gzip_members_are_joined_and_trailing_garbage_ignored(server: HostileServer) -> None:
    half = len(FEED) // 2
    body = gzip.compress(FEED[:half]) + gzip.compress(FEED[half:]) + b"\0\0trailing junk"
    url = server.route("/members", static(body, Content_Encoding="gzip"))
    assert fetch(url).content == FEED
    raw = server.route("/deflate", static(zlib.compress(FEED)[2:-4], Content_Encoding="deflate"))
    assert fetch(raw).content == FEED


def test_connections_are_reused_per_host_and_idle_ones_stay_bounded() -> None:
    """A connection is kept for the requests that queue for its host (per_host=1 here; the
    host named in Unicode, as a feed URL may be), and idle connections do not pile up
    whatever the number of hosts."""
    hosts = [f"127.0.0.{i}" for i in range(2, 43)]   # the last one: for keep-alive
    opened: dict[str, int] = {}
    open_now = 0

    async def go() -> int:
        nonlocal open_now

        def serve(host: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                nonlocal open_now
                opened[host] = opened.get(host, 0) + 1
                open_now += 1
                try:
                    while await reader.readuntil(b"\r\n\r\n"):
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(FEED) + FEED)
                        await writer.drain()
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    open_now -= 1
                    writer.close()
            return handle

        servers = [await asyncio.start_server(serve(h), h, 0) for h in hosts]
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        many = [f"http://{h}:{p}/feed.xml" for h, p in zip(hosts[:-1], ports, strict=False)]
        single = f"http://Bücher.example:{ports[-1]}/feed.xml"

        async def resolver(host: str, port: int) -> list[str]:
            return {"xn--bcher-kva.example": [hosts[-1]]}[host]

        fetcher = Fetcher(timeout=timedelta(seconds=5), max_body=MAX_BODY, concurrency=8,
                          per_host=1, allow_private=[ipaddress.ip_network("127.0.0.0/8")],
                          resolver=resolver)
        try:
            for _ in range(3):
                results = await asyncio.gather(*(fetcher.fetch(u) for u in many))
                assert all(r.content == FEED for r in results)
            await asyncio.sleep(0.2)
            kept = open_now
            results = await asyncio.gather(*(fetcher.fetch(single) for _ in range(3)))
            assert all(r.content == FEED for r in results)
            return kept
        finally:
            await fetcher.aclose()
            for s in servers:
                s.close()

    kept = asyncio.run(go())
    assert kept <= 8, "idle connections kept: at most the concurrency"
    assert set(opened) == set(hosts)
    assert opened[hosts[-1]] == 1, "three requests queued for one host: one connection"


def test_requests_cancelled_while_queued_for_a_host_leave_no_count_behind(
        server: HostileServer) -> None:
    """The count of requests queued per host (what keeps a connection open) stays right when
    queued requests are cancelled, and is empty once nothing is queued."""
    url = slow_drip(server, "/drip", every=0.05)

    async def go(fetcher: Fetcher) -> tuple[int, dict[str, int]]:
        tasks = [asyncio.create_task(fetcher.fetch(url)) for _ in range(4)]
        await asyncio.sleep(0.3)          # one fetch reads the drip; three wait their turn
        queued = fetcher._waiting["127.0.0.1"]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return queued, dict(fetcher._waiting)

    queued, left = run(go, per_host=1)
    assert queued == 3 and left == {}


# --------------------------------------------------------------------------- cookies

def test_a_cookie_set_before_a_redirect_is_sent_after_it(server: HostileServer) -> None:
    """A host that sets a cookie (consent, bot check) and redirects gets it back."""
    feed_url = server.url("/feed")

    async def gate(request: Request, writer: asyncio.StreamWriter) -> None:
        await write_response(writer, 302, b"", {"Location": feed_url,
                                                "Set-Cookie": "passed=1; Path=/"})

    async def feed(request: Request, writer: asyncio.StreamWriter) -> None:
        if "passed=1" in request.headers.get("cookie", ""):
            await write_response(writer, 200, FEED, {"Content-Type": "application/rss+xml"})
        else:
            await write_response(writer, 403, b"no cookie", {"Content-Type": "text/plain"})

    server.route("/feed", feed)
    result = fetch(server.route("/gate", gate))
    assert result.status == 200 and result.content == FEED


def test_a_server_setting_a_new_cookie_each_time_cannot_grow_the_jar(
        server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.ingest import fetch as fetch_module

    monkeypatch.setattr(fetch_module, "MAX_COOKIES", 20)
    served = iter(range(10**6))

    async def crumbs(request: Request, writer: asyncio.StreamWriter) -> None:
        await write_response(writer, 200, FEED, {
            "Content-Type": "application/rss+xml",
            "Set-Cookie": f"crumb{next(served)}=x; Path=/; Max-Age=86400"})

    url = server.route("/crumbs", crumbs)

    async def many(fetcher: Fetcher) -> list[int]:
        sizes = []
        for _ in range(65):
            assert (await fetcher.fetch(url)).status == 200
            sizes.append(len(fetcher.cookies or ()))
        return sizes

    sizes = run(many)
    assert max(sizes) <= 20
    assert sizes[:20] == list(range(1, 21)), "below the cap every cookie is kept"
    assert server.hits["/crumbs"] == 65
