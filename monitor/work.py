"""Parsing, extraction and analysis in worker processes, bounded in time and memory.

feedparser and trafilatura run on documents written by strangers. A pathological page can take
seconds of CPU or gigabytes of memory, and a thread cannot be stopped. So both run in a small pool
of worker processes (pebble): each task has a deadline after which its worker is killed and
replaced, and each worker has an address-space limit (``RLIMIT_AS``), so the worst a poisoned
document can do is fail on its own. The daemon itself never parses untrusted markup.

Workers start from a fork server that has already imported the parsers, so replacing one is
cheap, and they are recycled after ``MAX_TASKS`` tasks so slow leaks cannot accumulate.

A fetched page is analysed whole in one task: extracted, fingerprinted and matched against the
watchlists, so every CPU stage of an article runs on all cores and the daemon's own process
(one interpreter, one lock) only fetches and stores. Each worker builds its matcher from the
watchlists it was started with, at its first page; a reload with other watchlists starts new
workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pebble import ProcessExpired, ProcessPool

from monitor.dedup import Fingerprint, fingerprint
from monitor.errors import FeedError
from monitor.feeds import ParsedFeed, parse
from monitor.match import Matcher, Watchlist, WatchlistMatch
from monitor.memory import Every
from monitor.stories.features import Features, light
from monitor.words import index_words

log = logging.getLogger("monitor")
T = TypeVar("T")
MAX_TASKS = 1000
DESCRIBE_AT_ONCE = 8  # articles described in one task at most
_CONTEXT = multiprocessing.get_context("forkserver")
# The fork server loads the parsers and the story models once; every worker shares them. The
# extractor (trafilatura) is imported there, not here: the daemon's own process never runs it.
_MODELS = "monitor.stories.warm"
_CONTEXT.set_forkserver_preload(["monitor.work", "monitor.extract", _MODELS])


class ExtractFailed(Exception):
    """Extraction was stopped (deadline, memory limit); the message says which."""


@dataclass(frozen=True)
class Analysis:
    """An article's text and what is known of it: from its page, else the feed's summary."""

    text: str
    source: str  # page | summary | none
    error: str | None  # why the page's text was not used
    fingerprint: Fingerprint
    matches: list[WatchlistMatch]
    features: Features | None = None  # for stories; None when they could not be computed
    seconds: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # extract, fingerprint, match, features
    words: tuple[str, ...] = ()  # what the search index files it under (``words.index_words``)


def analyse(matcher: Matcher, title: str, text: str, source: str, error: str | None,
            describe: Callable[[str, str, tuple[str, ...]], Features | None] = light
            ) -> Analysis:
    """Fingerprint, match and describe a text whose source is settled: by default only its
    language (``stories.features.light``); the daemon asks for the full features (the
    sentence vector) only for an article that is no copy."""
    started = time.perf_counter()
    fp = fingerprint(text)
    words = tuple(index_words(title, text))  # timed with the fingerprint: both read the text
    fingerprinted = time.perf_counter()
    matches = matcher.match(title, text)
    matched = time.perf_counter()
    features = describe(title, text, entities(matches))
    return Analysis(text, source, error, fp, matches, features,
                    (0.0, fingerprinted - started, matched - fingerprinted,
                     time.perf_counter() - matched), words)


def entities(matches: Sequence[WatchlistMatch]) -> tuple[str, ...]:
    """The entities, terms and rules an article matched: names a story can share."""
    return tuple(dict.fromkeys(term for m in matches for term in m.terms))


_WATCHLISTS: tuple[Sequence[Watchlist], int] = ((), 240)
_MATCHER: Matcher | None = None


def _start(max_bytes: int, watchlists: Sequence[Watchlist], snippet_chars: int) -> None:
    """Runs in each worker as it starts: the memory limit, and the watchlists to match."""
    global _WATCHLISTS
    if max_bytes > 0:  # on top of what the fork server loaded (parsers, story models)
        limit = _address_space() + max_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _WATCHLISTS = (watchlists, snippet_chars)
    _load_models()
    with contextlib.suppress(Exception):  # the first page meets it again, and reports it
        _matcher()  # as the worker starts (0.1 s), not at its first page


_MODELS_PROBLEM: str | None = None


def _load_models() -> None:
    """The fork server skips a preload that fails to import, without a word, and its workers
    would then describe no article. A worker that finds the story models missing loads its own
    (more memory each, but stories work) and keeps the reason for ``_models``."""
    global _MODELS_PROBLEM
    if _MODELS in sys.modules:
        return
    try:
        __import__(_MODELS)
    except Exception as e:  # reported by the daemon at start-up; articles then start own stories
        _MODELS_PROBLEM = (f"the story models could not be loaded ({type(e).__name__}: "
                           f"{str(e)[:200]}); articles get no story features")
    else:
        _MODELS_PROBLEM = ("the fork server did not preload the story models; each worker "
                           "loaded its own, which costs memory in every worker")


def _models() -> str | None:
    """Run in a worker: why its story models are missing or its own, or None when shared."""
    return _MODELS_PROBLEM


def _address_space() -> int:
    """This process's address space in bytes now (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _matcher() -> Matcher:
    global _MATCHER
    if _MATCHER is None:
        _MATCHER = Matcher(*_WATCHLISTS)
    return _MATCHER


