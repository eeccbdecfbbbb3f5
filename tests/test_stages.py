"""Pure stages tested with plain data: config, dedup, matching, URLs, feeds, digests, schedules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor import config
from monitor.dedup import compare
from monitor.digest import DigestData, Item, Renderer, slack_messages
from monitor.errors import ConfigError, FeedError, StorageError
from monitor.feeds import parse
from monitor.guard import AddressPolicy, is_internal
from monitor.match import Matcher
from monitor.schedule import backoff, parse_schedule
from monitor.urls import canonical_url
from tests.conftest import ROOT, shared_corpus

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


# -- config ----------------------------------------------------------------------------------


def test_example_config_is_valid_without_environment() -> None:
    settings = config.load(ROOT / "config" / "monitor.toml", env={})
    assert settings.watchlists[0].name == "sahel"
    aliases = {a.text for e in settings.watchlists[0].entities for a in e.terms()}
    assert {"Wagner", "Barkhane", "Takuba", "MINUSMA"} <= aliases
    assert len(settings.feeds) >= 5
    assert settings.storage.url == f"sqlite:///{ROOT / 'config' / 'data' / 'monitor.db'}"


def _problems(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "m.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        config.load(path, env=env or {})
    return [str(p) for p in info.value.problems]


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
bogus = 1
[[feeds]]
url = "file:///etc/passwd"
[[watchlists]]
name = "w"
terms = ["x"]
channels = ["teams"]
[channels.slack]
webhook_url = "${SLACK_WEBHOOK_URL}"
""")
    file = str(tmp_path / "m.toml")
    assert f"{file}: bogus: unknown key 'bogus'" in problems
    assert any(p.startswith(f"{file}: feeds[0].url: only http and https") for p in problems)
    assert any(p.startswith(f"{file}: watchlists[0].channels[0]") for p in problems)
    assert any("SLACK_WEBHOOK_URL is not set" in p and "channels.slack.webhook_url" in p
               for p in problems)


def test_config_variables_and_watchlist_files(tmp_path: Path) -> None:
    (tmp_path / "wl").mkdir()
    (tmp_path / "wl" / "desk.toml").write_text('terms = ["Takuba"]\nschedule = "daily 25:00"\n')
    problems = _problems(tmp_path, 'watchlist_files = ["wl/*.toml"]\n'
                         '[storage]\nurl = "${DB:-sqlite:///x.db}"\n')
    wfile = str(tmp_path / "wl" / "desk.toml")
    assert any(p.startswith(f"{wfile}: ") and "25:00" in p for p in problems), problems
    (tmp_path / "wl" / "desk.toml").write_text('terms = ["Takuba"]\n')
    path = tmp_path / "m.toml"
    settings = config.load(path, env={"DB": "sqlite:///other.db"})
    assert settings.watchlists[0].name == "desk"
    assert settings.storage.url == f"sqlite:///{tmp_path / 'other.db'}"


# -- dedup -----------------------------------------------------------------------------------


def _seed(prefix: str) -> str:
    return next((ROOT / "seeds").glob(f"{prefix}_*.txt")).read_text()


def _verdict(new: str, old: str) -> object:
    return compare(new, old, 1)


def test_seed_000_is_a_truncated_copy_of_001() -> None:
    verdict = _verdict(_seed("000"), _seed("001"))
    assert verdict is not None and verdict.reason == "contained"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["000", "001", "002", "003", "004"])
