"""The SSRF guard on its own: which addresses are refused, how, and what an allowance allows."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from monitor.ingest.netguard import Guard, Refused, check_address, classify, parse_allowance

HINT = "(set poll.allow_private_networks to allow)"


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.0.0.2", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"), ("100.64.0.1", "carrier-grade NAT"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.2.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"), ("2002:0a00:0001::1", "private"),
])
def test_non_public_addresses_are_classified(address: str, kind: str) -> None:
    assert classify(ipaddress.ip_address(address)) == kind
    with pytest.raises(Refused, match=r"^refused: .* address"):
        check_address(address, False)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700::1111",
                                     "172.32.0.1", "100.128.0.1", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None
    check_address(address, False)


def test_messages_name_the_host_the_address_and_the_setting() -> None:
    with pytest.raises(Refused) as info:
        check_address("10.0.0.5", False, "feeds.example")
    assert str(info.value) == f"refused: feeds.example resolves to a private address 10.0.0.5 {HINT}"
    with pytest.raises(Refused) as info:
        check_address("169.254.169.254", False, "169.254.169.254")
    assert str(info.value) == f"refused: 169.254.169.254 is a cloud metadata address {HINT}"
    with pytest.raises(Refused) as info:
        check_address("100.64.0.1", False)
    assert str(info.value) == f"refused: 100.64.0.1 is a carrier-grade NAT address {HINT}"


def test_allowance_true_false_and_networks() -> None:
    assert parse_allowance(True) is True and parse_allowance(False) is False
    only = parse_allowance(["127.0.0.1/32", ipaddress.ip_network("10.0.0.0/8")])
    check_address("127.0.0.1", only)
    check_address("10.9.9.9", only)
    check_address("::ffff:127.0.0.1", only)          # the mapped form of an allowed address
    for address in ("127.0.0.2", "::1", "192.168.0.1", "169.254.169.254"):
        with pytest.raises(Refused):
            check_address(address, only)
    check_address("169.254.169.254", True)
    with pytest.raises(TypeError):
        parse_allowance("127.0.0.1/32")  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "message"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://[::1]:8080/feed", "::1 is a loopback address"),
    ("http://10.1.2.3/feed", "10.1.2.3 is a private address"),
    ("http://100.64.0.1/feed", "100.64.0.1 is a carrier-grade NAT address"),
    ("http://[fe80::1]/feed", "fe80::1 is a link-local address"),
    ("file:///etc/passwd", "only http and https are fetched"),
    ("javascript:alert(1)", "only http and https are fetched"),
    ("http://example.org:99999/", "invalid URL"),
])
def test_urls_are_checked_before_any_lookup(url: str, message: str) -> None:
    with pytest.raises(Refused, match=message):
        Guard.build(False).check_url(url)


def test_public_literal_url_passes() -> None:
    Guard.build(False).check_url("https://93.184.215.14/feed.xml")


def test_localhost_is_refused_after_resolution() -> None:
    with pytest.raises(Refused, match=r"^refused: localhost resolves to a loopback address"):
        asyncio.run(Guard.build(False).resolve("localhost", 80))
    assert "127.0.0.1" in asyncio.run(Guard.build(True).resolve("localhost", 80))


def test_every_resolved_address_must_pass() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "192.168.1.10"]

    guard = Guard.build(False, resolver)
    with pytest.raises(Refused, match="news.example resolves to a private address 192.168.1.10"):
        asyncio.run(guard.resolve("news.example", 443))

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    assert asyncio.run(Guard.build(False, public).resolve("news.example", 443)) == ["93.184.215.14"]
