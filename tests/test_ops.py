"""Running it as a service: systemd notifications from a real daemon process, the HTTP endpoint
(/healthz, /metrics, Atom) scraped from it, JSON logs, and a stalled scheduler caught."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor import config
from monitor.ops import Liveness
from tests.builders import page, rss
from tests.conftest import ROOT, Route, Web, free_port, write_config

ATOM = "{http://www.w3.org/2005/Atom}"


class NotifySocket:
    """A unix datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def said(self, message: str) -> list[float]:
        return [t for t, m in list(self.messages) if m == message]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, e.headers.get("Content-Type", ""), body


@pytest.fixture
def desk(tmp_path: Path, web: Web) -> tuple[Path, int]:
    web.routes.update({
        "/a/1": Route(200, page("Wagner fighters reach Gao & Kidal",
                                "Russian mercenaries of the Wagner Group reached Gao. " * 4),
                      {"Content-Type": "text/html"}),
        "/rss.xml": Route(200, rss([("Wagner fighters reach Gao & Kidal", web.url("/a/1"),
                                     "x")]), {"Content-Type": "application/rss+xml"}),
    })
    port = free_port()
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss.xml")], smtp_port=None, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], seeds=False)
    cfg.write_text(cfg.read_text() + f'[poll]\ntick = "1s"\n[http]\nenabled = true\n'
                   f'listen = "127.0.0.1:{port}"\n[log]\nformat = "json"\n')
    return cfg, port


def test_the_daemon_tells_systemd_and_serves_health_metrics_and_atom(
        desk: tuple[Path, int], notify_socket: NotifySocket) -> None:
    cfg, port = desk
    env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(notify_socket.path),
           "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), "run"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(
        line.decode() for line in iter(proc.stdout.readline, b"")),  # type: ignore[union-attr]
        daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: notify_socket.said("READY=1"))
        wait_for(lambda: len(notify_socket.said("WATCHDOG=1")) >= 3)
        assert notify_socket.said("READY=1")[0] <= notify_socket.said("WATCHDOG=1")[0]
        wait_for(lambda: any('"feed"' in line for line in lines))

        status, ctype, body = get(f"{base}/healthz")
        health = json.loads(body)
        assert status == 200 and ctype == "application/json"
        assert health["status"] == "ok" and health["database"] == "ok"

        status, ctype, body = get(f"{base}/metrics")
        metrics = body.decode()
        assert status == 200 and ctype.startswith("text/plain")
        assert 'monitor_feeds{state="active"} 1.0' in metrics
        assert 'monitor_feed_polls_total{result="ok"}' in metrics
        assert 'monitor_matches{watchlist="sahel"} 1.0' in metrics
        assert 'monitor_articles{kind="original"} 1.0' in metrics
        assert 'monitor_entity_mentions{entity="Wagner",watchlist="sahel"}' in metrics
        assert 'monitor_entity_usual{entity="Barkhane",watchlist="sahel"}' in metrics
        assert 'monitor_stage_seconds_bucket{le="0.1",stage="page"}' in metrics
        assert "monitor_cycles_total" in metrics

        status, ctype, body = get(f"{base}/feeds/sahel.atom")
        assert status == 200 and ctype.startswith("application/atom+xml")
        feed = ET.fromstring(body)
        entries = feed.findall(f"{ATOM}entry")
        assert len(entries) == 1
        assert entries[0].findtext(f"{ATOM}title") == "Wagner fighters reach Gao & Kidal"
        link = entries[0].find(f"{ATOM}link")
        assert link is not None and link.get("href", "").endswith("/a/1")
        assert "Wagner" in (entries[0].findtext(f"{ATOM}summary") or "")
        story = [c for c in entries[0].findall(f"{ATOM}category")
                 if c.get("scheme") == "urn:monitor:story"]
        assert len(story) == 1 and story[0].get("label") == "Wagner fighters reach Gao & Kidal"
        assert (entries[0].findtext(f"{ATOM}content") or "").startswith(
            "Story: Wagner fighters reach Gao & Kidal. Matched: ")
        assert get(f"{base}/feeds/nope.atom")[0] == 404
        assert get(f"{base}/nothing")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stdout.close()  # type: ignore[union-attr]
    assert notify_socket.said("STOPPING=1")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len([line for line in lines if line.strip()])
    feed_lines = [r for r in records if "feed" in r]
    assert feed_lines[0]["status"] == "ok" and feed_lines[0]["new"] == 1
    assert feed_lines[0]["level"] == "info" and feed_lines[0]["time"].endswith("+00:00")