def test_first_quarter_of_any_seed_is_a_copy(name: str) -> None:
    words = _seed(name).split()
    assert _verdict(" ".join(words[: len(words) // 4]), _seed(name)) is not None


def test_different_seeds_on_one_topic_are_not_copies() -> None:
    names = ["001", "002", "003", "004"]
    for a in names:
        for b in names:
            if a != b:
                assert _verdict(_seed(a), _seed(b)) is None, (a, b)


# -- matching --------------------------------------------------------------------------------


def test_terms_match_case_diacritics_possessives_and_word_boundaries() -> None:
    m = Matcher([("sahel", ["Wagner", "Goïta", "MINUSMA", "Operation Barkhane"])], 80)

    def terms(text: str) -> list[str]:
        found = m.match("", text)
        return found[0].terms if found else []

    assert terms("Wagner's men left.") == ["Wagner"]
    assert terms("Les hommes de WAGNER’s.") == ["Wagner"]
    assert terms("Colonel Assimi Goita spoke.") == ["Goïta"]
    assert terms("Colonel Assimi GOÏTA spoke.") == ["Goïta"]
    assert terms("minusma said") == ["MINUSMA"]
    assert terms("operation-barkhane ended") == ["Operation Barkhane"]
    assert terms("A Wagnerian opera") == []
    assert terms("MINUSCA is in the CAR") == []
    assert terms("éWagner") == []


def test_match_keeps_span_and_snippet_in_original_text() -> None:
    text = "Intro. " * 30 + "Les forces de Barkhane quittent Gao. " + "Fin. " * 30
    found = Matcher([("s", ["barkhane"])], 60).match("Titre", text)[0]
    span = found.spans[0]
    assert text[span.start : span.end] == "Barkhane"
    assert "Barkhane quittent Gao" in found.snippet and found.snippet.startswith("…")


# -- URLs, feeds, addresses ------------------------------------------------------------------


def test_canonical_url_drops_tracking_and_variants() -> None:
    a = canonical_url("http://www.example.org/news/story/?utm_source=x&id=2&fbclid=y#top")
    b = canonical_url("https://example.org/news/story?id=2")
    c = canonical_url("https://amp.example.org/news/story/amp?id=2")
    assert a == b == c


def test_entity_declarations_are_refused_before_feedparser() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><rss/>'
    with pytest.raises(FeedError, match="entities"):
        parse(bomb, "http://x/", NOW)


@pytest.mark.parametrize("body", [b"", b"<html><body>hi</body></html>", b'{"a": 1}'])
def test_not_a_feed(body: bytes) -> None:
    with pytest.raises(FeedError, match="not a feed"):
        parse(body, "http://x/", NOW)


def test_absurd_dates_are_clamped_and_bad_links_kept() -> None:
    feed = (b'<rss version="2.0"><channel><title>T</title><item><title>A</title>'
            b"<link>javascript:alert(1)</link><description>Wagner</description>"
            b"<pubDate>Fri, 31 Dec 9999 23:59:59 GMT</pubDate></item></channel></rss>")
    entry = parse(feed, "http://x/", NOW).entries[0]
    assert entry.canonical == "" and entry.summary == "Wagner"
    assert entry.published is not None and entry.published.year == 2026


def test_every_corpus_feed_parses_or_fails_with_a_clear_error() -> None:
    files = sorted(shared_corpus("feeds").rglob("*.xml"))
    errors = 0
    for path in files:
        try:
            parse(path.read_bytes(), "http://example.org/feed", NOW)
        except FeedError as e:
            errors += 1
            assert "\n" not in str(e) and str(e)
    assert errors < len(files)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1",
                                     "::1", "fc00::1", "::ffff:127.0.0.1", "0.0.0.0",
                                     "224.0.0.1", "2002:7f00:1::1"])
def test_internal_addresses(address: str) -> None:
    import ipaddress

    assert is_internal(ipaddress.ip_address(address))


def test_allowed_hosts_open_only_themselves() -> None:
    policy = AddressPolicy.from_settings(False, ["127.0.0.1:8080", "Intranet.example"])
    assert policy.check("127.0.0.1", 8080, ["127.0.0.1"]) == "127.0.0.1"
    assert policy.check("intranet.example", 443, ["10.0.0.1"]) == "10.0.0.1"
    with pytest.raises(Exception, match="internal address"):
        policy.check("127.0.0.1", 8081, ["127.0.0.1"])


# -- digests and schedules -------------------------------------------------------------------


def _item(title: str) -> Item:
    return Item(1, title, "https://news.example/a", "Outlet", None, ["Wagner"],
                "the Wagner Group <b>arrived</b>")


def test_hostile_titles_are_escaped_everywhere() -> None:
    hostile = "<script>alert(1)</script> {{ 7*7 }} <!channel> <https://evil|click>"
    rendered = Renderer().render(DigestData("sahel", [_item(hostile)], NOW))
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "{{ 7*7 }}" in rendered.text and "49" not in rendered.text
    slack = str(rendered.slack)
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
    assert "<https://evil|click>" not in slack


def test_slack_splits_long_digests_within_limits() -> None:
    items = [_item(f"story {i}") for i in range(120)]
    messages = slack_messages(DigestData("sahel", items, NOW))
    assert len(messages) == 3
    assert all(len(m["blocks"]) <= 50 for m in messages)  # type: ignore[arg-type]


def test_schedules_give_one_due_time_after_downtime() -> None:
    daily = parse_schedule("daily 07:00", "Europe/Paris")
    due = daily.next_after(NOW)
    assert due.astimezone(UTC).hour == 6 and due > NOW
    assert parse_schedule("every 30m").next_after(NOW) == NOW.replace(minute=30)
    with pytest.raises(ValueError):
        parse_schedule("sometimes")


def test_backoff_grows_caps_and_never_stops() -> None:
    delays = [backoff(60, n, 3600, 1.0) for n in range(1, 12)]
    assert delays[0] == 60 and delays[1] == 120 and max(delays) == 3600


def test_readme_config_reference_matches_the_declarations() -> None:
    from monitor.config import reference_markdown

    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- config-reference:start -->\n") + len(
        "<!-- config-reference:start -->\n")
    end = readme.index("\n<!-- config-reference:end -->")
    assert readme[start:end] == reference_markdown(), \
        "README's config reference drifted: run python scripts/update_reference.py"


