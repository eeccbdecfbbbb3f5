"""monitor: a self-hosted media-monitoring and alerting daemon.

The pipeline, one module per stage::

    fetch.py -> feeds.py -> extract.py -> dedup.py -> match.py -> store/ -> digest.py -> notify/

``pipeline.py`` runs those stages for one feed, ``service.py`` runs one cycle over all feeds and
watchlists, ``scheduler.py`` repeats cycles, and ``cli.py`` is the only place that turns errors
into exit codes.
"""

__version__ = "0.1.0"

import os as _os

# numpy (folding, in match.py) needs no BLAS; OpenBLAS would reserve tens of MiB of address
# space per core in every process, which counts against a document worker's memory limit.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _two_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own arena (up to 8 a core) and keeps the
    freed memory of each: the daemon's fetch threads left it 15-25 MiB larger over 2,000
    articles. Two arenas, as ``MALLOC_ARENA_MAX=2`` would (which, when set, is left alone)."""
    if "MALLOC_ARENA_MAX" in _os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl has no arenas to limit)
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


_two_malloc_arenas()
