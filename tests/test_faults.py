"""Faults an outside run found by trying to break the daemon: delivery that stopped, alerts lost
in silence, hangs and a leaked password. Each through real components on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor import config
from monitor.cli import main
from monitor.config import EmailChannel
from monitor.errors import DeliveryError, PermanentDeliveryError
from monitor.feeds import Entry, distinct
from monitor.notify.email import EmailSender
from monitor.notify.slack import SlackSender
from monitor.reload import Reloader
from monitor.service import Service
from monitor.store.outbox import DigestJob
from monitor.store.tables import Article, Digest, Feed, Match
from monitor.urls import redact
from tests.builders import page, rss
from tests.conftest import Clock, Mailbox, Route, Web, write_config
from tests.test_end_to_end import LOREM

STORY = "France ended Operation Barkhane in Mali this week. " + LOREM
OTHER = ("Barkhane troops left their last base in Gao on Monday, handing it to the Malian army. "
         "Convoys crossed the desert towards Niger under escort, and local traders said the "
         "market near the airfield was quiet for the first time in nine years.")


@pytest.fixture
def story(web: Web) -> Web:
    web.routes["/a/1"] = Route(200, page("Barkhane ends", STORY), {"Content-Type": "text/html"})
    web.routes["/rss.xml"] = Route(200, rss([("Barkhane ends", web.url("/a/1"), "x")]),
                                   {"Content-Type": "application/rss+xml"})
    return web


def digests(svc: Service) -> list[Digest]:
    with svc.sessions() as session:
        rows = list(session.scalars(select(Digest).order_by(Digest.id)))
        session.expunge_all()
        return rows


def job(**over: Any) -> DigestJob:
    values: dict[str, Any] = dict(
        id=1, watchlist="sahel", channel="email", subject="[monitor] sahel: 1 new article",
        body_text="text", body_html="<p>html</p>", message_id="<1.sahel@example.org>",
        slack_payload=json.dumps([{"text": "one"}, {"text": "two"}]), attempts=1, parts_sent=0)
    values.update(over)
    return DigestJob(**values)


# -- delivery never stops ----------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["Wed, 21 Oct 2099 07:28:00 GMT", "9" * 40,
                                         "Fri, 31 Dec 9999 23:59:59 GMT", "soon"])
def test_slack_429_with_any_retry_after_waits_within_bounds_then_delivers_once(
        tmp_path: Path, db_url: str, story: Web, slack: Web,
        services: Callable[..., Service], retry_after: str) -> None:
    slack.routes["/hook"] = [Route(429, b"rate_limited", {"Retry-After": retry_after}),
                             Route(200, b"ok")]
    clock = Clock()
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[story.url("/rss.xml")],
                       smtp_port=None, slack_url=slack.url("/hook"),
                       allowed=[f"127.0.0.1:{story.port}"])
    svc = services(cfg, clock)
    svc.cycle(ignore_schedule=True)
    [row] = digests(svc)
    assert row.status == "queued" and "429" in (row.last_error or "")  # not stuck 'sending'
    assert row.next_attempt_at is not None
    assert clock.now < row.next_attempt_at <= clock.now + timedelta(days=1)
    clock.now += timedelta(days=1, seconds=1)
    svc.cycle()
    assert [d.status for d in digests(svc)] == ["sent"]
    assert len(slack.posts("/hook")) == 2


def test_one_digest_that_cannot_be_built_never_blocks_another(
        tmp_path: Path, db_url: str, story: Web, slack: Web, smtp: tuple[Mailbox, int],
        services: Callable[..., Service]) -> None:
    """A sender that raises (here: a From header a config of an older version let through)
    fails its own digest; the Slack digest of the same batch goes out."""
    _box, port = smtp
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[story.url("/rss.xml")],
                       smtp_port=port, slack_url=slack.url("/hook"),
                       allowed=[f"127.0.0.1:{story.port}"])
    svc = services(cfg)
    s = svc.settings
    broken = EmailChannel.model_construct(**{**s.channels.email.model_dump(),
                                             "sender": "monitor@example.org\r\nBcc: x@evil"})
    svc.settings = s.model_copy(update={"channels": s.channels.model_copy(
        update={"email": broken})})
    svc.cycle(ignore_schedule=True)
    status = {d.channel: d.status for d in digests(svc)}
    assert status == {"email": "failed", "slack": "sent"}
    assert len(slack.posts("/hook")) == 1


@pytest.mark.parametrize("key,value", [
    ("channels.email.sender", '"monitor@example.org\\r\\nBcc: spy@example.org"'),
    ("channels.email.sender", '"not an address"'),
    ("channels.email.subject", '"digest\\nBcc: spy@example.org"'),
    ("poll.dead_after", '"999999d"'), ("poll.tick", "1e300"), ("poll.interval", "inf"),
    ("poll.interval", "nan"), ("poll.max_backoff", "-inf"), ("fetch.timeout", "inf"),
    ("channels.slack.timeout", "1e308"), ("channels.email.timeout", "nan"),
    ("retention.after", '"9999999d"'), ("fetch.connect_timeout", "1e400"),
    ("watchlists[0].schedule", '"every 99999999d"'),
])
def test_check_refuses_unbounded_and_unsafe_values_naming_the_key(
        tmp_path: Path, key: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    section, _, name = key.rpartition(".")
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/m.db", feeds=[],
                       smtp_port=2525, slack_url="http://127.0.0.1:9/hook", allowed=[],
                       seeds=False)
    header = "[[watchlists]]" if section == "watchlists[0]" else f"[{section}]"
    lines = cfg.read_text().splitlines()
    if header not in lines:
        lines += [header]
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    lines = [line for i, line in enumerate(lines)
             if not (start <= i < end and line.startswith(f"{name} ="))]
    lines.insert(start, f"{name} = {value}")
    cfg.write_text("\n".join(lines) + "\n")
    assert main(["--config", str(cfg), "check"]) == 2
    err = capsys.readouterr().err
    named = "watchlists[0]: schedule" if name == "schedule" else key
    assert "Traceback" not in err and named in err and len(err.splitlines()) == 1, err


# -- nothing lost in silence -----------------------------------------------------------------


def test_a_watchlist_file_gone_for_a_moment_keeps_matching(
        tmp_path: Path, db_url: str, web: Web, services: Callable[..., Service],
        caplog: pytest.LogCaptureFixture) -> None:
    wl_dir = tmp_path / "watchlists"
    wl_dir.mkdir()
    wl_file = wl_dir / "desk.toml"
    wl_file.write_text('terms = ["Takuba"]\nchannels = []\n')
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss.xml")],
                       smtp_port=None, slack_url=None, allowed=[f"127.0.0.1:{web.port}"])
    cfg.write_text('watchlist_files = ["watchlists/*.toml"]\n' + cfg.read_text())
    svc = services(cfg)
    reloader = Reloader(cfg, svc.settings)

    def publish(n: int) -> None:
        items = [(f"Takuba task force report {i}", web.url(f"/t/{i}"),
                  f"The Takuba task force, part {i}, moved north.") for i in range(n)]
        web.routes["/rss.xml"] = Route(200, rss(items), {"Content-Type": "application/rss+xml"})

    wl_file.rename(tmp_path / "desk.toml.swp")  # an editor's save, a git checkout
    with caplog.at_level(logging.WARNING, "monitor"):
        assert reloader.check() is None  # held: the running watchlists stay
    assert "'desk'" in caplog.text and "gone" in caplog.text
    publish(3)
    svc.cycle(ignore_schedule=True)
    (tmp_path / "desk.toml.swp").rename(wl_file)
    fresh = reloader.check()
    if fresh is not None:
        svc.apply(fresh)
    publish(5)
    svc.cycle(ignore_schedule=True)
    assert [w.name for w in svc.settings.watchlists] == ["sahel", "desk"]
    with svc.sessions() as session:
        matched = session.scalars(select(Match.article_id).where(Match.watchlist == "desk"))
        assert len(set(matched)) == 5  # every one of them, those of the gap included

    wl_file.unlink()  # removed on purpose, then an explicit reload (SIGHUP): it goes
    reloader.requested.set()
    fresh = reloader.check()
    assert fresh is not None and [w.name for w in fresh.watchlists] == ["sahel"]
    workers = svc.documents
    svc.apply(fresh)
    assert svc.documents is not workers  # other watchlists, other workers, started at once
    assert svc.documents._pool is not None


def test_an_entry_page_with_a_malformed_redirect_is_stored_from_its_feed_text(
        tmp_path: Path, db_url: str, web: Web, services: Callable[..., Service]) -> None:
    web.routes["/a/1"] = Route(302, b"", {"Location": "http:foo"})
    web.routes["/rss.xml"] = Route(200, rss([("Barkhane ends", web.url("/a/1"),
                                              "France ended Operation Barkhane in Mali.")]),
                                   {"Content-Type": "application/rss+xml"})
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss.xml")],
                       smtp_port=None, slack_url=None, allowed=[f"127.0.0.1:{web.port}"])
    svc = services(cfg)
    [result] = svc.cycle(ignore_schedule=True)
    assert (result.status, result.new, result.left) == ("ok", 1, 0)
    with svc.sessions() as session:
        article = session.scalars(select(Article).where(Article.is_seed.is_(False))).one()
        assert article.text_source == "summary" and "redirect" in (article.fetch_error or "")
        feed = session.scalars(select(Feed)).one()
        assert feed.error_count == 0 and feed.next_check_at is not None
        assert feed.next_check_at > Clock().now + timedelta(minutes=20)
    assert svc.cycle() == []  # not due again at the next tick
    assert web.hits("/a/1") == 1


def _entry(guid: str, link: str, title: str) -> Entry:
    from monitor.urls import canonical_url
    return Entry(guid=guid, link=link, canonical=canonical_url(link) if link else "",
                 title=title, summary=f"{title}: what happened.", published=None)


def test_items_sharing_a_guid_or_a_landing_page_stay_apart_and_repeats_stay_one() -> None:
    landing = "https://outlet.example/news"
    entries = distinct([
        _entry("same", "", "Wagner convoy ambushed"), _entry("same", "", "Barkhane leaves Gao"),
        _entry("a", landing, "Takuba ends"), _entry("b", landing, "MINUSMA hands over Kidal"),
        _entry("", landing, "Coup in Bamako"),
        _entry("r", "https://outlet.example/r", "Repeat"),
        _entry("r", "https://outlet.example/r", "Repeat"),
        _entry("solo", "https://outlet.example/solo", "Solo"),
    ])
    keys = [e.key(7) for e in entries]
    assert len(set(keys)) == 7  # five different items, one repeated item, one plain one
    assert all(e.canonical == "" for e in entries if e.link == landing)  # not fetched
    assert entries[-1] == _entry("solo", "https://outlet.example/solo", "Solo")  # untouched
    assert entries[-1].key(7) == _entry("solo", "https://outlet.example/solo", "Solo").key(7)


def test_different_items_sharing_a_guid_or_landing_page_are_each_stored_and_alerted(
        tmp_path: Path, db_url: str, web: Web, services: Callable[..., Service]) -> None:
    web.routes["/landing"] = Route(200, page("Front page", "All our news. " + LOREM),
                                   {"Content-Type": "text/html"})
    items = "".join(
        f"<item><title>{t}</title>{link}<guid isPermaLink=\"false\">{g}</guid>"
        f"<description>{t}, officials said.</description></item>"
        for t, link, g in [
            ("Wagner convoy ambushed near Kidal", "", "story"),
            ("Barkhane base handed over in Gao", "", "story"),
            ("Takuba task force disbanded", f"<link>{web.url('/landing')}</link>", "x1"),
            ("MINUSMA leaves Timbuktu", f"<link>{web.url('/landing')}</link>", "x2"),
        ])
    web.routes["/rss.xml"] = Route(200, (f'<?xml version="1.0"?><rss version="2.0"><channel>'
                                         f"<title>Wire</title>{items}</channel></rss>").encode(),
                                   {"Content-Type": "application/rss+xml"})
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss.xml")],
                       smtp_port=2525, slack_url=None, allowed=[f"127.0.0.1:{web.port}"])
    svc = services(cfg)
    [result] = svc.cycle(ignore_schedule=True)
    assert (result.new, result.alerts) == (4, 4)
    assert web.hits("/landing") == 0
    [second] = svc.cycle(ignore_schedule=True)
    assert second.new == 0


def test_a_refused_recipient_is_reported_in_status_and_the_next_digest(
        tmp_path: Path, db_url: str, story: Web, smtp: tuple[Mailbox, int],
        services: Callable[..., Service], capsys: pytest.CaptureFixture[str]) -> None:
    box, port = smtp
    box.refuse_rcpt = {"gone@example.org"}
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[story.url("/rss.xml")],
                       smtp_port=port, slack_url=None, allowed=[f"127.0.0.1:{story.port}"])
    cfg.write_text(cfg.read_text().replace(
        'recipients = ["analyst@example.org"]',
        'recipients = ["analyst@example.org", "gone@example.org"]'))
    clock = Clock()
    svc = services(cfg, clock)
    svc.cycle(ignore_schedule=True)
    assert len(box.messages) == 1 and box.envelopes[0].rcpt_tos == ["analyst@example.org"]
    [first] = digests(svc)
    assert first.status == "sent" and "gone@example.org" in (first.last_error or "")

    capsys.readouterr()
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "gone@example.org" in out and "550" in out

    story.routes["/a/2"] = Route(200, page("Barkhane again", OTHER),
                                   {"Content-Type": "text/html"})
    story.routes["/rss.xml"] = Route(200, rss([("Barkhane again", story.url("/a/2"), "x")]),
                                     {"Content-Type": "application/rss+xml"})
    clock.now += timedelta(hours=2)
    svc.cycle(ignore_schedule=True)
    assert len(box.messages) == 2
    footer = box.messages[1].get_body(("plain",))
    assert footer is not None and "gone@example.org" in footer.get_content()


@pytest.mark.parametrize("body,status", [
    (b"<!DOCTYPE html><html><body><form>Log in to the guest Wi-Fi</form></body></html>",
     "queued"),
    (b"invalid_payload", "failed"),
    (b"", "queued"),
])
def test_slack_200_without_ok_is_not_delivered(
        tmp_path: Path, db_url: str, story: Web, slack: Web, body: bytes, status: str,
        services: Callable[..., Service], capsys: pytest.CaptureFixture[str]) -> None:
    slack.routes["/hook"] = Route(200, body, {"Content-Type": "text/html"})
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[story.url("/rss.xml")],
                       smtp_port=None, slack_url=slack.url("/hook"),
                       allowed=[f"127.0.0.1:{story.port}"])
    clock = Clock()
    svc = services(cfg, clock)
    svc.cycle(ignore_schedule=True)
    [row] = digests(svc)
    assert row.status == status and row.last_error
    capsys.readouterr()
    assert main(["--config", str(cfg), "status"]) == 0
    assert row.last_error[:40] in capsys.readouterr().out
    if status == "queued":  # the portal goes away: delivered, once
        slack.routes["/hook"] = Route(200, b"ok")
        clock.now += timedelta(hours=2)
        svc.cycle()
        assert [d.status for d in digests(svc)] == ["sent"]
        assert len(slack.posts("/hook")) == 2


# -- no hangs ----------------------------------------------------------------------------------


def _dripping_smtp(stop: threading.Event) -> int:
    """An SMTP server that answers its greeting one byte every 0.3 s, for ever."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
        with conn:
            for byte in b"220 " + b"x" * 10_000:
                if stop.wait(0.3):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1])


