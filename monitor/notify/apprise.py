"""Other channels through Apprise URLs (Teams, Telegram, Discord, Matrix, ntfy, webhooks...).

Each URL gets the digest's subject and text. URLs are sent one by one and progress is recorded
after each (like Slack's parts), so a retry does not repeat the ones that already went out.
Apprise only says "failed", never why or for how long, so a digest is retried with back-off and
marked failed after ``max_attempts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import apprise

from monitor.config import Settings
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.notify import Job


class _Capture(logging.Handler):
    """Apprise logs the reason of a failure; keep its last line for our error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage().splitlines()[0][:200] if record.getMessage() else ""


class AppriseSender:
    def __init__(self, urls: list[str], max_attempts: int) -> None:
        self.urls = urls
        self.max_attempts = max_attempts

    def send(self, job: Job, on_part: Callable[[int], None]) -> None:
        for n in range(job.parts_sent, len(self.urls)):
            url = self.urls[n]
            scheme = url.split("://", 1)[0]
            notifier = apprise.Apprise()
            if not notifier.add(url):
                raise PermanentDeliveryError(f"Apprise cannot use the {scheme}:// URL")
            capture = _Capture()
            logger = logging.getLogger("apprise")
            logger.addHandler(capture)
            try:
                ok = notifier.notify(title=job.subject, body=job.body_text,
                                     body_format=apprise.NotifyFormat.TEXT)
            finally:
                logger.removeHandler(capture)
            if not ok:
                reason = f"Apprise {scheme}:// failed" + (f": {capture.last}" if capture.last
                                                          else "")
                if job.attempts >= self.max_attempts:
                    raise PermanentDeliveryError(f"{reason} ({job.attempts} attempts)")
                raise DeliveryError(reason)
            on_part(n + 1)


def for_watchlist(settings: Settings, watchlist: str,
                  clock: Callable[[], datetime]) -> AppriseSender:
    return AppriseSender(settings.apprise_urls_of(watchlist),
                         settings.channels.apprise.max_attempts)
