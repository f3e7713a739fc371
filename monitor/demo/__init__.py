"""`pressmon demo`: bundled sample feeds served on loopback, the daemon run on them.

The sample articles are invented (see feeds/README.md). Their dates are placeholders
filled in at serve time, so "new" items are always new and the old one always old.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import yaml

FEEDS_DIR = Path(__file__).resolve().parent / "feeds"
DEMO_FEEDS = {
    "caucasus-wire": ("caucasus-wire.xml", "Caucasus Wire (demo)"),
    "black-sea-business": ("black-sea-business.xml", "Black Sea Business Review (demo)"),
    "anatolia-sport-culture": ("anadolu-sport-and-culture.xml", "Anatolia Sport & Culture (demo)"),
}
_PLACEHOLDER = re.compile(r"\{\{(rfc822|rfc3339):-(\d+)([mhd])\}\}")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def rules_dir() -> Path:
    """The shipped example rules: inside the installed package, or config/rules in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "rules", package.parent.parent / "config" / "rules"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("example rules not found (monitor/demo/rules or config/rules)")


def render(template: str, now: datetime) -> bytes:
    """Fill the date placeholders, counting back from ``now``."""
    def repl(m: re.Match[str]) -> str:
        when = now - timedelta(**{_UNITS[m.group(3)]: int(m.group(2))})
        if m.group(1) == "rfc822":
            return format_datetime(when, usegmt=True)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    return _PLACEHOLDER.sub(repl, template).encode("utf-8")


def feed_documents() -> dict[str, bytes]:
    now = datetime.now(UTC)
    return {f"/{name}.xml": render((FEEDS_DIR / file).read_text(encoding="utf-8"), now)
            for name, (file, _title) in DEMO_FEEDS.items()}


def demo_config(folder: Path, port: int) -> Path:
    config = {
        "database": f"sqlite:///{folder / 'demo.db'}",
        "poll": {"interval": "30s", "min_interval": "10s", "timeout": "10s",
                 "allow_private_networks": ["127.0.0.1/32"]},
        "server": {"listen": "127.0.0.1:0"},
        "feeds": [{"id": name, "name": title, "url": f"http://127.0.0.1:{port}/{name}.xml"}
                  for name, (_file, title) in DEMO_FEEDS.items()],
        "rules": [str(rules_dir() / "*.yaml")],
        "channels": {"console": {"type": "console"}},
        "defaults": {"notify": ["console"]},
    }
    path = folder / "pressmon.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def run_demo(*, once: bool = False, port: int = 0) -> int:
    from monitor.config import load_settings
    from monitor.demo.server import FeedServer
    from monitor.service.daemon import Daemon

    with tempfile.TemporaryDirectory(prefix="pressmon-demo-") as tmp, \
            FeedServer(feed_documents(), port=port) as server:
        settings = load_settings(demo_config(Path(tmp), server.port))
        print(f"pressmon demo: {len(DEMO_FEEDS)} sample feeds on http://127.0.0.1:{server.port}/, "
              f"{len(settings.rules)} example rules from {rules_dir()}", file=sys.stderr)
        print("alerts appear below; the old and decoy articles must not alert"
              + ("" if once else " (Ctrl-C to stop)"), file=sys.stderr)
        daemon = Daemon(settings)
        return asyncio.run(daemon.run_once() if once else daemon.run())