def test_a_stalled_scheduler_stops_the_watchdog_and_fails_healthz(
        desk: tuple[Path, int], notify_socket: NotifySocket,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.scheduler import run_daemon
    from monitor.service import Service

    cfg, port = desk
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    service = Service(config.load(cfg))
    service.prepare()
    stop = threading.Event()
    schedulers: list[Any] = []
    daemon = threading.Thread(target=run_daemon, args=(service,),
                              kwargs={"stop": stop, "on_start": schedulers.append})
    daemon.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: len(notify_socket.said("WATCHDOG=1")) >= 2)
        assert get(f"{base}/healthz")[0] == 200
        schedulers[0].pause()  # the scheduler stalls: no job runs any more
        stalled = time.monotonic()
        wait_for(lambda: get(f"{base}/healthz")[0] == 503, 10)
        health = json.loads(get(f"{base}/healthz")[2])
        assert health["status"] == "failing" and "has not ticked" in health["scheduler"]
        time.sleep(1)
        late = [t for t in notify_socket.said("WATCHDOG=1") if t > stalled + 3.5]
        assert late == []  # silent: systemd would restart the daemon
        schedulers[0].resume()
        resumed = time.monotonic()
        wait_for(lambda: any(t > resumed for t in notify_socket.said("WATCHDOG=1")), 10)
        assert get(f"{base}/healthz")[0] == 200
    finally:
        stop.set()
        daemon.join(30)
        service.close()


