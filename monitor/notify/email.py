"""The email channel: multipart text + HTML alerts over SMTP (SPEC §6).

``smtp_url`` forms (user and password optional, percent-decoded)::

    smtp://[user:password@]host[:port]            plain SMTP, default port 25
    smtps://[user:password@]host[:port]           implicit TLS, default port 465
    smtp+starttls://[user:password@]host[:port]   STARTTLS required, default port 587

Query options, for the two TLS forms only:

``?cafile=/path/ca.pem``
    trust this CA (and only it) instead of the system store: private servers, tests.
``?verify=false``
    UNSAFE: no certificate or host name check at all, so anyone on the path can read
    the mail and the password. Only for throwaway setups.

Over ``smtp://`` a password travels in clear text; use it only on a trusted network.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jinja2
from markupsafe import Markup, escape

from monitor.notify import render
from monitor.notify.base import DeliveryError

SCHEMES = {"smtp": ("plain", 25), "smtps": ("tls", 465), "smtp+starttls": ("starttls", 587)}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9-]+")
_MARKED = re.compile(r"«([^«»]*)»")


# --------------------------------------------------------------------------- header hygiene

def header_text(value: object) -> str:
    """One header-safe line: control characters (CR, LF, NUL, line separators…) become
    spaces, runs of whitespace collapse."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in str(value or ""))
    return " ".join(text.split())


def message_id(alert_id: str) -> str:
    """The Message-ID of an alert: stable, so every retry of one alert carries the same."""
    local = _MSGID_UNSAFE.sub("-", str(alert_id)).strip(".") or "alert"
    return f"<{local}@pressmon>"


def list_id(channel: str) -> str:
    label = _LABEL_UNSAFE.sub("-", channel.lower()).strip("-") or "channel"
    return f"pressmon {label} <{label}.pressmon>"


# --------------------------------------------------------------------------- HTML

def marked(text: object) -> Markup:
    """Escape ``text``, then show the matches the snippet marks with « » in bold."""
    escaped = str(escape(str(text or "")))
    return Markup(_MARKED.sub(r"<strong>\1</strong>", escaped))


def unmarked(text: object) -> str:
    """The snippet without its « » match marks (for places that cannot show bold)."""
    return _MARKED.sub(r"\1", str(text or ""))


def web_url(url: object) -> str | None:
    """The URL when it is safe to link (http/https), else None: no javascript: links."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    return url if urlsplit(url).scheme.lower() in ("http", "https") else None


def when(value: object) -> str:
    """An ISO time from the payload as ``10 Jun 2024, 09:00 UTC``; other text unchanged."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("monitor.notify", "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(marked=marked, unmarked=unmarked, web_url=web_url, when=when,
                       one_line=render.one_line, source_name=render.source_name)
    env.globals["group_by_rule"] = render.group_by_rule
    return env


TEMPLATES = {"hit": "hit.html", "digest": "digest.html", "throttle": "throttle.html",
             "health": "health.html"}


def render_html(payload: dict[str, Any], *, channel: str,
                rendered: render.Rendered | None = None) -> str:
    """The HTML part; the template per alert type, ``other.html`` for types it does not know."""
    rendered = rendered or render.render(payload)
    template = environment().get_template(TEMPLATES.get(str(payload.get("type")), "other.html"))
    return template.render(p=payload, channel=channel, title=rendered.title, text=rendered.body)


# --------------------------------------------------------------------------- message

def build_message(payload: dict[str, Any], *, channel: str, sender: str, to: list[str],
                  subject_prefix: str, date: datetime | None = None) -> EmailMessage:
    """The full alert mail. Pure apart from ``date``, which defaults to now."""
    rendered = render.render(payload)
    alert_id = header_text(payload.get("id"))
    msg = EmailMessage()
    msg["Subject"] = header_text(f"{subject_prefix} {rendered.title}")
    msg["From"] = header_text(sender)
    msg["To"] = ", ".join(header_text(address) for address in to)
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = message_id(alert_id)
    msg["List-Id"] = list_id(channel)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Pressmon-Alert-Id"] = alert_id
    msg.set_content(rendered.body)
    msg.add_alternative(render_html(payload, channel=channel, rendered=rendered), subtype="html")
    return msg


# --------------------------------------------------------------------------- SMTP