def _analyse(html: bytes, url: str, title: str, summary: str) -> Analysis:
    from monitor.extract import choose_text, extract_text

    started = time.perf_counter()
    text, source, error = choose_text(extract_text(html, url), summary)
    extracted = time.perf_counter()
    done = analyse(_matcher(), title, text, source, error)
    _tidy()
    return Analysis(done.text, source, error, done.fingerprint, done.matches, done.features,
                    (extracted - started, *done.seconds[1:]), done.words)


def _describe(items: list[tuple[str, str, tuple[str, ...], Features | None]]
              ) -> list[Features | str]:
    """The features of each article, or why they could not be had (a list fails as a whole
    only when the task is stopped or its worker dies: ``DocumentWorkers._describe_list``)."""
    from monitor.stories.features import extract, extract_many

    try:
        described: list[Features | str] = list(extract_many(items))
    except Exception:  # one article's fault: each alone, so that only it fails
        described = []
        for item in items:
            try:
                described.append(extract(*item))
            except Exception as e:
                described.append(f"{type(e).__name__}: {str(e)[:200]}")
    _tidy()
    return described


# what a worker freed goes back to the system every 16th page (glibc would keep 12 MiB of it)
_tidy = Every(16)


def _parse(body: bytes, url: str, now: datetime, content_type: str) -> ParsedFeed:
    return parse(body, url, now, content_type)


def _extract(html: bytes, url: str) -> str:
    from monitor.extract import extract_text

    return extract_text(html, url)


A = TypeVar("A")
R = TypeVar("R")


