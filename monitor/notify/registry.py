"""Channels from configuration: one place that knows every channel type."""

from __future__ import annotations

from typing import TextIO

from monitor import config
from monitor.config import Settings
from monitor.notify.base import Channel
from monitor.notify.outbox import RetryPolicy


def build_channel(name: str, settings: config.AnyChannel, *, console: TextIO | None = None
                  ) -> Channel:
    timeout = settings.timeout.total_seconds()
    if isinstance(settings, config.ConsoleChannel):
        from monitor.notify.console import ConsoleChannel
        return ConsoleChannel(name, console)
    if isinstance(settings, config.WebhookChannel):
        from monitor.notify.webhook import WebhookChannel
        return WebhookChannel(name, url=settings.url, secret=settings.secret, timeout=timeout,
                              headers=settings.headers)
    if isinstance(settings, config.SlackChannel):
        from monitor.notify.slack import SlackChannel
        return SlackChannel(name, webhook_url=settings.webhook_url, timeout=timeout)
    if isinstance(settings, config.EmailChannel):
        from monitor.notify.email import EmailChannel
        return EmailChannel(name, smtp_url=settings.smtp_url, sender=settings.from_,
                            to=list(settings.to), subject_prefix=settings.subject_prefix,
                            timeout=timeout)
    from monitor.notify.apprise import AppriseChannel
    return AppriseChannel(name, url=settings.url, timeout=timeout)


def build_channels(settings: Settings, *, console: TextIO | None = None) -> dict[str, Channel]:
    return {name: build_channel(name, c, console=console) for name, c in settings.channels.items()}


def retry_policies(settings: Settings) -> dict[str, RetryPolicy]:
    return {name: RetryPolicy(max_attempts=c.max_attempts, max_age=c.max_age)
            for name, c in settings.channels.items()}