def test_migrations_build_exactly_the_declared_schema(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from monitor.store.db import open_database
    from monitor.store.tables import Base, declared

    engine, _ = open_database(db_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(
                conn, opts={"include_name": declared}), Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_the_head_revision_is_alembics_and_a_database_at_head_opens_without_alembic(
        tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from monitor.store.db import MIGRATIONS, head_revision, open_database

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = re.search(r"^revision = ['\"](\w+)['\"]", path.read_text(), re.M)
        assert found and path.name.startswith(f"{found.group(1)}_"), path.name
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    open_database(url)[0].dispose()  # migrated: alembic was needed
    again = subprocess.run(
        [sys.executable, "-c", "import sys; from monitor.store.db import open_database; "
         f"open_database({url!r}, write=True); print('alembic' in sys.modules)"],
        capture_output=True, text=True, check=True, cwd=ROOT)
    assert again.stdout.strip() == "False"


def test_an_install_with_only_the_migrations_bytecode_migrates_and_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations shipped as bytecode alone (``compileall -b``, sources removed): a new
    database is brought to head, and one at head opens without alembic being asked."""
    import compileall
    import shutil

    from monitor.store import db

    bytecode = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS, bytecode, ignore=shutil.ignore_patterns("__pycache__"))
    assert compileall.compile_dir(str(bytecode), legacy=True, quiet=1)
    for source in (bytecode / "versions").glob("*.py"):
        source.unlink()
    head = db.head_revision()
    monkeypatch.setattr(db, "MIGRATIONS", bytecode)
    assert db.head_revision() == head
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = db.open_database(url)[0]  # migrated from the bytecode
    assert db._at_head(engine)
    engine.dispose()


def test_a_database_of_a_later_release_is_refused_in_one_line(tmp_path: Path) -> None:
    """A schema at a revision this release does not know (the database was opened by a newer
    monitor): a StorageError that says so, not alembic's traceback."""
    from sqlalchemy import text

    from monitor.store import db

    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    db.open_database(url)[0].dispose()
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StorageError, match=r"cannot bring the database .*9999"):
        db.migrate(engine)
    engine.dispose()


def test_freed_memory_goes_back_at_every_nth_call_from_any_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from monitor import memory

    trims: list[int] = []
    monkeypatch.setattr(memory, "give_back", lambda: trims.append(1))
    every = memory.Every(16)
    def call() -> None:
        for _ in range(100):
            every()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trims) == 800 // 16
    memory.limit_arenas()  # glibc or not, neither raises
    monkeypatch.undo()
    memory.give_back()


def test_two_malloc_arenas_unless_the_environment_gives_a_number(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import memory

    class Libc:
        def __init__(self) -> None:
            self.calls: list[tuple[int, int]] = []

        def mallopt(self, option: int, value: int) -> None:
            self.calls.append((option, value))

    for env, expected in (({}, [(-8, 2)]), ({"MALLOC_ARENA_MAX": "4"}, []),
                          ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}, []),
                          ({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}, [(-8, 2)])):
        libc = Libc()
        monkeypatch.setattr(memory, "_glibc", lambda libc=libc: libc)
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        memory.limit_arenas()
        assert libc.calls == expected, env


