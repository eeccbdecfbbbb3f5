"""Delivery: claim queued digests (leases), hand each to its channel's sender, record the
outcome (sent, retried after ``decide.delivery_retry``, failed for good, sent with a warning).
Nothing a sender raises escapes: one digest's failure never holds back another's."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import decide, notify
from monitor.config import Settings
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.store import outbox
from monitor.store.outbox import DigestJob
from monitor.urls import redact

log = logging.getLogger("monitor")

DIGEST_LEASE = timedelta(minutes=5)


class Instance(Protocol):
    """What an orchestrator needs of the instance it works for (``service.Service``)."""

    settings: Settings
    sessions: sessionmaker[Session]
    channels: dict[str, list[str]]
    clock: Callable[[], datetime]
    owner: str
    stopping: threading.Event

    def reap(self) -> int: ...


@dataclass
class RelayReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Relay:
    def __init__(self, host: Instance,
                 senders: Mapping[str, notify.SenderFactory] | None = None) -> None:
        """``senders``: a sender factory per channel instead of the registry's (a seam for
        tests of the relay's bookkeeping; the senders themselves are tested on loopback)."""
        self.host = host
        self.senders = dict(senders or {})

    def relay(self, *, ignore_backoff: bool = False,
              only: set[int] | None = None) -> RelayReport:
        """Send queued digests: claim (lease), send, record. A crash between send and record
        leaves the lease to expire and that one digest is sent again: at most one repeat."""
        report = RelayReport()
        tried: set[int] = set()
        self.host.reap()
        while not self.host.stopping.is_set():
            with self.host.sessions.begin() as session:
                jobs = outbox.claim_digests(session, self.host.owner, self.host.clock(),
                                            DIGEST_LEASE, ignore_backoff=ignore_backoff,
                                            exclude=tried, only=only)
            if not jobs:
                break
            for job in jobs:
                tried.add(job.id)
                self._deliver(job, report)
        return report

    def _deliver(self, job: DigestJob, report: RelayReport) -> None:
        """Send one digest and record the outcome. Nothing a sender raises escapes: one
        digest's failure never holds back another's."""
        try:
            warning = self._send(job)
        except PermanentDeliveryError as e:
            self._failed(job, report, str(e))
            return
        except DeliveryError as e:
            self._retry(job, report, str(e), e.retry_after)
            return
        except SQLAlchemyError:  # the database, not the digest: the relay stops, the lease runs
            raise
        except Exception as e:  # a bug or an unforeseen answer: retried, never a stuck digest
            self._retry(job, report, f"internal error: {e!r}"[:500], None)
            return
        with self.host.sessions.begin() as session:
            outbox.mark_sent(session, job.id, self.host.owner, self.host.clock(), warning=warning)
        report.sent += 1
        if warning:
            report.errors.append(f"digest {job.id} ({job.watchlist}/{job.channel}): {warning}")
            log.warning("digest=%d watchlist=%s channel=%s status=sent warning=%r", job.id,
                        job.watchlist, job.channel, warning)
        else:
            log.info("digest=%d watchlist=%s channel=%s status=sent", job.id, job.watchlist,
                     job.channel)

    def _send(self, job: DigestJob) -> str | None:
        if job.channel not in self.host.channels.get(job.watchlist, []):
            raise DeliveryError(f"channel {job.channel} is not configured for watchlist "
                                f"{job.watchlist}")
        host = self.host
        factory = self.senders.get(job.channel)
        made = factory(host.settings, job.watchlist, host.clock) if factory is not None else \
            notify.sender(job.channel, host.settings, job.watchlist, host.clock)
        return made.send(job, self._part_recorder(job))

    def _failed(self, job: DigestJob, report: RelayReport, error: str) -> None:
        error = redact(error)
        with self.host.sessions.begin() as session:
            outbox.mark_failed(session, job.id, self.host.owner, error)
        report.failed += 1
        report.errors.append(f"digest {job.id} ({job.watchlist}/{job.channel}): {error}")
        log.error("digest=%d channel=%s status=failed error=%r", job.id, job.channel, error)

    def _retry(self, job: DigestJob, report: RelayReport, error: str,
               retry_after: float | None) -> None:
        error = redact(error)
        wait = decide.delivery_retry(job.attempts, retry_after)
        with self.host.sessions.begin() as session:
            outbox.mark_retry(session, job.id, self.host.owner, error,
                              self.host.clock() + timedelta(seconds=wait))
        report.retrying += 1
        report.errors.append(f"digest {job.id} ({job.watchlist}/{job.channel}): {error}")
        log.warning("digest=%d channel=%s status=retrying in=%.0fs error=%r", job.id,
                    job.channel, wait, error)

    def _part_recorder(self, job: DigestJob) -> Callable[[int], None]:
        def record(parts: int) -> None:
            with self.host.sessions.begin() as session:
                outbox.record_part(session, job.id, self.host.owner, parts)
        return record

    def resend(self, digest_id: int) -> RelayReport | None:
        """Send a failed (or sent, but lost downstream) digest again, whole; None when there
        is no such digest or it is still queued."""
        with self.host.sessions.begin() as session:
            row = outbox.requeue(session, digest_id)
            if row is None:
                return None
            log.info("digest=%d status=requeued for re-send", digest_id)
        return self.relay(ignore_backoff=True, only={digest_id})
