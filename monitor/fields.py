"""Building blocks of the settings models, shared by the config and the watchlist schema:
the strict base section and the validators of URLs, addresses, durations and one-line text."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from monitor.schedule import MAX_DURATION, parse_duration

CHANNEL_NAMES = ("email", "slack", "apprise")
ChannelName = Literal["email", "slack", "apprise"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"only http and https URLs are allowed, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {value!r}")
    return value.strip()


def _email_address(value: str) -> str:
    if "@" not in value or any(c in value for c in "\r\n<>,; "):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _apprise_urls(urls: list[str]) -> list[str]:
    if not urls:
        return urls
    import apprise  # imported only when Apprise is configured: it loads many plugins

    for url in urls:
        if not apprise.Apprise().add(url):
            raise ValueError(f"not an Apprise URL it can use: {url.split('://')[0]}://...")
    return urls


def _duration_seconds(value: Any, maximum: timedelta = MAX_DURATION) -> float:
    return parse_duration(value, maximum).total_seconds()


def _sender(value: str) -> str:
    """A From address, bare or with a display name; no line breaks or control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"line breaks and control characters are not allowed: {value!r}")
    _name, address = parseaddr(value)
    if not address or "@" not in address or address != address.strip():
        raise ValueError(f"not an email address: {value!r}")
    return value


def _one_line(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"line breaks and control characters are not allowed: {value!r}")
    return value


Seconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]
