"""Slack delivery through an incoming webhook, Block Kit payloads.

Each webhook call has a total deadline (``channels.slack.timeout``), so a server that drips its
answer cannot hold the relay. Slack answers a delivered message with HTTP 200 and the body
``ok``; any other answer is a failure: an error code in the body (``invalid_payload``,
``no_text``...) is permanent, anything else (a captive portal's login page, a proxy's error page)
is retried with back-off.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from monitor.config import Settings
from monitor.deadline import Deadline, parse_retry_after
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.notify import Job

PERMANENT = {400, 401, 403, 404, 410}
SLACK_ERROR = re.compile(r"[a-z][a-z0-9_]{1,60}")  # invalid_payload, channel_not_found, ...


class _DeadlineBackend(httpcore.SyncBackend):
    """Every connection it opens is cut when the deadline passes."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        self.deadline.guard(stream.get_extra_info("socket"))
        return stream


class _Transport(httpx.HTTPTransport):
    def __init__(self, deadline: Deadline, proxy: str | None) -> None:
        super().__init__(trust_env=False)
        backend = _DeadlineBackend(deadline)
        if proxy is None:
            self._pool = httpcore.ConnectionPool(network_backend=backend)
        else:
            self._pool = httpcore.HTTPProxy(proxy_url=proxy, network_backend=backend)


def _proxy_for(url: str) -> str | None:
    """The proxy the standard environment variables name for this URL, if any."""
    env = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if env.get("no") and bypass(parts.hostname or "", env):
        return None
    proxy = env.get(parts.scheme.lower()) or env.get("all")
    return (proxy if "://" in proxy else f"http://{proxy}") if proxy else None


def _body(response: httpx.Response) -> str:
    text = response.content[:300].decode("utf-8", "replace")
    return " ".join(text.split())[:200]


def check_answer(status: int, body: str, retry_after: str | None, now: datetime) -> None:
    """Raise unless the answer says the message was posted (the decision, apart from I/O)."""
    if status == 429:
        wait = parse_retry_after(retry_after, now, default=30.0)
        raise DeliveryError(f"Slack 429 rate limited: retry after {wait:.0f}s", retry_after=wait)
    if status in PERMANENT:
        raise PermanentDeliveryError(f"Slack {status}: {body}")
    if status != 200:
        raise DeliveryError(f"Slack {status}: {body}")
    if body.strip() == "ok":
        return
    if SLACK_ERROR.fullmatch(body.strip()):
        raise PermanentDeliveryError(f"Slack refused the message: {body.strip()}")
    raise DeliveryError(f"Slack webhook answered 200 without 'ok' (a proxy or captive portal "
                        f"in the way?): {body[:120]!r}")


class SlackSender:
    def __init__(self, webhook_url: str, timeout: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.url = webhook_url
        self.timeout = timeout
        self.clock = clock

    def send(self, job: Job, on_part: Callable[[int], None]) -> None:
        """Post each message not yet posted; ``on_part(n)`` records that n are posted. The
        whole call, every part included, ends within ``timeout`` seconds."""
        messages = json.loads(job.slack_payload)
        with Deadline(self.timeout) as deadline, httpx.Client(
                transport=_Transport(deadline, _proxy_for(self.url)), trust_env=False,
                follow_redirects=False) as client:
            for n in range(job.parts_sent, len(messages)):
                if deadline.expired:
                    raise DeliveryError(f"Slack webhook: deadline of {self.timeout:g}s passed "
                                        f"after {n} of {len(messages)} messages")
                response = self._post(client, deadline, messages[n])
                check_answer(response.status_code, _body(response),
                             response.headers.get("retry-after"), self.clock())
                on_part(n + 1)

    def _post(self, client: httpx.Client, deadline: Deadline,
              message: dict[str, Any]) -> httpx.Response:
        try:
            return client.post(self.url, json=message,
                               timeout=httpx.Timeout(max(deadline.remaining(), 0.01)))
        except httpx.HTTPError as e:
            if deadline.expired:
                raise DeliveryError(f"Slack webhook: deadline of {self.timeout:g}s passed "
                                    f"({type(e).__name__})") from e
            reason = (str(e) or type(e).__name__).splitlines()[0][:200]
            raise DeliveryError(f"Slack webhook unreachable: {reason}") from e


def for_watchlist(settings: Settings, watchlist: str,
                  clock: Callable[[], datetime]) -> SlackSender:
    return SlackSender(settings.slack_webhook_of(watchlist), settings.channels.slack.timeout,
                       clock)
