"""The C allocator's side of memory (glibc; elsewhere these do nothing).

- ``limit_arenas``: glibc gives each thread that allocates its own arena (up to 8 a core) and
  keeps the freed memory of each; the daemon's fetch threads left it 15-25 MiB larger over
  2,000 articles. Two arenas, as ``MALLOC_ARENA_MAX=2`` would (when that, or
  ``glibc.malloc.arena_max`` in ``GLIBC_TUNABLES``, is set, the number given stands).
- ``give_back``: glibc returns freed memory to the system only from the top of its heap;
  ``malloc_trim`` returns every free page (0.2 ms). Loading the story models frees 14 MiB that
  would otherwise stay in the fork server, and in every worker forked from it; a document
  worker kept 12 MiB of freed pages, the daemon 10-15 while it stores.
- ``Every(n)``: ``give_back`` at every n-th call, from any thread.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os

_M_ARENA_MAX = -8


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas() -> None:
    libc = _glibc()
    given = "MALLOC_ARENA_MAX" in os.environ or \
        "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", "")
    if libc is not None and not given:
        libc.mallopt(_M_ARENA_MAX, 2)


def give_back() -> None:
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class Every:
    """``give_back`` once every ``count`` calls (of this process, from any of its threads)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._calls = itertools.count(1)  # next() on it is atomic

    def __call__(self) -> None:
        if next(self._calls) % self.count == 0:
            give_back()
