"""When alerts go out: throttle windows, digest periods, the status a new delivery starts in.

Pure functions of their arguments (the clock is passed in), so tests need no sleeping.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.config import DigestSettings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Anchor for digest periods: a Monday, so weekly digests fall on Mondays.
_ANCHOR_DAY = datetime(2024, 1, 1)
_IDS = uuid.UUID("6f1c2a8e-5d0b-4c1e-9a57-3b2f0e4d8c11")

PENDING, HELD, THROTTLED, FOLDED = "pending", "held", "throttled", "folded"


def window_start(when: datetime, period: timedelta) -> datetime:
    """Start of the fixed throttle window (aligned to the epoch) that contains ``when``."""
    count = (when - EPOCH) // period
    return EPOCH + count * period


def digest_boundary(now: datetime, digest: DigestSettings) -> datetime:
    """The latest end of a digest period at or before ``now``.

    Periods are counted in the channel's local wall-clock time from ``at`` (default
    midnight), so ``every: 1d, at: "08:00"`` ends every period at 08:00 local time,
    daylight saving or not.
    """
    zone = ZoneInfo(digest.timezone)
    hour, minute = (int(p) for p in (digest.at or "00:00").split(":"))
    anchor = datetime.combine(_ANCHOR_DAY.date(), time(hour, minute))
    local_now = now.astimezone(zone).replace(tzinfo=None)
    steps = (local_now - anchor) // digest.every
    boundary = (anchor + steps * digest.every).replace(tzinfo=zone).astimezone(UTC)
    # A wall-clock time skipped or repeated by a DST change can land a little after now.
    return boundary if boundary <= now else boundary - digest.every


def initial_status(*, throttled: bool, digest: bool, priority: str) -> str:
    """Where a new hit delivery starts: sent now, held for a digest, or held by the throttle."""
    if throttled:
        return THROTTLED
    if digest and priority != "high":
        return HELD
    return PENDING


def folded_id(kind: str, *parts: object) -> str:
    """A deterministic alert id for a digest or summary: the same inputs, the same id."""
    return str(uuid.uuid5(_IDS, ":".join([kind, *(str(p) for p in parts)])))
