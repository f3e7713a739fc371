"""Channels from configuration: one place that knows every channel type."""

from __future__ import annotations

from typing import TextIO

from monitor.config import ConsoleChannel as ConsoleConfig
from monitor.config import Settings
from monitor.config import WebhookChannel as WebhookConfig
from monitor.notify.base import Channel
from monitor.notify.console import ConsoleChannel
from monitor.notify.outbox import RetryPolicy
from monitor.notify.webhook import WebhookChannel


def build_channels(settings: Settings, *, console: TextIO | None = None) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for name, config in settings.channels.items():
        if isinstance(config, ConsoleConfig):
            channels[name] = ConsoleChannel(name, console)
        elif isinstance(config, WebhookConfig):
            channels[name] = WebhookChannel(name, url=config.url, secret=config.secret,
                                            timeout=config.timeout.total_seconds(),
                                            headers=config.headers)
    return channels


def retry_policies(settings: Settings) -> dict[str, RetryPolicy]:
    return {name: RetryPolicy(max_attempts=c.max_attempts, max_age=c.max_age)
            for name, c in settings.channels.items()}
