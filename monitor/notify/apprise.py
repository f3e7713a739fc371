"""The Apprise channel: one Apprise URL (Telegram, Teams, ntfy, Discord…), plain-text alerts.

Title and body are the shared plain-text rendering (``render.render``). Apprise URLs nearly
always carry tokens, so no message raised here repeats the URL or Apprise's own log lines;
Apprise itself logs through the ``apprise`` logger with its secure logging (tokens masked).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import apprise

from monitor.notify import render
from monitor.notify.base import DeliveryError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_MIN_SECRET = 8


class _Redact(logging.Filter):
    """Masks the configured URLs' secret parts in the ``apprise`` logger's records: Apprise
    masks most tokens itself, but logs some unparseable URLs verbatim."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:   # noqa: BLE001 - a broken record is logging's business
            return True
        masked = text
        for secret in sorted(self.secrets, key=len, reverse=True):
            masked = masked.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, ()
        return True


_REDACT = _Redact()
logging.getLogger("apprise").addFilter(_REDACT)


def secret_parts(url: str) -> set[str]:
    """What of an Apprise URL must not reach a log: everything after ``scheme://``, the
    password, and path segments and query values long enough to be tokens."""
    url = url.strip()
    found = _SCHEME.match(url)
    parts = {url[found.end():] if found else url}
    try:
        split = urlsplit(url)
        password = split.password
    except ValueError:
        return {p for p in parts if p}
    candidates = [password or "", *split.path.split("/"),
                  *(value for piece in split.query.split("&") for value in piece.split("=")[1:])]
    for candidate in candidates:
        parts |= {candidate, unquote(candidate)}
    # Short strings would mask half of every log line; a short password stays a weak one.
    return {p for p in parts if len(p) >= _MIN_SECRET or (p == password and len(p) >= 4)}


def scheme_of(url: str) -> str:
    """Just the ``scheme://`` of a URL, safe to show; never anything after it."""
    found = _SCHEME.match(url.strip())
    return f"{found.group(1).lower()}://" if found else "(no scheme://)"


def notify_type(payload: dict[str, Any]) -> apprise.NotifyType:
    kind = payload.get("type")
    if kind == "health":
        return apprise.NotifyType.SUCCESS if payload.get("problem") == "recovered" \
            else apprise.NotifyType.FAILURE
    if kind == "hit" and (payload.get("rule") or {}).get("priority") == "high":
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


class AppriseChannel:
    def __init__(self, name: str, *, url: str, timeout: float = 15.0) -> None:
        self.name = name
        if timeout <= 0:
            raise ValueError("apprise timeout must be positive")
        self._timeout = timeout
        _REDACT.secrets |= secret_parts(url)
        asset = apprise.AppriseAsset(secure_logging=True)
        try:
            service = apprise.Apprise.instantiate(url.strip(), asset=asset)
        except Exception:   # noqa: BLE001 - a plugin may raise anything on odd input
            service = None
        if service is None:
            raise ValueError(f"not a valid Apprise URL ({scheme_of(url)}…): check the scheme "
                             "and the tokens against the Apprise documentation") from None
        self._service_name = str(service.service_name)
        self._apprise = apprise.Apprise(asset=asset)
        self._apprise.add(service)

    async def send(self, payload: dict[str, Any]) -> None:
        rendered = render.render(payload)
        where = f"Apprise {self._service_name}"
        try:
            result = await self._apprise.async_notify(
                body=rendered.body, title=rendered.title, notify_type=notify_type(payload),
                body_format=apprise.NotifyFormat.TEXT, timeout=self._timeout)
        except Exception as exc:   # noqa: BLE001 - its text may hold the URL: name the type only
            raise DeliveryError(f"{where}: {type(exc).__name__}") from None
        try:
            if not result:
                status = result.status.name.lower()
                raise DeliveryError(f"{where}: {'timed out' if status == 'timeout' else status}")
        finally:
            result.close()

    async def aclose(self) -> None:
        self._apprise.clear()
