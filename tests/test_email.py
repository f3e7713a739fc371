"""The email channel against a real SMTP server (aiosmtpd on loopback), with real TLS (trustme)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.match import Evidence, RuleHit
from monitor.notify.base import DeliveryError
from monitor.notify.email import EmailChannel, build_message, message_id, parse_smtp_url
from monitor.notify.payload import digest_payload, hit_payload, throttle_payload
from monitor.notify.render import render

T0 = datetime(2024, 6, 10, 9, 0, tzinfo=UTC)
SENDER = "pressmon@example.org"
TO = ["desk@example.org", "night@example.org"]
USER = "alerts"
PASSWORD = "s3cr:t@p/ss%w0rd"   # needs percent-encoding in the URL


# --------------------------------------------------------------------------- payloads

def make_hit(n: int, *, rule_id: str = "lakes", rule_name: str = "Lakes", priority: str = "normal",
             title: str | None = None, url: str | None = None) -> dict[str, Any]:
    snippet = f"…boats crossed «Lake Van» at dawn, item {n} <i>&</i> more…"
    hit = RuleHit(rule_id, (Evidence("lake van", "Lake Van", "summary", 14, 22),), snippet, 1.5)
    return hit_payload(
        alert_id=f"5f0c1a2e-0000-4000-8000-{n:012d}", rule_id=rule_id, rule_name=rule_name,
        priority=priority, article_id=n, title=title or f"Ferry timetable changes {n}",
        url=url if url is not None else f"https://news.example.test/ferries/{n}",
        feed_id="eastwire", feed_name="East Wire", published_at=T0 + timedelta(minutes=n),
        author="D. Ocak", summary="Summer ferries on the lake run twice a day.", hit=hit,
        entities={"GPE": ["Van", "Tatvan"]}, detected_at=T0 + timedelta(minutes=n + 1))


def make_digest() -> dict[str, Any]:
    hits = [make_hit(1, title="Dawn crossing resumes"),
            make_hit(2, rule_id="rivers", rule_name="Rivers", title="Tigris water level rises"),
            make_hit(3, title="New pier opens in Tatvan"),
            make_hit(4, rule_id="mountains", rule_name="Mountains", title="Snow on Süphan in June")]
    return digest_payload(alert_id="digest-2024-06-10", channel="editors", start=T0,
                          end=T0 + timedelta(days=1), hits=hits)


# --------------------------------------------------------------------------- SMTP server

@dataclass
class Mailbox:
    """What the SMTP server saw."""

    messages: list[bytes] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)   # mechanism, user, password
    refuse: set[str] = field(default_factory=set)

    def parsed(self, index: int = -1) -> EmailMessage:
        msg = email.message_from_bytes(self.messages[index], policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.original_content or envelope.content)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"

    def authenticator(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, user, password))
        # handled=False: let aiosmtpd answer 535 itself on failure.
        return AuthResult(success=(user, password) == (USER, PASSWORD), handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Tls:
    ca: trustme.CA
    cafile: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return Tls(ca, cafile, context)


StartServer = Callable[..., tuple[Mailbox, int]]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """Start aiosmtpd on 127.0.0.1 with the given options; returns (mailbox, port)."""
    controllers: list[Controller] = []

    def start(**options: Any) -> tuple[Mailbox, int]:
        box = Mailbox()
        port = free_port()
        if options.pop("auth", False):
            options["authenticator"] = box.authenticator
        controller = Controller(box, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return box, port

    yield start
    for controller in controllers:
        controller.stop()


def send(channel: EmailChannel, payload: dict[str, Any]) -> None:
    asyncio.run(channel.send(payload))


def channel(url: str, **kwargs: Any) -> EmailChannel:
    return EmailChannel("editors", smtp_url=url, sender=SENDER, to=kwargs.pop("to", TO), **kwargs)


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None and part.get_content_type() == "text/html"
    return part.get_content()


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None and part.get_content_type() == "text/plain"
    return part.get_content().replace("\r\n", "\n")   # CRLF is the canonical form on the wire


def strip_tags(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --------------------------------------------------------------------------- delivery

def test_plain_smtp_delivers_multipart_alert(smtp_server: StartServer) -> None:
    box, port = smtp_server()
    payload = make_hit(1, title="Ferry <b>timetable</b> & fares")
    send(channel(f"smtp://127.0.0.1:{port}"), payload)

    assert len(box.messages) == 1
    assert box.envelopes[0] == (SENDER, TO)
    msg = box.parsed()
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    rendered = render(payload)
    assert msg["Subject"] == f"[pressmon] {rendered.title}"
    assert text_part(msg).rstrip("\n") == rendered.body
    assert msg["From"] == SENDER
    assert [a.addr_spec for a in msg["To"].addresses] == TO
    assert msg["Date"].datetime is not None
    assert msg["Message-ID"] == f"<{payload['id']}@pressmon>"
    assert msg["List-Id"] == "pressmon editors <editors.pressmon>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Pressmon-Alert-Id"] == payload["id"]
    html = html_part(msg)
    assert '<a href="https://news.example.test/ferries/1"' in html
    assert "Ferry &lt;b&gt;timetable&lt;/b&gt; &amp; fares" in html
    assert "<strong>Lake Van</strong>" in html          # the snippet's «match» in bold
    assert "«" not in html and "&lt;i&gt;&amp;&lt;/i&gt;" in html


def test_smtps_with_private_ca(smtp_server: StartServer, tls: Tls) -> None:
    box, port = smtp_server(ssl_context=tls.server_context)
    send(channel(f"smtps://127.0.0.1:{port}?cafile={tls.cafile}"), make_hit(2))
    assert box.parsed()["Message-ID"] == f"<{make_hit(2)['id']}@pressmon>"


def test_smtps_rejects_untrusted_certificate(smtp_server: StartServer, tls: Tls) -> None:
    box, port = smtp_server(ssl_context=tls.server_context)
    with pytest.raises(DeliveryError, match="certificate"):
        send(channel(f"smtps://127.0.0.1:{port}"), make_hit(2))   # system CAs: not ours
    # verify=false (unsafe, documented) skips the check entirely.
    send(channel(f"smtps://127.0.0.1:{port}?verify=false"), make_hit(2))
    assert len(box.messages) == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_with_auth(smtp_server: StartServer, tls: Tls, mechanism: str) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    box, port = smtp_server(tls_context=tls.server_context, require_starttls=True, auth=True,
                            auth_require_tls=True, auth_required=True,
                            auth_exclude_mechanism=[other])
    url = f"smtp+starttls://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}?cafile={tls.cafile}"
    send(channel(url), make_hit(3))
    assert box.logins == [(mechanism, USER, PASSWORD)]   # percent-decoded on the way
    assert len(box.messages) == 1


def test_wrong_password_never_shows_the_password(smtp_server: StartServer, tls: Tls) -> None:
    box, port = smtp_server(tls_context=tls.server_context, require_starttls=True, auth=True,
                            auth_required=True)
    wrong = "Wr0ng-Horse-Battery"
    url = f"smtp+starttls://{USER}:{wrong}@127.0.0.1:{port}?cafile={tls.cafile}"
    with pytest.raises(DeliveryError) as caught:
        send(channel(url), make_hit(3))
    message = str(caught.value)
    assert "authentication failed" in message
    assert wrong not in message and url not in message and "Wr0ng" not in repr(caught.value)
    assert box.logins and box.logins[0][2] == wrong   # it really was tried, and refused
    assert box.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_over_plain_smtp_when_the_server_allows_it(smtp_server: StartServer) -> None:
    box, port = smtp_server(auth=True, auth_require_tls=False, auth_required=True)
    send(channel(f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"), make_hit(4))
    assert [login[1:] for login in box.logins] == [(USER, PASSWORD)]
    assert len(box.messages) == 1


def test_auth_refused_before_tls_is_an_error(smtp_server: StartServer) -> None:
    _, port = smtp_server(auth=True)   # aiosmtpd default: AUTH only after TLS
    with pytest.raises(DeliveryError, match="does not offer AUTH") as caught:
        send(channel(f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"), make_hit(4))
    assert PASSWORD not in str(caught.value)


def test_starttls_required_but_not_offered(smtp_server: StartServer, tls: Tls) -> None:
    box, port = smtp_server()
    with pytest.raises(DeliveryError, match="STARTTLS"):
        send(channel(f"smtp+starttls://127.0.0.1:{port}?cafile={tls.cafile}"), make_hit(5))
    assert box.messages == []


def test_refused_recipient_is_an_error(smtp_server: StartServer) -> None:
    box, port = smtp_server()
    box.refuse = {"night@example.org"}
    with pytest.raises(DeliveryError, match=r"night@example\.org \(550\)"):
        send(channel(f"smtp://127.0.0.1:{port}"), make_hit(6))
    box.refuse = set(TO)
    with pytest.raises(DeliveryError, match="refused"):
        send(channel(f"smtp://127.0.0.1:{port}"), make_hit(6))


def test_connection_refused() -> None:
    port = free_port()   # bound, then released: nothing listens there now
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{port}: cannot connect") as caught:
        send(channel(f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"), make_hit(7))
    assert PASSWORD not in str(caught.value) and USER not in str(caught.value)


def test_silent_server_times_out() -> None:
    with socket.socket() as listener:   # accepts TCP (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(DeliveryError, match="timed out"):
            send(channel(f"smtp://127.0.0.1:{port}", timeout=0.5), make_hit(8))


def test_retries_carry_the_same_message_id(smtp_server: StartServer) -> None:
    box, port = smtp_server()
    payload = make_hit(9)
    sender = channel(f"smtp://127.0.0.1:{port}")
    send(sender, payload)
    send(sender, payload)
    send(sender, make_hit(10))
    ids = [box.parsed(i)["Message-ID"] for i in range(3)]
    assert ids[0] == ids[1] == message_id(payload["id"]) == f"<{payload['id']}@pressmon>"
    assert ids[2] != ids[0]
    asyncio.run(sender.aclose())


def test_title_with_crlf_adds_no_header(smtp_server: StartServer) -> None:
    box, port = smtp_server()
    send(channel(f"smtp://127.0.0.1:{port}"),
         make_hit(11, title="Quiet day\r\nBcc: x@evil.example\r\n\r\nInjected body"))
    msg = box.parsed()
    assert box.envelopes[0][1] == TO
    assert "Bcc" not in msg and msg.get_all("Bcc") is None
    assert sorted(msg.keys()) == sorted([
        "Subject", "From", "To", "Date", "Message-ID", "List-Id", "Auto-Submitted",
        "X-Auto-Response-Suppress", "X-Pressmon-Alert-Id", "MIME-Version", "Content-Type"])
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
    assert "Bcc: x@evil.example" in msg["Subject"]   # kept as harmless subject text


def test_header_values_are_sanitised_at_every_entry() -> None:
    """Defence in depth: CR/LF from the prefix, channel name or alert id never reach a header."""
    payload = make_hit(12)
    payload["id"] = "abc\r\nBcc: y@evil.example"
    msg = build_message(payload, channel="ed\r\nitors\x00", sender=SENDER, to=TO,
                        subject_prefix="[p]\nX-Evil: 1\x07")
    raw = msg.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_all("Bcc") is None and parsed.get_all("X-Evil") is None
    for key, value in msg.items():
        assert not re.search(r"[\x00-\x1f\x7f]", str(value)), key
    assert parsed["Message-ID"] == "<abc-Bcc--y-evil.example@pressmon>"
    assert parsed["List-Id"] == "pressmon ed-itors <ed-itors.pressmon>"
    assert parsed["Subject"].startswith("[p] X-Evil: 1 ")


def test_html_escapes_article_text_and_links_only_web_urls() -> None:
    payload = make_hit(13, title="<script>alert(1)</script> Tom & Jerry", url="javascript:alert(2)")
    payload["article"]["author"] = '"><img src=x onerror=alert(3)>'
    html = html_part(build_message(payload, channel="editors", sender=SENDER, to=TO,
                                   subject_prefix="[pressmon]"))
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry" in html
    assert "javascript:" not in html          # shown as plain text? no: not a web URL, not linked
    assert "&#34;&gt;&lt;img src=x onerror=alert(3)&gt;" in html
    assert '<meta name="viewport"' in html and "max-width:640px" in html


def test_digest_groups_hits_by_rule(smtp_server: StartServer) -> None:
    box, port = smtp_server()
    payload = make_digest()
    send(channel(f"smtp://127.0.0.1:{port}"), payload)
    msg = box.parsed()
    assert msg["Subject"] == "[pressmon] Digest: 4 hits for 3 rules"
    assert msg["Message-ID"] == "<digest-2024-06-10@pressmon>"
    html = html_part(msg)
    headings = [strip_tags(h) for h in re.findall(r"<h2\b[^>]*>(.*?)</h2>", html, re.S)]
    assert headings == ["Lakes (2)", "Rivers (1)", "Mountains (1)"]
    # Each hit sits under its rule's heading: split the HTML at the headings.
    sections = [strip_tags(s) for s in re.split(r"<h2\b", html)[1:]]
    assert "Dawn crossing resumes" in sections[0] and "New pier opens in Tatvan" in sections[0]
    assert "Tigris water level rises" in sections[1] and "Tatvan" not in sections[1]
    assert "Snow on Süphan in June" in sections[2]
    assert text_part(msg).rstrip("\n") == render(payload).body


def test_throttle_and_health_emails() -> None:
    hits = [make_hit(20, title="First held back"), make_hit(21, title="Second <held> back")]
    throttle = throttle_payload(alert_id="thr-1", rule={"id": "lakes", "name": "Lakes"},
                                start=T0, end=T0 + timedelta(hours=1), hits=hits)
    msg = build_message(throttle, channel="editors", sender=SENDER, to=TO, subject_prefix="[pm]")
    assert msg["Subject"] == "[pm] and 2 more hits for Lakes"
    text = strip_tags(html_part(msg))
    assert "First held back" in text and "Second <held> back" in text
    assert "Second &lt;held&gt; back" in html_part(msg)

    health = {"type": "health", "version": 1, "id": "health-1",
              "feed": {"id": "eastwire", "name": "East Wire", "url": "https://eastwire.example/rss"},
              "problem": "failing", "since": "2024-06-10T09:00:00Z",
              "last_error": "HTTP 503 <Service Unavailable>"}
    msg = build_message(health, channel="ops", sender=SENDER, to=TO, subject_prefix="[pm]")
    assert msg["Subject"] == "[pm] Feed eastwire: failing"
    html = html_part(msg)
    assert "Feed East Wire is failing" in strip_tags(html)
    assert "HTTP 503 &lt;Service Unavailable&gt;" in html
    assert msg["List-Id"] == "pressmon ops <ops.pressmon>"


# --------------------------------------------------------------------------- configuration

def test_url_forms_and_defaults() -> None:
    assert parse_smtp_url("smtp://mail.example.org").port == 25
    assert parse_smtp_url("smtps://mail.example.org").port == 465
    target = parse_smtp_url(f"smtp+starttls://{USER}:{quote(PASSWORD, safe='')}@Mail.Example.org")
    assert (target.mode, target.host, target.port) == ("starttls", "mail.example.org", 587)
    assert (target.username, target.password) == (USER, PASSWORD)
    assert parse_smtp_url("smtps://h:2465?verify=false").verify is False


@pytest.mark.parametrize(("url", "complaint"), [
    ("http://mail.example.org", "must start with"),
    ("smtp://", "no host"),
    ("smtp://mail.example.org:99999", "not a valid URL"),
    ("smtp://mail.example.org/inbox", "no path"),
    ("smtps://mail.example.org?verfy=false", "unknown option"),
    ("smtps://mail.example.org?verify=maybe", "verify must be"),
    ("smtp://mail.example.org?verify=false", "apply only to"),
    ("smtps://mail.example.org?cafile=/nonexistent/ca.pem", "cannot load cafile"),
])
def test_bad_urls_are_rejected_without_echoing_secrets(url: str, complaint: str) -> None:
    secret_url = url.replace("://", f"://{USER}:{quote(PASSWORD, safe='')}@", 1)
    for candidate in (url, secret_url):
        with pytest.raises(ValueError, match=complaint) as caught:
            channel(candidate)
        assert PASSWORD not in str(caught.value) and quote(PASSWORD, safe="") not in str(caught.value)


def test_bad_addresses_are_rejected() -> None:
    with pytest.raises(ValueError, match="to must be"):
        channel("smtp://127.0.0.1", to=[])
    with pytest.raises(ValueError, match="control characters"):
        channel("smtp://127.0.0.1", to=["a@example.org\r\nBcc: b@example.org"])
    with pytest.raises(ValueError, match="one address"):
        EmailChannel("e", smtp_url="smtp://127.0.0.1", sender="not an address", to=TO)
