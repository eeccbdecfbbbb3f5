"""Slack delivery through an incoming webhook (slack-sdk's WebhookClient), Block Kit payloads."""

from __future__ import annotations

import json
from collections.abc import Callable

from slack_sdk.webhook import WebhookClient

from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.store.outbox import DigestJob

PERMANENT = {400, 401, 403, 404, 410}


class SlackSender:
    def __init__(self, webhook_url: str, timeout: float) -> None:
        self.client = WebhookClient(webhook_url, timeout=max(int(timeout), 1))

    def send(self, job: DigestJob, on_part: Callable[[int], None]) -> None:
        """Post each message not yet posted; ``on_part(n)`` records that n are posted."""
        messages = json.loads(job.slack_payload)
        for n in range(job.parts_sent, len(messages)):
            try:
                response = self.client.send_dict(messages[n])
            except OSError as e:
                raise DeliveryError(f"Slack webhook unreachable: {e}") from e
            status, body = response.status_code, (response.body or "")[:200]
            if status == 429:
                retry = response.headers.get("Retry-After") or response.headers.get("retry-after")
                wait = float(retry[0] if isinstance(retry, list) else retry or 30)
                raise DeliveryError(f"Slack 429 rate limited: retry after {wait:.0f}s",
                                    retry_after=wait)
            if status in PERMANENT:
                raise PermanentDeliveryError(f"Slack {status}: {body}")
            if status != 200:
                raise DeliveryError(f"Slack {status}: {body}")
            on_part(n + 1)
