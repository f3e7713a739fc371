"""Logging: human-readable lines or JSON on stderr, with secrets masked everywhere.

Alerts themselves go to stdout (console channel); logs never carry a secret: every
value the configuration marks as one (webhook and Slack URLs, webhook secrets, SMTP
passwords, Apprise URLs, the database password) is replaced by ``***`` in every line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

MASK = "***"
_secrets: list[str] = []
_lock = threading.Lock()


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def set_secrets(values: Iterable[str]) -> None:
    """Values to mask from now on (longest first, so a URL is masked before its parts)."""
    with _lock:
        _secrets[:] = sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False))


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_Json())
    else:
        handler.setFormatter(_Redacting("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                        datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries speak at WARNING unless asked: their INFO lines are per request.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def first_line(exc: BaseException) -> str:
    """An exception in one line (database errors run to several, with the SQL)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
