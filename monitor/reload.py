"""One reload mechanism for everything the config names: the config file, the watchlist files
its globs match and the seed files. SIGHUP asks for a reload; so does any change to those files,
noticed at the next tick. A reload that fails validation (a TOML error, an unknown key, a query
that does not parse, a fixture the edited watchlist now gets wrong) is refused, line by line,
and the running config stays.

A change noticed in the files that would drop a watchlist (its file deleted, renamed or moved
away for a moment by an editor's save or a ``git checkout``) is held: the running watchlists stay,
so what arrives meanwhile is still matched, with a warning until the file is back. Removing a
watchlist for good takes an explicit reload (SIGHUP, ``systemctl reload``) or a restart.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from monitor import config
from monitor.config import Settings
from monitor.errors import ConfigError, ConfigProblem
from monitor.watchlists import fixture_problems

log = logging.getLogger("monitor")

Stamp = tuple[tuple[str, int, int], ...]


def _files(path: Path, settings: Settings | None,
           env: Mapping[str, str] | None = None) -> list[Path]:
    """The files that make up the config now: the file itself, what its watchlist globs match
    (read from the file as it is, so a new glob counts), and the seed files."""
    files = [path]
    base = path.resolve().parent
    try:
        import tomllib

        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        # ${VAR} expanded as the config itself is
        patterns = config._expand(raw.get("watchlist_files", []), "watchlist_files",
                                  os.environ if env is None else env, [], str(path))
    except (OSError, ValueError):
        patterns = []
    for pattern in patterns if isinstance(patterns, list) else []:
        if isinstance(pattern, str):
            full = pattern if os.path.isabs(pattern) else str(base / pattern)
            files += [Path(p) for p in sorted(glob.glob(full))]
    if settings is not None:
        for seeds in settings.seed_paths():
            files += sorted(p for p in seeds.rglob("*") if p.is_file()) if seeds.is_dir() \
                else [seeds]
    return files


def stamp(path: Path, settings: Settings | None, env: Mapping[str, str] | None = None) -> Stamp:
    out = []
    for f in _files(path, settings, env):
        try:
            st = f.stat()
            out.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(f), -1, -1))
    return tuple(out)


class Reloader:
    """Watches the config's files; ``check`` returns new settings when they changed (or a
    reload was asked for) and are valid, None otherwise."""

    def __init__(self, path: str | os.PathLike[str], settings: Settings,
                 env: Mapping[str, str] | None = None,
                 load: Callable[[Path], Settings] | None = None) -> None:
        self.path = Path(path)
        self.env = env
        self._load = load or (lambda p: config.load(p, env=self.env, empty_globs=True))
        self.settings = settings
        self._stamp = stamp(self.path, settings, env)
        self.requested = threading.Event()  # set by SIGHUP

    def check(self) -> Settings | None:
        now = stamp(self.path, self.settings, self.env)
        asked = self.requested.is_set()
        if now == self._stamp and not asked:
            return None
        self.requested.clear()
        self._stamp = now  # as read before loading: an edit made meanwhile is seen next time
        try:
            new = self._load(self.path)
            problems = fixture_problems(new)
            if problems:
                raise ConfigError(problems)
        except ConfigError as e:
            for problem in e.problems:
                log.error("reload refused, the running config stays: %s", problem)
            return None
        except OSError as e:
            log.error("reload refused, the running config stays: %s",
                      ConfigProblem(str(self.path), "", e.strerror or str(e)))
            return None
        dropped = _dropped(self.settings, new)
        if dropped and not asked:
            for name, source in dropped:
                log.warning("reload held, the running watchlists stay: watchlist %r (%s) is "
                            "gone; it keeps matching until it is back. To remove it, reload "
                            "with SIGHUP (systemctl reload monitor) or restart", name, source)
            return None
        for name, source in dropped:
            log.warning("reload: watchlist %r (%s) removed", name, source)
        self.settings = new
        before = {entry[0] for entry in now}  # files the new config watches too (new seeds)
        self._stamp = now + tuple(e for e in stamp(self.path, new, self.env) if e[0] not in before)
        return new


def _dropped(old: Settings, new: Settings) -> list[tuple[str, str]]:
    """The watchlists running now that ``new`` lacks: (name, where it was defined)."""
    names = {w.name for w in new.watchlists}
    return [(w.name, w.source or old.source) for w in old.watchlists if w.name not in names]
