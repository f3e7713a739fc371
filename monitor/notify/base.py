"""The one small interface every channel implements."""

from __future__ import annotations

from typing import Any, Protocol


class DeliveryError(Exception):
    """A send failed. ``retry_after`` (seconds) is the receiver's own wish, when it said one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Channel(Protocol):
    """Sends one alert. Raises DeliveryError on failure; must be safe to call again with
    the same alert (delivery is at least once; receivers deduplicate by ``payload["id"]``)."""

    name: str

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def aclose(self) -> None: ...