# -- the rooms: what may import what (docs/ARCHITECTURE.md) -----------------------------------


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Modules a file imports when it runs (imports under ``if TYPE_CHECKING:`` left out), and
    the names it takes from sqlalchemy."""
    import ast

    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", "") == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    modules: set[str] = set()
    from_sqlalchemy: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            if node.module.split(".")[0] == "sqlalchemy":
                from_sqlalchemy.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules, from_sqlalchemy


SQL_BUILDERS = {"select", "insert", "update", "delete", "text", "func", "and_", "or_",
                "bindparam"}


def test_sql_is_spoken_only_in_the_store_and_watchlists_do_not_import_the_config() -> None:
    root = Path(__file__).resolve().parent.parent / "monitor"
    for path in root.rglob("*.py"):
        room = path.relative_to(root).parts[0]
        modules, from_sqlalchemy = _imports(path)
        if room not in ("store", "migrations"):
            assert not from_sqlalchemy & SQL_BUILDERS, f"{path}: builds SQL outside store/"
        if room == "watchlists":
            assert "monitor.config" not in modules, f"{path} imports the config"


def test_the_document_workers_load_no_database_code_and_the_daemon_no_extractor() -> None:
    """What a module imports stays in the memory of every process that imports it, and the
    fork server's memory counts again in each worker's RSS: the workers need the parsers, not
    SQLAlchemy or the config's pydantic; the daemon hands extraction to them."""
    import subprocess
    import sys

    probe = ("import sys, {module}; "
             "print(' '.join(m for m in {names} if m in sys.modules))")
    worker = subprocess.run(
        [sys.executable, "-c", probe.format(module="monitor.work, monitor.extract",
                                            names=("sqlalchemy", "pydantic", "alembic"))],
        capture_output=True, text=True, check=True, cwd=ROOT)
    assert worker.stdout.strip() == ""
    daemon = subprocess.run(
        [sys.executable, "-c", probe.format(module="monitor.service", names=("trafilatura",))],
        capture_output=True, text=True, check=True, cwd=ROOT)
    assert daemon.stdout.strip() == ""


def _warm_state() -> tuple[bool, int]:
    """Run in a worker before its first page: whether its matcher and the fold tables exist."""
    from monitor import text, work

    return work._MATCHER is not None, text._tables.cache_info().currsize


def test_a_started_worker_has_its_matcher_and_the_fork_servers_fold_tables() -> None:
    """What every worker needs is built before its first page: the fold tables once, in the
    fork server (0.14 s and 1 MB that each worker would otherwise build at its first long
    text), and the worker's matcher as it starts (0.1 s)."""
    from monitor.match import Watchlist
    from monitor.work import DocumentWorkers

    workers = DocumentWorkers(processes=1, timeout=120, memory_mib=0,
                              watchlists=[Watchlist("sahel", ("Wagner", "Barkhane"))])
    try:
        workers.start()
        assert workers._run(_warm_state, ()) == (True, 1)
    finally:
        workers.close()