@dataclass(frozen=True)
class SmtpTarget:
    mode: str                 # "plain" | "tls" | "starttls"
    host: str
    port: int
    username: str | None
    password: str | None
    cafile: str | None
    verify: bool

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse and check an ``smtp_url``. Errors never repeat the URL (it may hold a password)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("smtp_url is not a valid URL (bad port or brackets?)") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError("smtp_url must start with smtp://, smtps:// or smtp+starttls://")
    mode, default_port = SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError("smtp_url has no host")
    if port == 0:
        raise ValueError("smtp_url port must be between 1 and 65535")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("smtp_url takes no path or fragment: use scheme://user:pass@host:port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("smtp_url has a password but no user name")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"cafile", "verify"})
    if unknown:
        raise ValueError(f"smtp_url: unknown option(s) {', '.join(unknown)} "
                         "(known: cafile, verify)")
    verify_text = options.get("verify", "true").lower()
    if verify_text not in _TRUE | _FALSE:
        raise ValueError("smtp_url: verify must be true or false")
    verify = verify_text in _TRUE
    cafile = options.get("cafile") or None
    if mode == "plain" and ("cafile" in options or "verify" in options):
        raise ValueError("smtp_url: cafile and verify apply only to smtps:// and smtp+starttls://")
    if cafile and not verify:
        raise ValueError("smtp_url: give either cafile or verify=false, not both")
    return SmtpTarget(mode, parts.hostname, port or default_port, username, password, cafile, verify)


def tls_context(target: SmtpTarget) -> ssl.SSLContext:
    if not target.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=target.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"smtp_url: cannot load cafile {target.cafile}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def _check_address(field: str, value: str) -> None:
    if not value or header_text(value) != value.strip():
        raise ValueError(f"email {field} address is empty or contains control characters")
    addresses = [addr for _, addr in getaddresses([value])]
    if len(addresses) != 1 or "@" not in addresses[0]:
        raise ValueError(f"email {field} must be one address like name@example.org, got {value!r}")


class EmailChannel:
    def __init__(self, name: str, *, smtp_url: str, sender: str, to: list[str],
                 subject_prefix: str = "[pressmon]", timeout: float = 15.0) -> None:
        self.name = name
        self._target = parse_smtp_url(smtp_url)
        self._context = tls_context(self._target) if self._target.mode != "plain" else None
        _check_address("from", sender)
        if isinstance(to, str) or not to:
            raise ValueError("email to must be a non-empty list of addresses")
        for address in to:
            _check_address("to", address)
        if timeout <= 0:
            raise ValueError("email timeout must be positive")
        self._sender = sender
        self._to = list(to)
        self._subject_prefix = subject_prefix
        self._timeout = timeout

    def build(self, payload: dict[str, Any]) -> EmailMessage:
        return build_message(payload, channel=self.name, sender=self._sender, to=self._to,
                             subject_prefix=self._subject_prefix)

    async def send(self, payload: dict[str, Any]) -> None:
        message = self.build(payload)
        await asyncio.to_thread(self._deliver, message)

    async def aclose(self) -> None:
        return None   # one connection per alert: nothing kept open

    # -- blocking part, run in a thread ------------------------------------------------

    def _scrub(self, text: str) -> str:
        password = self._target.password
        return text.replace(password, "***") if password else text

    def _deliver(self, message: EmailMessage) -> None:
        target = self._target
        try:
            self._transmit(message)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            # The server's words are left out: some echo the (encoded) credentials.
            raise DeliveryError(f"SMTP {target.where}: authentication failed "
                                f"(code {exc.smtp_code})") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP {target.where}: "
                                f"{self._refused(exc.recipients)}") from None
        except smtplib.SMTPResponseException as exc:
            reason = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            raise DeliveryError(self._scrub(f"SMTP {target.where}: {exc.smtp_code} "
                                            f"{header_text(reason)}")) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"SMTP {target.where}: TLS certificate not trusted "
                                f"({exc.verify_message or exc.reason})") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"SMTP {target.where}: TLS failure ({exc.reason or exc})") from None
        except TimeoutError:
            raise DeliveryError(f"SMTP {target.where}: timed out") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(self._scrub(f"SMTP {target.where}: {type(exc).__name__}: "
                                            f"{header_text(exc)}")) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DeliveryError(f"SMTP {target.where}: cannot connect ({reason})") from None

    def _transmit(self, message: EmailMessage) -> None:
        target = self._target
        client: smtplib.SMTP
        if target.mode == "tls":
            client = smtplib.SMTP_SSL(target.host, target.port, timeout=self._timeout,
                                      context=self._context)
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=self._timeout)
        with client:
            client.ehlo()
            if target.mode == "starttls":
                if not client.has_extn("starttls"):
                    raise DeliveryError(f"SMTP {target.where}: server does not offer STARTTLS")
                client.starttls(context=self._context)
                client.ehlo()
            if target.username:
                if not client.has_extn("auth"):
                    raise DeliveryError(f"SMTP {target.where}: server does not offer AUTH"
                                        + (" (it may require TLS first)" if target.mode == "plain"
                                           else ""))
                client.login(target.username, target.password or "")
            refused = client.send_message(message)
        if refused:
            raise DeliveryError(f"SMTP {target.where}: {self._refused(refused)}")

    @staticmethod
    def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
        listed = ", ".join(f"{address} ({code})" for address, (code, _) in sorted(recipients.items()))
        return f"recipient(s) refused: {listed}"
