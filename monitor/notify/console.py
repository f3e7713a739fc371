"""The console channel: one readable line per alert on standard output, plus the snippet."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from monitor.notify.render import render


def format_alert(payload: dict[str, Any]) -> str:
    if payload.get("type") != "hit":
        rendered = render(payload)
        body = "\n".join(f"    {line}" if line else "" for line in rendered.body.splitlines())
        return f"# {rendered.title}\n{body}"
    rule = payload["rule"]
    article = payload["article"]
    flag = "!" if rule.get("priority") == "high" else "*"
    source = article["source"].get("name") or article["source"].get("id")
    when = article.get("published_at") or payload.get("detected_at") or ""
    line = f"{flag} [{rule['id']}] {article['title']} — {source} {when}".rstrip()
    parts = [line]
    if article.get("url"):
        parts.append(f"    {article['url']}")
    if payload.get("snippet"):
        parts.append(f"    {payload['snippet']}")
    return "\n".join(parts)


class ConsoleChannel:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def send(self, payload: dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        stream.write(format_alert(payload) + "\n")
        stream.flush()

    async def aclose(self) -> None:
        return None
