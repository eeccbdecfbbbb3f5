"""Delivery channels. Each sends one rendered digest and raises DeliveryError (retry later) or
PermanentDeliveryError (retrying will not help); the relay in ``service.py`` records the outcome.
A send that went out with a part refused (an SMTP recipient) returns a warning instead."""

from __future__ import annotations

from typing import Protocol


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