def test_a_dripping_smtp_server_is_cut_off_at_the_total_deadline() -> None:
    stop = threading.Event()
    port = _dripping_smtp(stop)
    settings = EmailChannel(host="127.0.0.1", port=port, tls="none", timeout=1.5,
                            sender="monitor@example.org", recipients=["a@example.org"])
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="deadline"):
            EmailSender(settings).send(job(), ["a@example.org"])
    finally:
        stop.set()
    assert time.monotonic() - started < 4


def test_a_dripping_slack_endpoint_is_cut_off_at_the_total_deadline(slack: Web) -> None:
    stop = threading.Event()

    def drip(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
        h.wfile.flush()
        for _ in range(10_000):
            if stop.wait(0.3):
                return
            h.wfile.write(b"o")
            h.wfile.flush()

    slack.routes["/hook"] = Route(action=drip)
    posted: list[int] = []
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="deadline"):
            SlackSender(slack.url("/hook"), 1.5).send(job(channel="slack"), posted.append)
    finally:
        stop.set()
    assert time.monotonic() - started < 4 and posted == []


def test_starttls_not_offered_is_a_permanent_failure_with_a_hint(
        smtp: tuple[Mailbox, int]) -> None:
    _box, port = smtp
    settings = EmailChannel(host="127.0.0.1", port=port, tls="starttls", timeout=5,
                            sender="monitor@example.org", recipients=["a@example.org"])
    with pytest.raises(PermanentDeliveryError, match=r"STARTTLS.*tls"):
        EmailSender(settings).send(job(), ["a@example.org"])


