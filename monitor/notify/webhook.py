"""The webhook channel: JSON POST signed per the Standard Webhooks spec when a secret is set."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from monitor import __version__
from monitor.ingest.fetch import parse_retry_after
from monitor.notify.base import DeliveryError

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """Standard Webhooks secrets are base64, optionally prefixed ``whsec_``."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret must be base64, optionally prefixed 'whsec_' "
                         "(generate one with: openssl rand -base64 32)") from None
    if len(key) < 16:
        raise ValueError("secret is too short: use at least 16 random bytes (24 base64 characters)")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookChannel:
    def __init__(self, name: str, *, url: str, secret: str | None, timeout: float,
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self._url = url
        self._key = decode_secret(secret) if secret else None
        self._headers = dict(headers or {})
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         headers={"User-Agent": f"pressmon/{__version__}"})

    async def send(self, payload: dict[str, Any]) -> None:
        body = encode(payload)
        headers = {**self._headers, "Content-Type": "application/json"}
        msg_id = str(payload["id"])
        if self._key is not None:
            timestamp = int(time.time())
            headers.update({"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                            "webhook-signature": sign(self._key, msg_id, timestamp, body)})
        else:
            headers["webhook-id"] = msg_id
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError("timed out") from None
        except httpx.HTTPError as exc:
            # Never echo the URL: webhook URLs often carry tokens.
            raise DeliveryError(f"{type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                f"HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("retry-after")))

    async def aclose(self) -> None:
        await self._client.aclose()