def test_calls_that_come_while_the_lists_are_out_go_together_in_the_next() -> None:
    """``work.Gathered``: with one list out at a time, the calls made meanwhile wait and go
    in one list, each gets its own outcome, a failed list fails its calls only, and nothing
    is left waiting."""
    import threading

    from monitor.work import Gathered

    lists: list[list[int]] = []
    release = threading.Event()
    started = threading.Event()

    def call(arguments: list[int]) -> list[int]:
        lists.append(arguments)
        if len(lists) == 1:
            started.set()
            assert release.wait(10)
        if 13 in arguments:
            raise ValueError("unlucky")
        return [a * 10 for a in arguments]

    gathered: Gathered[int, int] = Gathered(call, running=1, at_once=3)
    results: dict[int, object] = {}

    def one(argument: int) -> None:
        try:
            results[argument] = gathered(argument)
        except (ValueError, RuntimeError) as e:
            results[argument] = e

    first = threading.Thread(target=one, args=(1,))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=one, args=(n,)) for n in (2, 3, 4, 13, 6)]
    for thread in others:
        thread.start()
    while len(gathered._waiting) < 5:
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
        assert not thread.is_alive()
    assert lists[0] == [1]
    assert sorted(len(batch) for batch in lists[1:]) == [2, 3]  # three at most, in two lists
    assert sorted(n for batch in lists[1:] for n in batch) == [2, 3, 4, 6, 13]
    failed = next(batch for batch in lists[1:] if 13 in batch)
    for argument in (2, 3, 4, 6, 13):
        if argument in failed:  # each its own error, saying what failed the list
            assert isinstance(results[argument], Exception), argument
            assert "unlucky" in str(results[argument]), argument
        else:
            assert results[argument] == argument * 10
    assert len({id(results[argument]) for argument in failed}) == len(failed)
    assert gathered._running == 0 and not gathered._waiting
    assert gathered(7) == 70  # alone, at once