class _Slot(Generic[A, R]):
    def __init__(self, argument: A) -> None:
        self.argument = argument
        self.ready = threading.Event()  # its outcome is in, or it has a list to carry
        self.carry: list[_Slot[A, R]] | None = None  # the list handed to it, itself first
        self.result: R | None = None
        self.error: BaseException | None = None

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class Gathered(Generic[A, R]):
    """One-argument calls from many threads, made as calls of ``call`` on a list of arguments.

    Up to ``running`` lists are out at once; a call that comes while they are waits, with the
    others that come, for a list to finish: the first ``at_once`` waiting then go out as the
    next list, carried by the thread of the first of them. No call waits for company: with a
    list free, it goes at once, alone. A list that fails fails each of its calls."""

    def __init__(self, call: Callable[[list[A]], list[R]], running: int, at_once: int) -> None:
        self._call = call
        self._limit = max(running, 1)
        self._at_once = max(at_once, 1)
        self._lock = threading.Lock()
        self._waiting: list[_Slot[A, R]] = []
        self._running = 0

    def __call__(self, argument: A) -> R:
        slot: _Slot[A, R] = _Slot(argument)
        with self._lock:
            if self._running < self._limit:
                self._running += 1
                slot.carry = [slot]
            else:
                self._waiting.append(slot)
        if slot.carry is None:
            slot.ready.wait()  # (every list is handed on or ended in a ``finally``)
        if slot.carry is not None:
            self._send(slot.carry)
        return slot.outcome()

    def _send(self, batch: list[_Slot[A, R]]) -> None:
        """Call with the list, hand out the outcomes, and hand the next list (taken from the
        waiting, under the lock: no slot is handed two) to the first slot in it."""
        following: list[_Slot[A, R]] = []
        try:
            results = self._call([slot.argument for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} outcomes for {len(batch)} calls")
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except Exception as e:  # each call of the list fails, each with an error of its own
            for slot in batch:
                slot.error = RuntimeError(f"{type(e).__name__}: {e}") if slot is not batch[0] \
                    else e
        except BaseException:  # (KeyboardInterrupt, SystemExit): the carrier's alone
            for slot in batch[1:]:
                slot.error = RuntimeError("the list was interrupted")
            raise
        finally:
            with self._lock:
                following = self._waiting[:self._at_once]
                del self._waiting[:self._at_once]
                if following:
                    following[0].carry = following
                else:
                    self._running -= 1
            for slot in batch[1:]:
                slot.ready.set()
            if following:
                following[0].ready.set()


class DocumentWorkers:
    """Thread-safe front of the pool; started on first use, closed with ``close``."""

    def __init__(self, *, processes: int, timeout: float, memory_mib: int,
                 watchlists: Sequence[Watchlist] = (), snippet_chars: int = 240) -> None:
        self.processes = processes or os.cpu_count() or 1
        self.timeout = timeout
        self.memory_mib = memory_mib
        self.watchlists = tuple(watchlists)
        self.snippet_chars = snippet_chars
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()
        # sentence vectors of several articles at once cost less each (the encoder's weights
        # are read once for all): articles that come while every worker has a list wait for
        # the next list, a worker's worth at a time
        self._describing: Gathered[tuple[str, str, tuple[str, ...], Features | None],
                                   Features | str] = Gathered(self._describe_list,
                                                              self.processes, DESCRIBE_AT_ONCE)

    @property
    def spec(self) -> tuple[object, ...]:
        """What the workers are started with: equal specs, interchangeable workers."""
        return (self.processes, self.timeout, self.memory_mib, self.watchlists,
                self.snippet_chars)

    def _get_pool(self) -> ProcessPool:
        with self._lock:
            if self._pool is not None:
                return self._pool
            self._pool = pool = ProcessPool(
                max_workers=self.processes, max_tasks=MAX_TASKS,
                initializer=_start, initargs=(self.memory_mib * 1024 * 1024,
                                              self.watchlists, self.snippet_chars),
                context=_CONTEXT,
            )
        self._check_models(pool)
        return pool

    def _check_models(self, pool: ProcessPool) -> None:
        """Say once, as the workers start, when they lack the shared story models."""
        try:
            problem = pool.schedule(_models, timeout=self.timeout).result()
        except Exception as e:  # the task that follows meets the same fault and reports it
            log.warning("document workers: story models not checked: %s",
                        _reason(e, self.timeout))
            return
        if problem:
            log.error("document workers: %s", problem)

    def start(self) -> None:
        """Start the workers now (the fork server loads the parsers and models, a few seconds),
        so the first poll does not wait for them; they start at first use otherwise."""
        self._get_pool()

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
        return self._page(_extract, (html, url))

    def analyse(self, html: bytes, url: str, title: str, summary: str) -> Analysis:
        """A fetched page extracted, fingerprinted and matched in a worker (the summary stands
        in when the page has less text); ``ExtractFailed`` when extraction failed or stopped."""
        return self._page(_analyse, (html, url, title, summary))

    def describe(self, title: str, text: str, names: tuple[str, ...],
                 known: Features | None = None) -> Features | None:
        """``stories.features.extract`` in a worker (the models live there); None when it
        failed, and the article then starts a story of its own."""
        try:
            described = self._describing((title, text, names, known))
        except Exception as e:
            described = _reason(e, self.timeout)
        if isinstance(described, str):
            log.warning("story features not computed: %s", described)
            return None
        return described

    def _describe_list(self, items: list[tuple[str, str, tuple[str, ...], Features | None]]
                       ) -> list[Features | str]:
        """A list of articles described in one task; when the task fails as a whole (stopped,
        its worker killed), each article again alone, so that one bad article fails alone."""
        try:
            return self._run(_describe, (items,))
        except Exception as e:
            if len(items) == 1:
                return [_reason(e, self.timeout)]
        outcomes: list[Features | str] = []
        for item in items:
            try:
                outcomes += self._run(_describe, ([item],))
            except Exception as e:
                outcomes.append(_reason(e, self.timeout))
        return outcomes

    def _page(self, function: Callable[..., T], args: tuple[object, ...]) -> T:
        try:
            return self._run(function, args)
        except (FutureTimeout, TimeoutError) as e:
            raise ExtractFailed(f"extraction stopped after {self.timeout:g}s") from e
        except MemoryError as e:
            raise ExtractFailed(f"extraction over the memory limit of {self.memory_mib} MiB") \
                from e
        except ProcessExpired as e:
            raise ExtractFailed(f"extraction process died ({_died(e)})") from e
        except Exception as e:  # the extractor's own bug: the entry keeps its feed text
            raise ExtractFailed(f"extraction failed: {type(e).__name__}: {str(e)[:200]}") from e


def _reason(e: BaseException, timeout: float) -> str:
    if isinstance(e, FutureTimeout | TimeoutError):
        return f"stopped after {timeout:g}s"
    if isinstance(e, ProcessExpired):
        return f"the process died ({_died(e)})"
    return f"{type(e).__name__}: {str(e)[:200]}"


def _died(e: ProcessExpired) -> str:
    code = e.exitcode
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit code {code}"
