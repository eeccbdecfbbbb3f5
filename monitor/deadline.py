"""Time limits shared by the fetcher and the senders.

A socket timeout bounds each read, not the exchange: a server that drips a byte every few
seconds holds a connection for ever. ``Deadline`` bounds the whole exchange instead: every socket
it guards is shut down when the time is up, which makes the blocked read or write fail at once.
One watchdog thread serves every deadline of the process.

``parse_retry_after`` reads a ``Retry-After`` header (seconds or an HTTP date, RFC 9110) for
feeds and webhooks alike, clamped to sane bounds so that no answer can overflow a date.
"""

from __future__ import annotations

import contextlib
import email.utils
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

RETRY_AFTER_BOUNDS = (1.0, 86400.0)
RETRY_AFTER_DEFAULT = 60.0


def parse_retry_after(value: str | None, now: datetime, default: float = RETRY_AFTER_DEFAULT
                      ) -> float:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), within
    ``RETRY_AFTER_BOUNDS``; ``default`` when the header is missing or unreadable."""
    low, high = RETRY_AFTER_BOUNDS
    value = (value or "").strip()[:100]
    if not value:
        return default
    seconds: float
    if value.isascii() and value.isdigit():
        seconds = float(value[:12])
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            seconds = (when - now).total_seconds()
        except OverflowError:
            return high
    if not math.isfinite(seconds):
        return default
    return min(max(seconds, low), high)


class Watchdog:
    """Calls each registered ``cut`` once its time has come, unless cancelled before."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int]] = []  # (monotonic deadline, token), a heap
        self._cuts: dict[int, Callable[[], None]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, cut: Callable[[], None], seconds: float) -> int:
        with self._wake:
            token = next(self._tokens)
            self._cuts[token] = cut
            heapq.heappush(self._due, (time.monotonic() + max(seconds, 0.0), token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="deadline-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._due[0][1] == token:  # the earliest deadline now
                self._wake.notify()
        return token

    def cancel(self, token: int | None) -> None:
        if token is not None:
            with self._wake:
                self._cuts.pop(token, None)

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._due and self._due[0][1] not in self._cuts:
                    heapq.heappop(self._due)  # finished in time
                if not self._due:
                    self._wake.wait()
                    continue
                deadline, token = self._due[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._due)
                with contextlib.suppress(OSError):
                    self._cuts.pop(token)()


WATCHDOG = Watchdog()


def shutdown_of(sock: socket.socket) -> Callable[[], None]:
    return lambda: sock.shutdown(socket.SHUT_RDWR)


class Deadline:
    """A total time limit for one exchange over any number of sockets (``guard`` each one as
    it connects). A guarded socket may be wrapped in TLS later: the deadline holds its own
    duplicate of the descriptor, and shutting that down ends the shared connection."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._held: list[tuple[int, socket.socket]] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def guard(self, sock: socket.socket) -> None:
        dup = socket.socket(fileno=os.dup(sock.fileno()))
        token = WATCHDOG.watch(shutdown_of(dup), self.remaining())
        with self._lock:
            self._held.append((token, dup))

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        for token, dup in held:
            WATCHDOG.cancel(token)
            dup.close()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
