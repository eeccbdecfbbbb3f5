"""Delivery channels. Each sends one rendered digest and raises DeliveryError (retry later) or
PermanentDeliveryError (retrying will not help); the relay (``relay.py``) records the outcome.
A send that went out with a part refused (an SMTP recipient) returns a warning instead.

Channels are a registry: each module here has ``for_watchlist(settings, watchlist, clock)``
returning a ``Sender``; ``CHANNELS`` names the module of each channel. Adding a channel is one
module here, one line in ``CHANNELS``, and its section in ``config.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from monitor.config import Settings

CHANNELS = {"email": "monitor.notify.email", "slack": "monitor.notify.slack",
            "apprise": "monitor.notify.apprise"}  # imported when a digest goes out on them


class Job(Protocol):
    """What a sender needs of a digest (``store.outbox.DigestJob`` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def watchlist(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body_text(self) -> str: ...
    @property
    def body_html(self) -> str: ...
    @property
    def slack_payload(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def parts_sent(self) -> int: ...


class Sender(Protocol):
    def send(self, job: Job, on_part: Callable[[int], None]) -> str | None:
        """Deliver ``job``; ``on_part(n)``: the first n parts are delivered (for channels that
        send in parts, so a retry does not repeat them). Returns a warning, or None."""
        ...


SenderFactory = Callable[["Settings", str, Callable[[], datetime]], Sender]


def sender(channel: str, settings: Settings, watchlist: str,
           clock: Callable[[], datetime]) -> Sender:
    """The sender of ``channel`` for one watchlist's digests."""
    module = importlib.import_module(CHANNELS[channel])
    made: Sender = module.for_watchlist(settings, watchlist, clock)
    return made
