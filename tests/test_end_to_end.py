"""Feeds in, digests out: real HTTP, SMTP and Slack endpoints on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.builders import atom, page, rss
from tests.conftest import ROOT, Mailbox, Route, Web, free_port, write_config

COUNCIL = (
    "Members of the regional assembly argued for three hours over the price of bus tickets, "
    "the repair of the old bridge and a plan to plant trees along the main avenue. A vote "
    "on the final text was postponed until next month after two members walked out. "
)
LOREM = (
    "The council met on Tuesday to discuss the municipal budget for the coming year. "
    "Officials reviewed spending on roads, schools and water supply, and residents asked "
    "questions about the timetable for the new market hall near the river. "
)


def seed_text(name: str) -> str:
    return next((ROOT / "seeds").glob(f"{name}_*.txt")).read_text()


@pytest.fixture
def newsroom(web: Web) -> Web:
    wagner = ("Russian mercenaries of the Wagner Group arrived in Bamako this week, according "
              "to officials in the Malian capital who spoke on condition of anonymity.\n\n"
              "The deployment follows months of talks between the junta and Moscow, and comes "
              "as France reduces its Barkhane force in the north of the country. " + LOREM)
    minusma = ("The UN mission MINUSMA said two peacekeepers were injured near Gao on Sunday "
               "when their convoy struck an explosive device.")
    seed_quarter = " ".join(seed_text("003").split()[: len(seed_text("003").split()) // 4])
    web.routes.update({
        "/a/wagner-arrives": Route(200, page("Wagner fighters arrive in Bamako", wagner),
                                   {"Content-Type": "text/html; charset=utf-8"}),
        "/a/council": Route(200, page("Council debates budget", COUNCIL * 3,
                                      comments="Wagner is my favourite composer, Barkhane too"),
                            {"Content-Type": "text/html"}),
        "/a/seed-repost": Route(200, page("To Bamako with love (repost)", seed_quarter),
                                {"Content-Type": "text/html"}),
        "/rss.xml": Route(200, rss([
            ("Wagner fighters arrive in Bamako", web.url("/a/wagner-arrives"), "Mercenaries."),
            ("Council debates budget", web.url("/a/council"), "Local news."),
            ("To Bamako with love (repost)", web.url("/a/seed-repost"), "A repost."),
        ]), {"Content-Type": "application/rss+xml", "ETag": '"v1"'}),
        "/atom.xml": Route(200, atom([
            ("Peacekeepers hurt near Gao", web.url("/a/gone"), minusma),
            ("Wagner fighters arrive in Bamako", web.url("/a/wagner-arrives?utm_source=x"),
             "Same story, other feed."),
        ]), {"Content-Type": "application/atom+xml"}),
    })
    return web


def test_new_matching_articles_arrive_once_by_mail_and_slack(
        tmp_path: Path, db_url: str, newsroom: Web, smtp: tuple[Mailbox, int], slack: Web,
        capsys: pytest.CaptureFixture[str]) -> None:
    box, port = smtp
    cfg = write_config(tmp_path / "monitor.toml", db_url=db_url,
                       feeds=[newsroom.url("/rss.xml"), newsroom.url("/atom.xml")],
                       smtp_port=port, slack_url=slack.url("/hook"),
                       allowed=[f"127.0.0.1:{newsroom.port}"])

    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0

    assert len(box.messages) == 1
    mail = box.messages[0]
    assert mail["Subject"] == "[monitor] sahel: 2 new articles"
    assert mail.get_content_type() == "multipart/alternative"
    text_part = mail.get_body(("plain",))
    html_part = mail.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    for body in (text, html):
        assert "Wagner fighters arrive in Bamako" in body
        assert newsroom.url("/a/wagner-arrives") in body
        assert "Peacekeepers hurt near Gao" in body  # page 404: alerted from the feed summary
        assert "Council debates budget" not in body  # "Wagner" only in reader comments
        assert "To Bamako with love" not in body  # a copy of seed 003
    assert "MINUSMA" in text and ("Sahel Wire" in text or "Desk Atom" in text)
    assert "Russian mercenaries of the Wagner Group" in text  # snippet from the page text
    assert "<mark" in html

    posts = slack.posts("/hook")
    assert len(posts) == 1
    slack_text = str(posts[0]["blocks"])
    assert "Wagner fighters arrive in Bamako" in slack_text
    assert "Peacekeepers hurt near Gao" in slack_text
    assert "Council debates budget" not in slack_text
    assert posts[0]["unfurl_links"] is False

    # A second cycle and a forced digest send nothing new; the feed answers 304 to its ETag.
    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(box.messages) == 1
    assert len(slack.posts("/hook")) == 1
    rss_requests = [h for m, p, h, _ in newsroom.requests if p == "/rss.xml"]
    assert rss_requests[-1].get("If-None-Match") == '"v1"'

    capsys.readouterr()
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "[ok]" in out and "seeds 5" in out and "sahel / email" in out


def test_new_entries_in_a_later_cycle_go_in_the_next_digest(
        tmp_path: Path, db_url: str, newsroom: Web, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    cfg = write_config(tmp_path / "monitor.toml", db_url=db_url,
                       feeds=[newsroom.url("/rss.xml")], smtp_port=port, slack_url=None,
                       allowed=[f"127.0.0.1:{newsroom.port}"])
    assert main(["--config", str(cfg), "once"]) == 0
    assert len(box.messages) == 1  # a watchlist's first digest goes out at once

    newsroom.routes["/a/takuba"] = Route(200, page(
        "Takuba task force ends", "European special forces of the Takuba task force left "
        "Mali on Thursday, the French army said. " + LOREM), {"Content-Type": "text/html"})
    newsroom.routes["/rss.xml"] = Route(200, rss([
        ("Takuba task force ends", newsroom.url("/a/takuba"), "Takuba leaves."),
        ("Wagner fighters arrive in Bamako", newsroom.url("/a/wagner-arrives"), "Again."),
    ]), {"Content-Type": "application/rss+xml", "ETag": '"v2"'})
    assert main(["--config", str(cfg), "once"]) == 0
    assert len(box.messages) == 1  # hourly schedule: not due yet

    assert main(["--config", str(cfg), "digest", "--preview"]) == 0
    assert len(box.messages) == 1
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(box.messages) == 2
    second = box.messages[1].get_body(("plain",))
    assert second is not None
    content = second.get_content()
    assert "Takuba task force ends" in content
    assert "Wagner fighters arrive in Bamako" not in content
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(box.messages) == 2


def test_a_story_alerts_once_per_channel_even_when_a_channel_came_later(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int], slack: Web,
        services: Callable[..., Any]) -> None:
    """The alert rule is one (``decide.alert_channels``): a copy is alerted only on channels
    where no article of its story went out. The original went out by email before Slack was
    configured; its first copy goes to Slack; its second copy goes nowhere."""
    from sqlalchemy import select

    from monitor.store.tables import Alert, Article
    from tests.conftest import Clock

    story = ("Russian mercenaries of the Wagner Group arrived in Timbuktu on Monday, local "
             "officials said, taking over the camp that French soldiers left last year. " + LOREM)
    items = [(f"Wagner in Timbuktu ({i})", web.url(f"/a/{i}"),
              story.replace("Monday", ["Monday", "Monday morning", "Monday night"][i]))
             for i in range(3)]
    for title, link, body in items:
        web.routes[link.split(str(web.port), 1)[1]] = Route(200, page(title, body),
                                                            {"Content-Type": "text/html"})
    _box, smtp_port = smtp
    db = f"sqlite:///{tmp_path / 'm.db'}"
    allowed = [f"127.0.0.1:{web.port}", f"127.0.0.1:{slack.port}"]
    clock = Clock()

    def cycle(n: int, slack_on: bool) -> None:
        web.routes["/rss.xml"] = Route(200, rss(items[:n]), {"Content-Type": "application/rss+xml"})
        cfg = write_config(tmp_path / f"m{n}.toml", db_url=db, feeds=[web.url("/rss.xml")],
                           smtp_port=smtp_port, allowed=allowed, seeds=False,
                           slack_url=slack.url("/hook") if slack_on else None)
        clock.now += timedelta(hours=1)
        services(cfg, clock).cycle(ignore_schedule=True)

    cycle(1, slack_on=False)
    cycle(2, slack_on=True)
    cycle(3, slack_on=True)
    svc = services(write_config(tmp_path / "m.toml", db_url=db, feeds=[web.url("/rss.xml")],
                                smtp_port=smtp_port, slack_url=slack.url("/hook"),
                                allowed=allowed, seeds=False), clock)
    with svc.sessions() as s:
        stored = s.scalars(select(Article).where(Article.is_seed.is_(False))
                           .order_by(Article.id)).all()
        assert [a.duplicate_of_id for a in stored] == [None, stored[0].id, stored[0].id]
        alerts = sorted((a.channel, a.article_id) for a in s.scalars(select(Alert)))
    assert alerts == [("email", stored[0].id), ("slack", stored[1].id)]


def _wagner_items(web: Web, n: int) -> list[tuple[str, str, str]]:
    """``n`` different matching stories, each with its page on ``web``."""
    import random

    places = ["Gao", "Kidal", "Menaka", "Timbuktu", "Mopti", "Segou"]
    words = ["convoy", "river", "market", "governor", "drought", "harvest", "bridge", "airport",
             "council", "school", "clinic", "border", "patrol", "election", "court", "cattle"]
    items = []
    for i in range(n):
        rng = random.Random(i)
        body = f"Wagner Group fighters reached {places[i]}. " + " ".join(
            " ".join(rng.sample(words, 8)) + "." for _ in range(8))
        web.routes[f"/w/{i}"] = Route(200, page(f"Wagner in {places[i]}", body),
                                      {"Content-Type": "text/html"})
        items.append((f"Wagner in {places[i]}", web.url(f"/w/{i}"), body[:80]))
    return items


def _feed(web: Web, items: list[tuple[str, str, str]]) -> None:
    web.routes["/rss.xml"] = Route(200, rss(items), {"Content-Type": "application/rss+xml"})


def test_an_empty_first_cycle_does_not_use_up_the_first_digest(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int],
        services: Callable[..., Any]) -> None:
    from tests.conftest import Clock

    box, port = smtp
    _feed(web, [])
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss.xml")], smtp_port=port, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                       watchlist='schedule = "daily 07:00"', extra="[poll]\ninterval = 60\n")
    clock = Clock()
    svc = services(cfg, clock)
    svc.cycle()  # nothing yet
    assert box.messages == []
    _feed(web, _wagner_items(web, 4))
    clock.now += timedelta(minutes=5)
    svc.cycle()
    assert len(box.messages) == 1  # the first digest goes with the first alerts
    assert "4 new articles" in str(box.messages[0]["Subject"])


def test_an_edited_schedule_or_interval_applies_at_once(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int],
        services: Callable[..., Any]) -> None:
    from tests.conftest import Clock

    box, port = smtp
    items = _wagner_items(web, 3)
    _feed(web, items[:1])
    db = f"sqlite:///{tmp_path / 'm.db'}"

    def config(schedule: str, interval: int) -> Path:
        return write_config(tmp_path / f"m-{interval}.toml", db_url=db,
                            feeds=[web.url("/rss.xml")], smtp_port=port, slack_url=None,
                            allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                            watchlist=f'schedule = "{schedule}"',
                            extra=f"[poll]\ninterval = {interval}\n")

    clock = Clock()  # 09:00
    hourly = services(config("hourly", 3600), clock)
    hourly.cycle()
    assert len(box.messages) == 1 and web.hits("/rss.xml") == 1  # the first digest, at once
    _feed(web, items[:2])
    clock.now += timedelta(minutes=10)
    hourly.cycle()
    assert len(box.messages) == 1 and web.hits("/rss.xml") == 1  # feed and digest not due
    # edited: every minute, feeds every 5 minutes (a reload or a restart: a new Service)
    fast = services(config("every 1m", 300), clock)
    clock.now += timedelta(minutes=1)
    fast.cycle()
    assert web.hits("/rss.xml") == 2  # checked 11 minutes ago: due under the new interval
    assert len(box.messages) == 2  # the digest follows the new schedule, not the old hour
    body = box.messages[1].get_body(("plain",))
    assert body is not None and "Wagner in Kidal" in body.get_content()


def test_once_ends_with_a_summary_and_status_shows_each_watchlists_digest_state(
        tmp_path: Path, newsroom: Web, smtp: tuple[Mailbox, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    box, port = smtp
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[newsroom.url("/rss.xml"), newsroom.url("/missing.xml")],
                       smtp_port=port, slack_url=None, allowed=[f"127.0.0.1:{newsroom.port}"],
                       watchlist='schedule = "hourly"')
    cfg.write_text(cfg.read_text().replace('channels = ["email"]', 'channels = ["email", "slack"]'))
    assert main(["--config", str(cfg), "once"]) == 0
    out, err = capsys.readouterr()
    last = out.strip().splitlines()[-1]
    assert last.startswith("once: 2 feeds (1 ok, 1 failed), ") and "1 digest cut: 1 sent, " \
        "0 to retry, 0 failed for good" in last, last
    assert len(box.messages) == 1
    failed = newsroom.url("/missing.xml")
    assert (out + err).count(failed) == 1  # each failure once: its line, not also the log's
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "Watchlists:\n  sahel: next digest " in out and "0 alerts pending (hourly, UTC)" in out
    assert "sahel / slack: off ([channels.slack] is not configured)" in out
    assert "Queued deliveries" not in out and "Failed deliveries (0):" in out


def test_once_reports_a_delivery_trouble_once(
        tmp_path: Path, newsroom: Web, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[newsroom.url("/rss.xml")], smtp_port=free_port(), slack_url=None,
                       allowed=[f"127.0.0.1:{newsroom.port}"])
    assert main(["--config", str(cfg), "once"]) == 0  # the contract: the cycle ran
    out, err = capsys.readouterr()
    assert "1 to retry" in out.strip().splitlines()[-1]
    troubles = [line for line in (out + err).splitlines() if "unreachable" in line]
    assert len(troubles) == 1 and troubles[0].startswith("delivery: digest 1 (sahel/email): "), \
        troubles


def test_explain_article_says_why_each_channel_was_alerted_or_not(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import select

    from monitor import config
    from monitor.store import db
    from monitor.store.tables import Article

    story = ("Russian mercenaries of the Wagner Group arrived in Timbuktu on Monday, local "
             "officials said, taking over the camp that French soldiers left last year. " + LOREM)
    items = [("Wagner in Timbuktu", web.url("/a/0"), story),
             ("Wagner reach Timbuktu", web.url("/a/1"), story.replace("Monday", "Monday night"))]
    for title, link, body in items:
        web.routes[link.split(str(web.port), 1)[1]] = Route(200, page(title, body),
                                                            {"Content-Type": "text/html"})
    _feed(web, items)
    _box, port = smtp
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss.xml")], smtp_port=port, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], seeds=False)
    cfg.write_text(cfg.read_text().replace('channels = ["email"]', 'channels = ["email", "slack"]'))
    assert main(["--config", str(cfg), "once"]) == 0
    engine, sessions = db.open_database(config.load(cfg).storage.url)
    with sessions() as s:
        original, copy = s.scalars(select(Article).order_by(Article.id)).all()
    engine.dispose()
    assert copy.duplicate_of_id == original.id
    capsys.readouterr()
    assert main(["--config", str(cfg), "explain", "--article", str(original.id)]) == 0
    out = capsys.readouterr().out
    assert "delivery: email: alerted, in digest 1, sent " in out
    assert "delivery: slack: not alerted: [channels.slack] is not configured" in out
    assert main(["--config", str(cfg), "explain", "--article", str(copy.id)]) == 0
    out = capsys.readouterr().out
    assert f"delivery: a copy of article {original.id} ({original.title!r})" in out
    assert f"delivery: email: not alerted: its story went out with article {original.id} " \
           "(digest 1)" in out
