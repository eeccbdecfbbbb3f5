"""A progress line on standard error for long commands, only when it is a terminal. A log line
written meanwhile to the same terminal first clears the progress line (which is drawn again at
the next step), so the two never run into each other."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() and total > 0
        self.done = 0
        self._shown = 0.0
        self._drawn = False
        self._handlers: list[logging.Handler] = []
        if self.enabled:
            for handler in logging.getLogger().handlers:
                if getattr(handler, "stream", None) is self.stream:
                    handler.addFilter(self._clear)
                    self._handlers.append(handler)

    def _clear(self, record: logging.LogRecord) -> bool:
        """A logging filter: wipe the progress line before the record is written."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False
            self._shown = 0.0  # draw it again at the next step
        return True

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._shown > 0.1 or self.done >= self.total):
            self._shown = now
            width = 30
            filled = min(width, width * self.done // self.total)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total}")
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        for handler in self._handlers:
            handler.removeFilter(self._clear)
        self._handlers = []
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
