"""Delivery through real SMTP and Slack endpoints: outages wait in the outbox, permanent
failures are surfaced, rate limits are honoured, and a second daemon is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from monitor.errors import AlreadyRunning
from monitor.store.db import daemon_lock
from tests.builders import page, rss
from tests.conftest import ROOT, Mailbox, Route, Web, free_port, write_config
from tests.test_end_to_end import LOREM


@pytest.fixture
def one_story(web: Web) -> Web:
    web.routes["/a/1"] = Route(200, page("Barkhane ends", "France ended Operation Barkhane "
                                         "in Mali this week. " + LOREM), {"Content-Type":
                                                                           "text/html"})
    web.routes["/rss.xml"] = Route(200, rss([("Barkhane ends", web.url("/a/1"), "x")]),
                                   {"Content-Type": "application/rss+xml"})
    return web


def test_smtp_down_then_up_sends_exactly_once(tmp_path: Path, db_url: str, one_story: Web,
                                              smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    dead = free_port()  # nothing listens here: the SMTP server is "down"
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[one_story.url("/rss.xml")],
                       smtp_port=dead, slack_url=None, allowed=[f"127.0.0.1:{one_story.port}"])
    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 1  # still queued

    cfg.write_text(cfg.read_text().replace(f"port = {dead}", f"port = {port}"))
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert main(["--config", str(cfg), "once"]) == 0
    assert len(box.messages) == 1
    body = box.messages[0].get_body(("plain",))
    assert body is not None and "Barkhane ends" in body.get_content()


def test_smtp_5xx_is_a_permanent_failure_shown_in_status(
        tmp_path: Path, db_url: str, one_story: Web, smtp: tuple[Mailbox, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    box, port = smtp
    box.refuse = "554 5.7.1 rejected by policy"
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[one_story.url("/rss.xml")],
                       smtp_port=port, slack_url=None, allowed=[f"127.0.0.1:{one_story.port}"])
    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0  # nothing left queued
    capsys.readouterr()
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "Failed deliveries (1)" in out and "554" in out


def test_slack_429_waits_then_delivers_once(tmp_path: Path, db_url: str, one_story: Web,
                                            slack: Web) -> None:
    slack.routes["/hook"] = [Route(429, b"rate_limited", {"Retry-After": "1"}),
                             Route(200, b"ok")]
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[one_story.url("/rss.xml")],
                       smtp_port=None, slack_url=slack.url("/hook"),
                       allowed=[f"127.0.0.1:{one_story.port}"])
    assert main(["--config", str(cfg), "once"]) == 0  # first attempt: 429, queued
    assert len(slack.posts("/hook")) == 1
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(slack.posts("/hook")) == 2  # the 429'd one and its one successful retry


def test_slack_404_is_permanent(tmp_path: Path, db_url: str, one_story: Web, slack: Web) -> None:
    slack.routes["/hook"] = Route(404, b"no_service")
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[one_story.url("/rss.xml")],
                       smtp_port=None, slack_url=slack.url("/hook"),
                       allowed=[f"127.0.0.1:{one_story.port}"])
    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(slack.posts("/hook")) == 1  # not retried


def test_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "data" / "monitor.db"
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{db}", feeds=[],
                       smtp_port=None, slack_url=None, allowed=[])
    with daemon_lock(db):
        assert main(["--config", str(cfg), "once"]) == 1
        assert "already polling" in capsys.readouterr().err
        assert main(["--config", str(cfg), "status"]) == 0  # read-only commands still work
        with pytest.raises(AlreadyRunning), daemon_lock(db):
            pass


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command the parser knows (found, not listed), nested ones included."""
    import argparse

    from monitor.cli import _parser

    def commands(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    path = [*prefix, name]
                    assert sub.description, f"{' '.join(path)}: no description"
                    out += [path, *commands(sub, path)]
        return out

    found = commands(_parser(), [])
    assert {"run", "once", "digest", "check", "status", "explain", "backfill", "search",
            "prune", "health"} <= {c[0] for c in found} and ["feeds", "import"] in found
    for command in found:
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
        assert capsys.readouterr().out.strip()


def test_config_after_subcommand_and_bad_config_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\nurl = 3\n")
    assert main(["check", "--config", str(bad)]) == 2
    assert main(["--config", str(tmp_path / "missing.toml"), "check"]) == 2


def test_every_configurable_channel_has_a_sender_in_the_registry(tmp_path: Path) -> None:
    from monitor import config, notify

    assert set(config.CHANNEL_NAMES) == set(notify.CHANNELS)
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=2525,
                       slack_url="http://127.0.0.1:9/hook", allowed=[],
                       extra='[channels.apprise]\nurls = ["json://127.0.0.1:9/x"]\n')
    settings = config.load(cfg)
    for channel in config.CHANNEL_NAMES:
        made = notify.sender(channel, settings, "sahel", lambda: datetime.now(UTC))
        assert callable(made.send), channel


