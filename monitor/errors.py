"""One exception tree for the whole monitor.

::

    MonitorError                  anything the monitor expects and can explain in one line
    ├── ConfigError               the config is invalid; carries every problem (file, key, message)
    ├── StorageError              the database cannot be reached or used
    │   └── AlreadyRunning        another daemon holds the SQLite database
    ├── FetchError                a feed or page could not be fetched (stored on the feed)
    │   ├── BlockedAddress        the URL (or a redirect hop) points at a refused address or scheme
    │   ├── TooLarge              the body passed the byte cap, or too many content encodings
    │   └── RetryLater            the server asked us to come back later (429/503 Retry-After)
    ├── FeedError                 the bytes are not a feed we can parse (or are hostile XML)
    └── DeliveryError             a digest could not be delivered
        └── PermanentDeliveryError  retrying will not help (SMTP 5xx, Slack 400/404/410)

Expected failures (a feed is down) are values or these exceptions, recorded and logged; anything
else is a bug and crashes loudly. Only ``cli.py`` turns them into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base of every error the monitor expects; ``str(e)`` is a one-line message for a user."""


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class ConfigError(MonitorError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StorageError(MonitorError):
    pass


class AlreadyRunning(StorageError):
    pass


class FetchError(MonitorError):
    pass


class BlockedAddress(FetchError):
    pass


class TooLarge(FetchError):
    pass


class RetryLater(FetchError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FeedError(MonitorError):
    pass


class DeliveryError(MonitorError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass
