"""Opening the database: engine, SQLite pragmas, migrations, and the single-daemon lock."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    Engine,
    Executable,
    case,
    create_engine,
    event,
    inspect,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import AlreadyRunning, StorageError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_MS = 30_000
# PostgreSQL: how long to wait for a connection (a server that accepts and never answers), how
# long one statement may run, and TCP keepalives that notice a peer gone without a word. Each is
# a default: the same key in the storage URL wins (``?connect_timeout=30``).
PG_DEFAULTS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30",
               "keepalives_interval": "10", "keepalives_count": "3"}
PG_STATEMENT_TIMEOUT = "300s"
MIGRATION_LOCK = 0x6D6F6E69  # "moni": the advisory lock that lets one instance migrate at once


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA cache_size=-16384")  # 16 MiB of pages a connection (bench/steady.py)
    # no memory map of the file: each connection's map counted the pages it touched in the
    # daemon's RSS again (23 MiB of 178 at 1,991 articles, 358 MiB for a lookup process at a
    # million), and copy lookups are no slower through the page cache (bench/dedup.py)
    cur.execute("PRAGMA mmap_size=0")
    cur.close()


READONLY = "monitor_readonly"  # execution option of the engine behind ``readers``


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock at BEGIN so two writers queue instead of failing on upgrade; a
    # read-only transaction takes none (WAL: readers and the writer do not wait for each other).
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READONLY)
                         else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000,
                                                  "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling is switched off so BEGIN IMMEDIATE is ours.
        event.listen(engine, "connect",
                     lambda c, _r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # READ COMMITTED whatever the server's default: the copy decision's watermark
    # (``articles.watermark``) needs a new snapshot for each statement.
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         isolation_level="READ COMMITTED", connect_args=_pg_connect_args(url))


def _pg_connect_args(url: str) -> dict[str, str]:
    """Bounded waits for PostgreSQL, unless the URL sets its own: a connect timeout, TCP
    keepalives, and a statement timeout (put first in ``options``, so one in the URL wins)."""
    query = make_url(url).query
    args = {k: v for k, v in PG_DEFAULTS.items() if k not in query}
    given = query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    args["options"] = f"-c statement_timeout={PG_STATEMENT_TIMEOUT} {given}".strip()
    return args


def migrate(engine: Engine) -> None:
    """Bring the schema up to date (alembic upgrade head). A start that finds the schema at
    head reads one row and loads nothing more (alembic's modules would stay in the daemon's
    memory, 10 MiB, for nothing). Otherwise, on PostgreSQL, under an advisory lock held until
    the migration commits: instances starting at once take turns, and the later ones find the
    schema already at head."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.util import CommandError

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sourceless", "true")  # an install that ships only bytecode
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except (SQLAlchemyError, CommandError) as e:
        raise StorageError(f"cannot bring the database {_safe_url(str(engine.url))} up to "
                           f"date: {describe(e) if isinstance(e, SQLAlchemyError) else e}") \
            from e


def head_revision() -> str | None:
    """The newest migration's revision: each file of ``migrations/versions`` (source, or
    bytecode alone: ``compileall -b``) is named after its revision, and they follow one
    another (a test holds both to alembic's own view). None when none is there."""
    versions = MIGRATIONS / "versions"
    names = [*versions.glob("*_*.py"), *versions.glob("*_*.pyc")]
    return max((path.name.split("_", 1)[0] for path in names), default=None)


def _at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return False
            stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except SQLAlchemyError:
        return False  # alembic then says what is wrong
    head = head_revision()
    return head is not None and stored == [head]


def open_database(url: str, *, write: bool = False) -> tuple[Engine, sessionmaker[Session]]:
    """The engine and sessions of ``url``, its schema brought up to date. With ``write``, also
    make sure the database takes writes (a read-only file or server is refused here, in one
    line, rather than failing at every tick)."""
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise StorageError(f"cannot reach the database {_safe_url(url)}: {describe(e)}") from e
    except OSError as e:
        raise StorageError(f"cannot open the database {_safe_url(url)}: {e}") from e
    migrate(engine)
    _probe_tables(engine, url)
    if write:
        try:
            _try_a_write(engine)
        except SQLAlchemyError as e:
            engine.dispose()
            raise StorageError(f"the database {_safe_url(url)} takes no writes: "
                               f"{describe(e)}") from e
    return engine, sessionmaker(engine, expire_on_commit=False)


