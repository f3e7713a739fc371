"""Run an async job on demand, one run at a time, with kicks coalesced.

A kick while the job runs asks for exactly one more run after it, however many kicks
arrive: the daemon kicks polling when polls end and delivery when alerts appear, and also
on a timer, without ever running two claims or two delivery rounds side by side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Kicked:
    def __init__(self, job: Callable[[], Awaitable[object]], name: str) -> None:
        self._job = job
        self.name = name
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def kick(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        try:
            while True:
                self._again = False
                await self._job()
                if not self._again:
                    return
        except Exception:
            log.exception("%s crashed; will retry on the next tick", self.name)

    async def wait(self) -> None:
        """Until the current run (and any run it was kicked into) ends."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
