"""A process tree's memory and CPU, read from /proc (Linux), for the benchmarks."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def join_all(procs: list[Any], what: str) -> None:
    """Wait for each of the processes; stop the bench if one of them failed."""
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"{what} failed with exit code {p.exitcode}")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    todo, found = [pid], []
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def tree_memory(pid: int, detail: list[str] | None = None) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, processes) of ``pid`` and all its descendants; with ``detail``, a
    line per process is added to it."""
    rss = pss = seen = 0
    for p in tree(pid):
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        seen += 1
        one_rss = int(re.search(r"^Rss:\s+(\d+)", rollup, re.M).group(1))  # type: ignore[union-attr]
        one_pss = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))  # type: ignore[union-attr]
        rss, pss = rss + one_rss, pss + one_pss
        if detail is not None:
            command = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            detail.append(f"    pid {p}: {one_rss / 1024:.0f} MiB RSS, {one_pss / 1024:.0f} MiB PSS"
                          f"  {command[:90]}")
            detail += [f"        {kib / 1024:.0f} MiB RSS  {name}" for kib, name in _largest(p)]
    return rss / 1024, pss / 1024, seen


def _largest(pid: int, count: int = 5) -> list[tuple[int, str]]:
    """What holds the most of ``pid``'s resident memory, summed by what is mapped (anonymous
    memory, the heap, each file): the ``count`` largest, as (KiB, what)."""
    found: dict[str, int] = {}
    name = ""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        head = line.split(maxsplit=5)
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            name = head[5] if len(head) > 5 else "[anonymous]"
        elif head[0] == "Rss:":
            found[name] = found.get(name, 0) + int(head[1])
    return sorted(((kib, what) for what, kib in found.items()), reverse=True)[:count]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` and of their children that have exited (a pool
    that replaces its workers): over a whole process tree, the difference of two readings is
    what the tree spent in between."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / _TICKS


class PeakMemory:
    """Samples the RSS and PSS summed over process trees every ``every`` seconds while in use
    (the trees themselves are listed again every ``relist`` seconds); ``peak``: the highest
    sums seen (MiB). Run it in another process than the one measured."""

    def __init__(self, roots: list[int], every: float = 1.0, relist: float = 5.0) -> None:
        self.roots, self.every, self.relist = roots, every, relist
        self.peak = (0.0, 0.0)
        self.at_peak: dict[int, tuple[float, float]] = {}  # pid -> (RSS, PSS) MiB at the RSS peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        listed, pids = -1.0, []
        while True:
            if time.monotonic() - listed > self.relist:
                listed, pids = time.monotonic(), [p for root in self.roots for p in tree(root)]
            rss = pss = 0
            each: dict[int, tuple[float, float]] = {}
            for p in pids:
                try:
                    rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
                except OSError:
                    continue
                one_rss = int(re.search(r"^Rss:\s+(\d+)", rollup, re.M).group(1))  # type: ignore[union-attr]
                one_pss = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))  # type: ignore[union-attr]
                rss, pss = rss + one_rss, pss + one_pss
                each[p] = (one_rss / 1024, one_pss / 1024)
            if rss / 1024 > self.peak[0]:
                self.at_peak = each
            self.peak = (max(self.peak[0], rss / 1024), max(self.peak[1], pss / 1024))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