def _probe_tables(engine: Engine, url: str) -> None:
    """Read the first row of every table of a SQLite file (its root page and one leaf, however
    big the table): a damaged table is refused at start in one line, not found at some later
    tick. Damage deeper in a table is met, and reported the same way, when it is read."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            names = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                "'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'").scalars()
            for name in list(names):  # NOT INDEXED: the table itself, not a smaller index
                conn.exec_driver_sql(f'SELECT * FROM "{name}" NOT INDEXED LIMIT 1').all()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the database {_safe_url(url)}: {describe(e)}") from e


def _try_a_write(engine: Engine) -> None:
    """Write one row and roll it back: raises what a real write would."""
    with engine.connect() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
        conn.rollback()


def describe(e: BaseException) -> str:
    """A storage error in one line, with what to do where the cause is plain."""
    message = _short(e)
    low = message.lower()
    if "disk is full" in low or "no space left" in low or "disk full" in low:
        return f"{message} (free some space; nothing is lost, the work is retried)"
    if "readonly database" in low or "read-only" in low:
        return f"{message} (the file, its folder or the server refuses writes)"
    if "not a database" in low or "malformed" in low:
        return f"{message} (the file is damaged: restore a backup or move it aside)"
    return message


def readers(engine: Engine) -> sessionmaker[Session]:
    """Sessions for transactions that only read: on SQLite they do not take the write lock."""
    return sessionmaker(engine.execution_options(**{READONLY: True}), expire_on_commit=False)


def _short(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


@contextmanager
def daemon_lock(sqlite_path: Path | None) -> Iterator[None]:
    """Only one polling process per SQLite file; PostgreSQL instances coordinate by leases."""
    if sqlite_path is None:
        yield
        return
    lock_path = sqlite_path.with_name(sqlite_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(
                f"another monitor (pid {holder}) is already polling {sqlite_path}; "
                "stop it first, or use PostgreSQL to run several instances"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class WriteBatch:
    """Small writes gathered and committed together: the record of a feed's poll is one
    UPDATE, and one transaction (one executemany per statement) for many feeds costs far less
    than one each. Writes in a batch must not depend on each other's order. What a crash
    catches unflushed is lost only as a record: that feed keeps its lease, and is polled again
    once the lease is released (a dead process on this host) or runs out."""

    def __init__(self, sessions: sessionmaker[Session], *, size: int = 200,
                 every: float = 0.2) -> None:
        self.sessions = sessions
        self.size = size
        self.every = every
        self._pending: list[tuple[Executable, dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def add(self, statement: Executable, params: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._pending.append((statement, params))

    def due(self) -> bool:
        with self._lock:
            return len(self._pending) >= self.size or (
                bool(self._pending) and time.monotonic() - self._flushed >= self.every)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Commit what is pending in one transaction; how many writes that was. If it fails,
        the writes stay pending and the error is raised."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._flushed = time.monotonic()
        if not pending:
            return 0
        groups: dict[int, tuple[Executable, list[dict[str, Any]]]] = {}
        try:
            with self.sessions.begin() as session:
                for statement, params in pending:
                    if params is None:
                        session.execute(statement)
                    else:
                        groups.setdefault(id(statement), (statement, []))[1].append(params)
                for statement, many in groups.values():
                    session.execute(statement, many)
        except BaseException:
            with self._lock:
                self._pending[:0] = pending
            raise
        return len(pending)


def release_dead_leases(session: Session, host: str, alive: Callable[[int], bool]) -> int:
    """Free the leases held by processes of this host that no longer exist (a crash or
    SIGKILL), instead of waiting for them to expire. A digest caught mid-send is queued again:
    it is the one delivery that may repeat. Owners look like ``host:pid:pidns:object``."""
    from monitor.store.tables import Digest, Feed

    def dead(owner: str) -> bool:
        parts = owner.split(":")  # host:pid:pid-namespace:object
        return len(parts) >= 4 and parts[0] == host and parts[2] == namespace and \
            parts[1].isdigit() and not alive(int(parts[1]))

    namespace = pid_namespace()
    released = 0
    prefix = f"{host}:"
    for model in (Feed, Digest):
        owners = session.scalars(select(model.lease_owner).distinct()
                                 .where(model.lease_owner.startswith(prefix, autoescape=True)))
        for owner in [o for o in owners if o and dead(o)]:
            # compare-and-set: a row another process claimed meanwhile is not touched
            values: dict[str, object] = {"lease_owner": None, "lease_until": None}
            if model is Digest:
                values["status"] = case((Digest.status == "sending", "queued"),
                                        else_=Digest.status)
            result = session.execute(update(model).where(model.lease_owner == owner)
                                     .values(**values))
            released += result.rowcount  # type: ignore[attr-defined]
    return released


def pid_namespace() -> str:
    """Which process-id space this process lives in (containers sharing a host name do not
    share it), so a pid is only judged dead by a process that can see it."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"