def test_test_channel_sends_through_email_and_slack_and_says_why_not(
        tmp_path: Path, smtp: tuple[Mailbox, int], slack: Web,
        capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    box, port = smtp
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=port,
                       slack_url=slack.url("/hook"), allowed=[])
    assert main(["--config", str(cfg), "test-channel", "email"]) == 0
    assert "test message sent on email (sahel)" in capsys.readouterr().out
    [message] = box.messages
    assert message["Subject"] == "[monitor] test message (sahel)"
    assert message["To"] == "analyst@example.org"
    assert main(["--config", str(cfg), "test-channel", "slack"]) == 0
    [posted] = slack.posts("/hook")
    assert "test message from monitor" in str(posted["text"])
    assert main(["--config", str(cfg), "test-channel", "apprise"]) == 2
    assert "[channels.apprise] is not configured" in capsys.readouterr().err
    slack.routes["/hook"] = Route(404, b"no_team")
    assert main(["--config", str(cfg), "test-channel", "slack"]) == 1
    assert "test message on slack (sahel) failed: " in capsys.readouterr().out
    assert len(box.messages) == 1  # nothing else went out, nothing was stored
    assert main(["--config", str(cfg), "status"]) == 0
    assert "digests unsent 0" in capsys.readouterr().out


def test_watchlists_lists_each_with_what_it_looks_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    assert main(["--config", str(ROOT / "config" / "monitor.toml"), "watchlists"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sahel: ") and " entities (" in out[0] and "schedule: " in out[0]
    assert out[1].strip() == f"from {ROOT / 'config' / 'watchlists' / 'sahel.toml'}"


def test_the_relay_bookkeeping_with_an_injected_sender(tmp_path: Path, one_story: Web) -> None:
    """A sender that fails twice (once a bug, once a transient error), then sends: the digest is
    retried after each, sent once, and never sent again."""
    from datetime import timedelta

    from monitor import config
    from monitor.errors import DeliveryError
    from monitor.service import Service
    from tests.conftest import Clock

    outcomes: list[object] = [RuntimeError("a bug"), DeliveryError("busy", retry_after=30)]
    sent: list[int] = []

    class Flaky:
        def send(self, job: Any, on_part: Any) -> str | None:
            if outcomes:
                failure = outcomes.pop(0)
                assert isinstance(failure, Exception)
                raise failure
            sent.append(job.id)
            return None

    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[one_story.url("/rss.xml")], smtp_port=free_port(),
                       slack_url=None, allowed=[f"127.0.0.1:{one_story.port}"])
    clock = Clock()
    svc = Service(config.load(cfg), clock=clock, senders={"email": lambda *_: Flaky()})
    try:
        svc.prepare()
        svc.cycle(ignore_schedule=True)
        assert (svc.last_relay.retrying, sent) == (1, [])  # the bug: retried, not stuck
        clock.now += timedelta(seconds=5)
        assert svc.relay().sent == 0  # backing off
        clock.now += timedelta(minutes=10)
        assert svc.relay().retrying == 1  # the transient error
        clock.now += timedelta(minutes=10)
        assert svc.relay().sent == 1 and sent == [1]
        clock.now += timedelta(hours=1)
        assert svc.relay().sent == 0 and svc.unsent() == 0
    finally:
        svc.close()