def test_a_describe_list_that_fails_as_a_whole_is_tried_again_one_article_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A list stopped at its deadline, or whose worker died: each article is described alone
    again, so only the one at fault goes without features."""
    from concurrent.futures import TimeoutError as FutureTimeout

    from monitor.stories.features import Features
    from monitor.work import DocumentWorkers

    workers = DocumentWorkers(processes=1, timeout=3, memory_mib=0)
    good = Features("en", b"", (), (), ())
    sent: list[list[str]] = []

    def run(_function: object, args: tuple[list[tuple[str, ...]]]) -> list[Features]:
        titles = [item[0] for item in args[0]]
        sent.append(titles)
        if "slow" in titles:
            raise FutureTimeout()
        return [good for _ in titles]

    monkeypatch.setattr(workers, "_run", run)
    items: list[Any] = [("a", "", (), None), ("slow", "", (), None), ("b", "", (), None)]
    assert workers._describe_list(items) == [good, "stopped after 3s", good]
    assert sent == [["a", "slow", "b"], ["a"], ["slow"], ["b"]]
    assert workers._describe_list(items[1:2]) == ["stopped after 3s"]  # alone: once
    assert workers.describe("slow", "", ()) is None


def test_gathered_calls_from_many_threads_all_end_and_leave_nothing_behind() -> None:
    """Two lists out at once, calls from 40 threads, lists that finish at once and lists that
    fail: every call ends with its own outcome, and no list is left counted as out."""
    import random
    import threading
    import time

    from monitor.work import Gathered

    def call(arguments: list[int]) -> list[int]:
        time.sleep(random.random() / 500)
        if random.random() < 0.2:
            raise ValueError("no luck")
        return [-a for a in arguments]

    gathered: Gathered[int, int] = Gathered(call, running=2, at_once=4)
    outcomes: dict[int, int | None] = {}

    def one(argument: int) -> None:
        for n in range(argument * 10, argument * 10 + 10):
            try:
                outcomes[n] = gathered(n)
            except (ValueError, RuntimeError) as e:  # the carrier's own, or one wrapping it
                assert "no luck" in str(e)
                outcomes[n] = None

    threads = [threading.Thread(target=one, args=(t,)) for t in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert len(outcomes) == 400
    assert all(v is None or v == -n for n, v in outcomes.items())
    assert gathered._running == 0 and not gathered._waiting


def test_articles_described_together_get_the_features_each_would_alone() -> None:
    """The document workers describe several articles in one task (their sentence vectors in
    one pass): the same features as each described alone, vectors to float rounding."""
    import threading

    import numpy as np

    from monitor.stories import features
    from monitor.work import DocumentWorkers, Gathered

    texts = [(f"Headline {n}", f"Gunmen attacked a convoy near Kidal on Tuesday, killing {n} "
              "soldiers, the army said. " * (n + 1), ("wagner",) if n % 2 else ())
             for n in range(6)] + [("", "", ())]
    workers = DocumentWorkers(processes=1, timeout=120, memory_mib=0)
    out: dict[int, object] = {}
    lists: list[int] = []
    send = workers._describe_list

    def recorded(items: list[Any]) -> list[Any]:
        lists.append(len(items))
        return send(items)

    workers._describing = Gathered(recorded, 1, 8)
    try:
        workers.start()
        threads = [threading.Thread(target=lambda n=n: out.__setitem__(
            n, workers.describe(*texts[n]))) for n in range(len(texts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        # one article that fails in a list fails alone
        bad: Any = ("Bad", "A text.", (7,), None)  # a name that is no string: it raises
        listed = workers._describe_list([(*texts[0], None), bad, (*texts[1], None)])
    finally:
        workers.close()
    assert sum(lists) == len(texts) and max(lists) > 1  # they went together
    assert isinstance(listed[0], features.Features) and isinstance(listed[2], features.Features)
    assert isinstance(listed[1], str) and "AttributeError" in listed[1]
    for n, (title, text, names) in enumerate(texts):
        alone = features.extract(title, text, names)
        got = out[n]
        assert isinstance(got, features.Features)
        assert (got.language, got.names, got.figures, got.weekdays) == \
            (alone.language, alone.names, alone.figures, alone.weekdays)
        assert len(got.vector) == len(alone.vector)
        if alone.vector:
            assert np.allclose(np.frombuffer(got.vector, np.float32),
                               np.frombuffer(alone.vector, np.float32), atol=1e-6)


# -- the fetcher's logic through its transport seam (no network) -------------------------------


def test_fetcher_logic_over_an_injected_transport() -> None:
    import httpx

    from monitor.errors import FetchError, RetryLater
    from monitor.fetch import Fetched, Fetcher
    from monitor.guard import AddressPolicy

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/feed":
            if request.headers.get("If-None-Match") == '"v1"':
                return httpx.Response(304)
            return httpx.Response(200, headers={"ETag": '"v1"'},
                                  stream=httpx.ByteStream(b"<rss/>"))
        if path == "/busy":
            return httpx.Response(429, headers={"Retry-After": "120"})
        if path.startswith("/hop"):
            return httpx.Response(302, headers={"Location": f"/hop{int(path[4:]) + 1}"})
        return httpx.Response(404)

    fetcher = Fetcher(policy=AddressPolicy.from_settings(False, []), user_agent="test/1",
                      timeout=5, connect_timeout=5, max_redirects=3,
                      transport=httpx.MockTransport(answer))
    try:
        first = fetcher.get("http://news.example/feed", max_bytes=1000)
        assert isinstance(first, Fetched) and first.etag == '"v1"' and first.body == b"<rss/>"
        again = fetcher.get("http://news.example/feed", max_bytes=1000, etag='"v1"')
        assert not isinstance(again, Fetched)  # not modified
        with pytest.raises(RetryLater) as busy:
            fetcher.get("http://news.example/busy", max_bytes=1000)
        assert busy.value.retry_after == 120
        with pytest.raises(FetchError, match="more than 3 redirects"):
            fetcher.get("http://news.example/hop0", max_bytes=1000)
        assert seen[0].headers["User-Agent"] == "test/1"
    finally:
        fetcher.close()