# -- no leaks ----------------------------------------------------------------------------------


def test_redact_masks_userinfo_of_every_url_in_a_text() -> None:
    assert redact("feed https://bob:s3cret@host.example/rss failed") == \
        "feed https://***@host.example/rss failed"
    assert redact("http://tok@h/x and ftp://u:p@h2") == "http://***@h/x and ftp://***@h2"
    assert redact("mail bob@example.org, https://example.org/a@b") == \
        "mail bob@example.org, https://example.org/a@b"


def test_a_feed_password_appears_in_no_output_log_or_digest(
        tmp_path: Path, db_url: str, story: Web, smtp: tuple[Mailbox, int], slack: Web,
        services: Callable[..., Service], capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp
    secret = "s3cr3t-Pa55"
    failing = f"http://reader:{secret}@127.0.0.1:{story.port}/private.xml"  # answers 404
    cfg = write_config(tmp_path / "m.toml", db_url=db_url,
                       feeds=[story.url("/rss.xml"), failing], smtp_port=port,
                       slack_url=slack.url("/hook"), allowed=[f"127.0.0.1:{story.port}"])
    cfg.write_text(cfg.read_text().replace("[fetch]", '[poll]\ndead_after = "1h"\n[fetch]')
                   + '[log]\nlevel = "DEBUG"\n')
    clock = Clock()
    with caplog.at_level(logging.DEBUG, "monitor"):
        svc = services(cfg, clock)
        svc.cycle(ignore_schedule=True)  # the feed fails; its record says since when
        story.routes["/a/2"] = Route(200, page("Barkhane again", OTHER),
                                     {"Content-Type": "text/html"})
        story.routes["/rss.xml"] = Route(200, rss([("Barkhane again", story.url("/a/2"), "x")]),
                                         {"Content-Type": "application/rss+xml"})
        clock.now += timedelta(hours=3)
        svc.cycle(ignore_schedule=True)  # failing for 3 h: the digest's footer says so
        assert main(["--config", str(cfg), "once"]) == 0
        assert main(["--config", str(cfg), "status"]) == 0
    printed = capsys.readouterr()
    shown = [printed.out + printed.err, caplog.text,
             *(m.as_string() for m in box.messages),
             *(json.dumps(p) for p in slack.posts("/hook")),
             *(f"{d.body_text}{d.body_html}{d.slack_payload}{d.last_error}" for d in digests(svc))]
    assert any("private.xml" in s for s in shown[2:])  # the notice is there ...
    assert all(secret not in s for s in shown)  # ... without the password
    with svc.sessions() as session:
        assert all(secret not in (f.last_error or "") for f in session.scalars(select(Feed)))


def test_an_entry_that_crashes_is_a_feed_failure_that_backs_off_and_shows_in_status(
        tmp_path: Path, web: Web, services: Callable[..., Service],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    from monitor import pipeline

    web.routes["/rss.xml"] = Route(200, rss([("Barkhane ends", web.url("/a/1"), STORY),
                                             ("Barkhane leaves Gao", web.url("/a/2"), OTHER)]),
                                   {"Content-Type": "application/rss+xml", "ETag": '"v1"'})
    for path, body in (("/a/1", STORY), ("/a/2", OTHER)):
        web.routes[path] = Route(200, page("Barkhane", body), {"Content-Type": "text/html"})
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss.xml")], smtp_port=None, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], extra="[poll]\ninterval = 1800\n")
    real = pipeline.process_entry

    def buggy(ctx: Any, job: Any, key: str, entry: Entry, *args: Any) -> Any:
        if entry.link.endswith("/a/2"):
            raise RuntimeError("a bug")  # stands for any bug in the entry's processing
        return real(ctx, job, key, entry, *args)

    monkeypatch.setattr(pipeline, "process_entry", buggy)
    clock = Clock()
    svc = services(cfg, clock)
    with caplog.at_level(logging.ERROR, "monitor"):
        [result] = svc.cycle(ignore_schedule=True)
        assert (result.status, result.new, result.left) == ("failed", 1, 1)
        for _ in range(5):  # five ticks: not polled again, no more tracebacks
            clock.now += timedelta(seconds=30)
            assert svc.cycle() == []
    assert len([r for r in caplog.records if "crashed" in r.getMessage()]) == 1
    with svc.sessions() as session:
        feed = session.scalars(select(Feed)).one()
        assert feed.error_count == 1 and feed.etag is None
        error = feed.last_error or ""
        assert "1 of 2 new entries" in error and "a bug" in error
    assert main(["--config", str(cfg), "status"]) == 0
    assert "RuntimeError('a bug')" in capsys.readouterr().out
    monkeypatch.setattr(pipeline, "process_entry", real)  # the bug fixed
    clock.now += timedelta(hours=2)  # past the back-off (the interval, with jitter)
    [result] = svc.cycle()
    assert (result.status, result.new, result.left) == ("ok", 1, 0)
    with svc.sessions() as session:
        assert len(session.scalars(select(Article).where(Article.is_seed.is_(False))).all()) == 2
        assert session.scalars(select(Feed)).one().error_count == 0


def test_check_names_the_bad_value_and_suggests_the_key_or_value_meant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=[], extra='[poll]\nintervall = "30m"\n[digest]\nsnippet_chars = '
                                         '"many"\n')
    cfg.write_text(cfg.read_text().replace('channels = []', 'channels = ["pager", "slak"]'))
    assert main(["--config", str(cfg), "check"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert f"config error: {cfg}: poll.intervall: unknown key 'intervall'; did you mean " \
           "'interval'?" in err
    assert f"config error: {cfg}: watchlists[0].channels[0]: 'pager' is not allowed; use " \
           "'email', 'slack' or 'apprise'" in err
    assert any("channels[1]: 'slak' is not allowed" in e and "did you mean 'slack'?" in e
               for e in err)
    assert any("digest.snippet_chars:" in e and "got 'many'" in e for e in err)


def test_check_refuses_unitless_durations_and_empty_globs_and_hints_at_schedules(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=[], watchlist='schedule = "every hour"',
                       extra='[poll]\ninterval = "30"\n')
    cfg.write_text('watchlist_files = ["desks/*.toml"]\n' + cfg.read_text())
    assert main(["--config", str(cfg), "check"]) == 2
    err = capsys.readouterr().err
    assert "poll.interval: '30' has no unit: write '30s', '30m' or '30h'" in err
    assert "watchlists[0]: schedule: " in err and "'hourly', 'daily 07:00'" in err
    assert f"watchlist_files[0]: no file matches {tmp_path / 'desks' / '*.toml'}" in err


def test_check_warns_about_a_feed_the_fetcher_will_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:8080/rss.xml", "http://[::1]/a.xml",
                              "http://10.1.2.3/b.xml", "https://news.example/c.xml"],
                       smtp_port=None, slack_url=None, allowed=["10.1.2.3"])
    assert main(["--config", str(cfg), "check"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("warning:")]
    assert warned == [
        f"warning: {cfg}: feeds[0].url: 127.0.0.1 is an internal address, refused when "
        'fetched; open it with fetch.allowed_hosts = ["127.0.0.1:8080"] (or '
        "fetch.allow_private_addresses = true)",
        f"warning: {cfg}: feeds[1].url: [::1] is an internal address, refused when fetched; "
        'open it with fetch.allowed_hosts = ["[::1]:80"] (or fetch.allow_private_addresses = '
        "true)"]


def test_an_empty_glob_is_refused_at_start_but_a_reload_holds_or_applies_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "desks").mkdir()
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["https://news.example/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=[])
    cfg.write_text('watchlist_files = ["desks/*.toml"]\n' + cfg.read_text())
    assert main(["--config", str(cfg), "check"]) == 2
    assert "watchlist_files[0]: no file matches" in capsys.readouterr().err
    assert main(["--config", str(cfg), "once"]) == 2  # the daemon does not start either
    assert [w.name for w in config.load(cfg, empty_globs=True).watchlists] == ["sahel"]
