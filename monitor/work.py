"""Parsing and extraction in worker processes, bounded in time and memory.

feedparser and trafilatura run on documents written by strangers. A pathological page can take
seconds of CPU or gigabytes of memory, and a thread cannot be stopped. So both run in a small pool
of worker processes (pebble): each task has a deadline after which its worker is killed and
replaced, and each worker has an address-space limit (``RLIMIT_AS``), so the worst a poisoned
document can do is fail on its own. The daemon itself never parses untrusted markup.

Workers start from a fork server that has already imported the parsers, so replacing one is
cheap, and they are recycled after ``MAX_TASKS`` tasks so slow leaks cannot accumulate.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import TypeVar

from pebble import ProcessExpired, ProcessPool

from monitor.errors import FeedError
from monitor.extract import extract_text
from monitor.feeds import ParsedFeed, parse

log = logging.getLogger("monitor")
T = TypeVar("T")
MAX_TASKS = 200
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["monitor.work"])


class ExtractFailed(Exception):
    """Extraction was stopped (deadline, memory limit); the message says which."""


def _limit_memory(max_bytes: int) -> None:  # runs in each worker as it starts
    if max_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def _parse(body: bytes, url: str, now: datetime, content_type: str) -> ParsedFeed:
    return parse(body, url, now, content_type)


def _extract(html: bytes, url: str) -> str:
    return extract_text(html, url)


class DocumentWorkers:
    """Thread-safe front of the pool; started on first use, closed with ``close``."""

    def __init__(self, *, processes: int, timeout: float, memory_mib: int) -> None:
        self.processes = processes or os.cpu_count() or 1
        self.timeout = timeout
        self.memory_mib = memory_mib
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPool:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPool(
                    max_workers=self.processes, max_tasks=MAX_TASKS,
                    initializer=_limit_memory, initargs=(self.memory_mib * 1024 * 1024,),
                    context=_CONTEXT,
                )
            return self._pool

    def close(self) -> None:
        with self._lock:
            self._discard()

    def _discard(self, broken: ProcessPool | None = None) -> None:
        """Stop the pool (only if it is still ``broken``, when given); caller holds the lock."""
        if self._pool is not None and (broken is None or self._pool is broken):
            self._pool.stop()  # type: ignore[no-untyped-call]
            self._pool.join(timeout=10)
            self._pool = None

    def _run(self, function: Callable[..., T], args: tuple[object, ...]) -> T:
        """Run in a worker. A pool that broke (a worker killed while idle, a failed start) is
        replaced and the task tried once more, so one bad event never stops all parsing."""
        for attempt in (1, 2):
            pool = self._get_pool()
            try:
                return pool.schedule(function, args, timeout=self.timeout).result()
            except RuntimeError as e:  # pebble: "Unexpected error within the Pool"
                if isinstance(e, RecursionError) or "Pool" not in str(e) or attempt == 2:
                    raise
                log.warning("document workers broke (%s); starting new ones", e)
                with self._lock:
                    self._discard(pool)
        raise AssertionError("unreachable")

    def parse(self, body: bytes, url: str, now: datetime, content_type: str) -> ParsedFeed:
        """``feeds.parse`` in a worker; a ``FeedError`` when it fails or is stopped."""
        try:
            return self._run(_parse, (body, url, now, content_type))
        except FeedError:
            raise
        except (FutureTimeout, TimeoutError) as e:
            raise FeedError(f"not parsed: stopped after {self.timeout:g}s") from e
        except MemoryError as e:
            raise FeedError(f"not parsed: over the memory limit of {self.memory_mib} MiB") from e
        except ProcessExpired as e:
            raise FeedError(f"not parsed: the parser process died ({_died(e)})") from e
        except RecursionError as e:
            raise FeedError("not parsed: the document nests too deeply") from e
        except Exception as e:  # the parser's own bug on hostile input: this feed fails alone
            raise FeedError(f"not parsed: {type(e).__name__}: {str(e)[:200]}") from e

    def extract(self, html: bytes, url: str) -> str:
        """``extract.extract_text`` in a worker; ``ExtractFailed`` when it failed or stopped."""
        try:
            return self._run(_extract, (html, url))
        except (FutureTimeout, TimeoutError) as e:
            raise ExtractFailed(f"extraction stopped after {self.timeout:g}s") from e
        except MemoryError as e:
            raise ExtractFailed(f"extraction over the memory limit of {self.memory_mib} MiB") \
                from e
        except ProcessExpired as e:
            raise ExtractFailed(f"extraction process died ({_died(e)})") from e
        except Exception as e:  # the extractor's own bug: the entry keeps its feed text
            raise ExtractFailed(f"extraction failed: {type(e).__name__}: {str(e)[:200]}") from e


def _died(e: ProcessExpired) -> str:
    code = e.exitcode
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit code {code}"