def test_liveness_with_an_injected_clock() -> None:
    now = [0.0]
    live = Liveness(heartbeat=5, cycle_limit=600, clock=lambda: now[0])
    assert live.problem() == "the scheduler has not started"
    live.beat()
    assert live.problem() is None
    now[0] = 16
    assert live.problem() == "the scheduler has not ticked for 16s"
    live.beat()
    live.cycle_started()
    now[0] = 620
    live.beat()
    assert live.problem() == "a cycle has been running for 604s"
    live.cycle_ended()
    assert live.problem() is None


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    import shutil

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (ROOT / "systemd" / "monitor.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "ExecReload=" in unit
    for key in ("ProtectSystem=strict", "NoNewPrivileges=true", "PrivateTmp=true",
                "StateDirectory=monitor", "ConfigurationDirectory=monitor", "Restart="):
        assert key in unit
    # the unit as installed, with ExecStart pointing at this checkout's executable
    target = tmp_path / "monitor.service"
    target.write_text(unit.replace("/opt/monitor/.venv/bin/monitor",
                                   str(Path(sys.executable).parent / "monitor")))
    done = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_monitor_health_asks_the_running_daemon(desk: tuple[Path, int],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    cfg, _port = desk
    assert main(["--config", str(cfg), "health"]) == 1  # no daemon yet
    assert "not live" in capsys.readouterr().out
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), "run"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: main(["--config", str(cfg), "health"]) == 0)
        assert '"status": "ok"' in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_the_dockerfile_is_slim_pinned_unprivileged_and_checked() -> None:
    import re
    import tomllib

    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    base = next(line for line in lines if line.startswith("FROM "))
    assert re.fullmatch(r"FROM python:\d+\.\d+\.\d+-slim-\w+", base), base  # no :latest
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert 'VOLUME ["/config", "/data"]' in lines
    assert any("-c constraints.txt" in line for line in lines)
    assert not any(line.startswith("ADD ") for line in lines)  # COPY only
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
    # every runtime dependency is pinned to one version for the image
    pins = {re.split(r"==", line)[0].lower().replace("_", "-")
            for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", d)[0].lower().replace("_", "-") for d in deps}
    assert names <= pins, names - pins


def test_retention_keeps_fingerprints_so_an_old_story_reposted_is_recognised(
        tmp_path: Path, db_url: str, web: Web, smtp: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from monitor.service import Service
    from monitor.store.tables import Article, Digest, FeedEntry, Match, Shingle
    from tests.conftest import Clock

    box, smtp_port = smtp
    story = ("Russian mercenaries of the Wagner Group arrived in Bamako on Monday, officials "
             "said, as the junta deepened its ties with Moscow after the French withdrawal. "
             "The fighters were flown in on two transport aircraft and moved to a base near the "
             "airport, where instructors had been working for several months. Residents "
             "described convoys of trucks and armoured vehicles on the road to the north. ")
    web.routes.update({
        "/a/1": Route(200, page("Wagner arrives in Bamako", story * 2),
                      {"Content-Type": "text/html"}),
        "/rss.xml": Route(200, rss([("Wagner arrives in Bamako", web.url("/a/1"), "x")]),
                          {"Content-Type": "application/rss+xml"}),
    })
    cfg = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=[web.url("/rss.xml")],
                       smtp_port=smtp_port, slack_url=None, allowed=[f"127.0.0.1:{web.port}"],
                       seeds=False, extra='[retention]\nafter = "365d"\n')
    clock = Clock()
    service = Service(config.load(cfg), clock=clock)
    try:
        service.prepare()
        service.cycle(ignore_schedule=True)
        assert len(box.messages) == 1
        clock.now += timedelta(days=30)
        assert service.prune().articles == 0  # young: kept whole

        clock.now += timedelta(days=370)
        pruned = service.prune()
        assert (pruned.articles, pruned.matches, pruned.digests) == (1, 1, 1)
        with service.sessions() as s:
            article = s.scalars(select(Article)).one()
            assert article.text == "" and article.text_source == "pruned"
            assert article.title == "Wagner arrives in Bamako"
            assert (s.scalar(select(func.count()).select_from(Shingle)) or 0) > 5
            assert s.scalar(select(func.count()).select_from(FeedEntry)) == 1
            assert s.scalar(select(func.count()).select_from(Match)) == 0
            assert s.scalar(select(func.count()).select_from(Digest)) == 0

        # A year on, another site reposts the first two thirds under a new headline.
        repost = " ".join((story * 2).split()[: len((story * 2).split()) * 2 // 3])
        web.routes["/b/1"] = Route(200, page("Archive: mercenaries in Bamako", repost),
                                   {"Content-Type": "text/html"})
        web.routes["/rss.xml"] = Route(200, rss([
            ("Wagner arrives in Bamako", web.url("/a/1"), "x"),
            ("Archive: mercenaries in Bamako", web.url("/b/1"), "y")]),
            {"Content-Type": "application/rss+xml"})
        service.cycle(ignore_schedule=True)
        with service.sessions() as s:
            copy = s.scalars(select(Article).where(Article.link == web.url("/b/1"))).one()
            assert copy.duplicate_of_id == article.id and copy.dup_reason is not None
        service.cut_digests(force=True)
        service.relay(ignore_backoff=True)
        assert len(box.messages) == 1  # recognised, and not alerted again
    finally:
        service.close()


def test_feeds_import_and_export_opml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    cfg = tmp_path / "monitor.toml"
    cfg.write_text('# my feeds\n[[feeds]]\nurl = "https://a.example/rss"\nname = "A"\n')
    opml_file = tmp_path / "reader.opml"
    opml_file.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head><body>'
        '<outline text="Africa"><outline text="A again" xmlUrl="https://a.example/rss"/>'
        '<outline text="Sahel Wire" title="Sahel &amp; Co" type="rss" '
        'xmlUrl="https://b.example/feed.xml"/></outline>'
        '<outline text="bad" xmlUrl="javascript:alert(1)"/>'
        '<outline text="Кремль" xmlUrl="http://c.example/ru"/></body></opml>')
    assert main(["--config", str(cfg), "feeds", "import", str(opml_file)]) == 0
    out = capsys.readouterr().out
    assert "skipped 'bad': 'javascript:alert(1)' is not an http(s) URL" in out
    assert "2 feeds added" in out and "1 already there" in out
    settings = config.load(cfg)
    assert [(f.url, f.name) for f in settings.feeds] == [
        ("https://a.example/rss", "A"), ("https://b.example/feed.xml", "Sahel & Co"),
        ("http://c.example/ru", "Кремль")]
    assert cfg.read_text().startswith("# my feeds\n")  # the user's file, comments kept
    assert main(["--config", str(cfg), "feeds", "import", str(opml_file)]) == 0
    assert "0 feeds added" in capsys.readouterr().out  # idempotent

    assert main(["--config", str(cfg), "feeds", "export"]) == 0
    exported = ET.fromstring(capsys.readouterr().out)
    assert [o.get("xmlUrl") for o in exported.iter("outline")] == [
        f.url for f in settings.feeds]
    assert [o.get("title") for o in exported.iter("outline")][1] == "Sahel & Co"

    bomb = tmp_path / "bomb.opml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]>'
                    '<opml><body><outline xmlUrl="https://x.example/&a;"/></body></opml>')
    assert main(["--config", str(cfg), "feeds", "import", str(bomb)]) == 1
    assert "not OPML" in capsys.readouterr().err
    assert main(["--config", str(cfg), "feeds", "import", str(tmp_path / "none")]) == 2


def test_search_stored_articles_with_the_query_language(
        tmp_path: Path, web: Web, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    web.routes.update({
        "/a/1": Route(200, page("Wagner leaves Mali", "The Wagner Group said its fighters "
                                "would leave Mali and hand over to Africa Corps. " * 3),
                      {"Content-Type": "text/html"}),
        "/a/2": Route(200, page("Council budget", "The council argued about the budget "
                                "and the bridge for three hours on Tuesday. " * 3),
                      {"Content-Type": "text/html"}),
        "/rss.xml": Route(200, rss([("Wagner leaves Mali", web.url("/a/1"), "x"),
                                    ("Council budget", web.url("/a/2"), "y")]),
                          {"Content-Type": "application/rss+xml"}),
    })
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss.xml")], smtp_port=None, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                       extra='[[watchlists]]\nname = "people"\nchannels = []\n'
                             '[[watchlists.entities]]\nid = "wagner"\nname = "Wagner Group"\n'
                             'aliases = ["Wagner", "Вагнер"]\n')
    assert main(["--config", str(cfg), "once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "search", '"Africa Corps" NEAR/8 Mali']) == 0
    out = capsys.readouterr().out
    assert "Wagner leaves Mali" in out and "Council" not in out
    assert main(["--config", str(cfg), "search", "budget AND NOT bridge"]) == 1
    assert "nothing found" in capsys.readouterr().out
    assert main(["--config", str(cfg), "search", "(budget"]) == 2
    capsys.readouterr()
    # the watchlists' entities are there as @id; an entity alone is not a hit of the query
    assert main(["--config", str(cfg), "search", "@wagner AND Mali"]) == 0
    assert "Wagner leaves Mali" in capsys.readouterr().out
    assert main(["--config", str(cfg), "search", "@wagner AND budget"]) == 1
    capsys.readouterr()
    assert main(["--config", str(cfg), "search", "council or bridge"]) == 1  # three words
    assert "'or' is searched for as a word; operators are upper case (OR)" in \
        capsys.readouterr().err


def test_progress_shows_on_a_terminal_only() -> None:
    import io

    from monitor.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Progress("backfill sahel", 4, screen)
    for _ in range(4):
        bar.advance()
    bar.close()
    assert screen.getvalue().endswith("backfill sahel [" + "#" * 30 + "] 4/4\n")
    piped = io.StringIO()
    bar = Progress("polling", 4, piped)
    bar.advance(4)
    bar.close()
    assert piped.getvalue() == ""


def test_the_docker_image_layout_starts_with_the_example_config(tmp_path: Path,
                                                                 web: Web) -> None:
    """The image's files and environment, as the Dockerfile lays them out (COPY, the config
    copied to /config, ENV), under a temporary root: `monitor check` passes on the example
    config as shipped, and `monitor once` runs a cycle with it (its feeds pointed at a
    loopback server, as no test leaves this machine)."""
    import re
    import shutil

    root = tmp_path / "root"
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    workdir = next(line.split()[1] for line in lines if line.startswith("WORKDIR "))

    def inside(path: str) -> Path:
        return root / path.lstrip("/")

    for line in lines:
        if line.startswith("COPY "):
            *sources, target = line.split()[1:]
            dest = inside(target if target.startswith("/") else f"{workdir}/{target}")
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, dest)
                else:
                    dest.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, dest / src.name)
    copy_config = re.search(r"cp -r (\S+)/\. (\S+)", text)
    assert copy_config, "the Dockerfile no longer copies the example config to /config"
    shutil.copytree(inside(f"{workdir}/{copy_config.group(1)}"), inside(copy_config.group(2)),
                    dirs_exist_ok=True)
    inside("/data").mkdir()
    env_line = next(line for line in lines if line.startswith("ENV "))
    image_env = dict(pair.split("=", 1) for pair in env_line.split()[1:])
    image_env = {k: re.sub(r"(?<![:/])/(config|data|app)\b", lambda m: str(inside(m.group(0))),
                           v) for k, v in image_env.items()}
    env = {**os.environ, **image_env}
    env.pop("MONITOR_TEST_PG", None)

    def monitor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=inside(workdir),
                              env=env, capture_output=True, text=True, timeout=300)

    out = monitor("check")
    assert out.returncode == 0, out.stdout + out.stderr
    config_file = Path(image_env["MONITOR_CONFIG"])
    web.routes["/rss.xml"] = Route(200, b'<?xml version="1.0"?><rss version="2.0"><channel>'
                                   b"<title>t</title><item><title>Wagner in Gao</title><link>"
                                   + web.url("/a/1").encode() + b"</link><description>Wagner "
                                   b"fighters reached Gao.</description></item></channel></rss>",
                                   {"Content-Type": "application/rss+xml"})
    shipped = config_file.read_text()
    local = re.sub(r'(?m)^url = "https?://(?!127\.)[^"]+"', f'url = "{web.url("/rss.xml")}"',
                   shipped, count=1)
    local = re.sub(r"(?ms)^\[\[feeds\]\]\nurl = \"https?://(?!127\.)[^\n]*\n(?:[^\[\n][^\n]*\n)*",
                   "", local)
    local = re.sub(r"(?m)^allowed_hosts = \[\]", f'allowed_hosts = ["127.0.0.1:{web.port}"]',
                   local)
    config_file.write_text(local)
    out = monitor("once")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"feed ok: {web.url('/rss.xml')}: 1 new" in out.stdout, out.stdout + out.stderr
    status = monitor("status")
    seeds = re.search(r"seeds (\d+)", status.stdout)
    assert seeds and int(seeds.group(1)) > 0, status.stdout  # the image's seeds were loaded


def test_a_log_line_clears_the_progress_line_first() -> None:
    import io
    import logging

    from monitor.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    handler = logging.StreamHandler(screen)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        bar = Progress("polling", 3, screen)
        bar.advance()
        logging.getLogger("monitor").warning("feed=x status=failed")
        bar.advance()
        bar.close()
        logging.getLogger("monitor").warning("after")
    finally:
        root.removeHandler(handler)
    lines = screen.getvalue().split("\n")
    assert lines[0] == "\rpolling [##########....................] 1/3\r\033[Kfeed=x status=failed"
    assert lines[1] == "\rpolling [####################..........] 2/3"
    assert lines[2] == "after"  # the bar was closed: nothing left to clear
