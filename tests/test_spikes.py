"""Spikes: the decider with plain data (a steady series with a daily rhythm, a burst, a new
entity, the cooldown), and `monitor trends --json` over back-dated articles stored by the real
pipeline."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.spikes import Rules, alert_due, judge, poisson_surprise
from tests.builders import rss, steady
from tests.conftest import Mailbox, Route, Web, free_port, write_config

NOW = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)


def test_poisson_surprise_is_the_upper_tail() -> None:
    assert poisson_surprise(0, 2.0) == 0.0
    assert poisson_surprise(1, 1.0) == pytest.approx(0.1992, abs=1e-4)  # 1 - e^-1
    assert poisson_surprise(5, 0.25) == pytest.approx(5.1797, abs=1e-3)


def test_steady_series_with_a_daily_rhythm_raise_at_most_a_rare_false_alarm() -> None:
    """Three entities (2, 8 and 30 mentions a day) over two months, checked hourly: six
    entity-months. bench/spikes.py measures 0.066 false alarms per entity-month (threshold 4);
    more than one here would be far off that."""
    rules = Rules()
    alarms = 0
    for per_day, seed in ((2, 1), (8, 2), (30, 3)):
        rng = random.Random(seed)
        start = NOW - timedelta(days=74)
        times = steady(rng, start, NOW, per_day)
        last = None
        hour = start + rules.baseline + rules.window
        while hour <= NOW:
            seen = [t for t in times if t <= hour]
            v = judge(seen, outlets_in_window=5, now=hour, rules=rules)
            if alert_due(v, last, 0, hour, rules):
                alarms, last = alarms + 1, hour
            hour += timedelta(hours=1)
    assert alarms <= 1, alarms


def test_the_first_days_after_two_flat_weeks_raise_nothing() -> None:
    rules = Rules()
    times = steady(random.Random(5), NOW - timedelta(days=17), NOW, 8)
    for hours in range(0, 72):
        moment = NOW - timedelta(hours=hours)
        assert not judge([t for t in times if t <= moment], 5, moment, rules).spike


def test_a_burst_spikes_and_alerts_once_until_it_grows_or_the_cooldown_ends() -> None:
    rules = Rules()
    rng = random.Random(7)
    times = steady(rng, NOW - timedelta(days=15), NOW - timedelta(hours=4), 3)
    burst = [NOW - timedelta(minutes=10 * i) for i in range(8)]
    v = judge(times + burst, outlets_in_window=4, now=NOW, rules=rules)
    assert v.spike and v.count == 8 and v.score >= rules.threshold
    assert alert_due(v, None, 0, NOW, rules)
    later = NOW + timedelta(hours=1)
    more = judge(times + burst + [later - timedelta(minutes=5)], 4, later, rules)
    assert more.spike and not alert_due(more, NOW, v.count, later, rules)  # one surge, one alert
    grown = judge(times + burst + [later - timedelta(minutes=m) for m in range(1, 60, 6)], 6,
                  later, rules)
    assert alert_due(grown, NOW, v.count, later, rules)  # doubled: alert again
    after = NOW + rules.cooldown + timedelta(hours=1)
    again = [after - timedelta(minutes=10 * i) for i in range(8)]
    v2 = judge(times + burst + again, 4, after, rules)
    assert alert_due(v2, NOW, v.count, after, rules)  # a burst after the cooldown


def test_a_new_name_or_one_outlet_is_no_alarm() -> None:
    rules = Rules()
    mentions = [NOW - timedelta(minutes=m) for m in (5, 20, 40, 50, 70)]
    for n in (1, 2, 3, 4):  # a name with no history: its first mentions are not an alarm
        assert not judge(mentions[:n], 3, NOW, rules).spike, n
    assert judge(mentions, 3, NOW, rules).spike  # five within the window: p < 1e-4
    assert not judge(mentions * 3, 1, NOW, rules).spike  # one outlet repeating itself


def _words(rng: random.Random, n: int) -> str:
    syllables = ["ka", "lo", "mi", "ter", "sa", "vun", "dri", "op", "nel", "ru", "zu", "fa"]
    return " ".join("".join(rng.choice(syllables) for _ in range(3)) for _ in range(n))


def _newsroom(web: Web, now: datetime) -> list[str]:
    """Two weeks of Barkhane twice a day (back-dated), then Wagner six times in an hour from
    three outlets; each article its own text."""
    rng = random.Random(11)
    steady_items = []
    for i in range(28):
        when = now - timedelta(days=14) + timedelta(hours=12 * i)
        steady_items.append({"title": f"Barkhane {_words(rng, 3)}", "link": web.url(f"/s/{i}"),
                             "guid": f"s{i}", "date": format_datetime(when),
                             "text": f"Barkhane {_words(rng, 40)}"})
    feeds = [web.url("/steady.xml")]
    web.routes["/steady.xml"] = Route(200, rss(steady_items))
    for outlet in range(3):
        items = [{"title": f"Wagner {_words(rng, 3)}", "link": web.url(f"/b/{outlet}/{i}"),
                  "guid": f"b{outlet}{i}",
                  "date": format_datetime(now - timedelta(minutes=10 * i + outlet)),
                  "text": f"Wagner {_words(rng, 40)}"} for i in range(2)]
        web.routes[f"/burst{outlet}.xml"] = Route(200, rss(items, title=f"Outlet {outlet}"))
        feeds.append(web.url(f"/burst{outlet}.xml"))
    return feeds


def test_a_burst_is_alerted_once_by_mail_and_slack_and_trends_agree(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int], slack: Web,
        capsys: pytest.CaptureFixture[str]) -> None:
    box, port = smtp
    now = datetime.now(UTC).replace(microsecond=0)
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=_newsroom(web, now), smtp_port=port,
                       slack_url=slack.url("/hook"), seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       watchlist='schedule = "daily 07:00"')
    assert main(["--config", str(cfg), "once"]) == 0

    alerts = [m for m in box.messages if "spike" in m["Subject"]]
    assert [m["Subject"] for m in alerts] == ["[monitor] sahel: spike: Wagner"]
    text = alerts[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "6 mentions in the last 3h from 3 outlets" in text
    burst_links = [web.url(f"/b/{o}/{i}") for o in range(3) for i in range(2)]
    assert any(link in text for link in burst_links)  # the stories behind it, with links
    posts = [p for p in slack.posts("/hook") if "spike" in p["text"]]
    assert len(posts) == 1
    assert posts[0]["blocks"][0]["text"]["text"].startswith("*sahel: spike: Wagner*")
    # the first digest (its first alerts go at once) is not an alert: no "spike" in its subject
    assert all("spike" not in m["Subject"] for m in box.messages if m not in alerts)

    capsys.readouterr()
    assert main(["--config", str(cfg), "trends", "--json"]) == 0
    rows = {r["entity"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"Wagner", "Barkhane", "Takuba", "MINUSMA"}
    assert set(rows["Wagner"]) == {"watchlist", "entity", "window_hours", "count", "baseline",
                                   "score", "spike", "alerted_at"}
    assert rows["Wagner"]["spike"] is True and rows["Wagner"]["count"] == 6
    assert rows["Wagner"]["alerted_at"] is not None
    assert rows["Barkhane"]["spike"] is False and rows["Barkhane"]["alerted_at"] is None
    assert not rows["Takuba"]["spike"] and rows["Takuba"]["count"] == 0

    # the same surge, a cycle later: nothing more (the cooldown)
    assert main(["--config", str(cfg), "once"]) == 0
    assert len([m for m in box.messages if "spike" in m["Subject"]]) == 1
    assert len([p for p in slack.posts("/hook") if "spike" in p["text"]]) == 1


@pytest.mark.postgres
def test_two_instances_on_postgres_send_one_alert_between_them(
        tmp_path: Path, web: Web, pg_url: str) -> None:
    import threading

    from monitor import config
    from monitor.service import Service
    from monitor.store.tables import Digest, SpikeAlert

    now = datetime.now(UTC).replace(microsecond=0)
    cfg = write_config(tmp_path / "monitor.toml", db_url=pg_url, feeds=_newsroom(web, now),
                       smtp_port=free_port(), slack_url=None, seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False})
    settings = config.load(cfg)
    one, two = Service(settings), Service(settings)
    try:
        one.prepare()
        one.poll(ignore_schedule=True)
        barrier = threading.Barrier(2)

        def alert(svc: Service) -> None:
            barrier.wait()
            svc.alerter.run()

        threads = [threading.Thread(target=alert, args=(svc,)) for svc in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with one.sessions() as session:
            rows = session.query(SpikeAlert).all()
            queued = session.query(Digest).filter(Digest.subject.contains("spike")).count()
        keys = [(r.kind, r.key) for r in rows]
        assert ("entity", "Wagner") in keys and len(keys) == len(set(keys))  # each once
        assert queued == 1
    finally:
        one.close()
        two.close()


def test_a_story_told_by_three_outlets_in_three_languages_within_hours_is_breaking(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int]) -> None:
    from tests.test_stories import AMBUSH, _feed

    box, port = smtp
    now = datetime.now(UTC).replace(microsecond=0)
    feeds = []
    for n, (_code, title, text) in enumerate(AMBUSH):
        item = (title, web.url(f"/a/{n}"), text, format_datetime(now - timedelta(hours=n)))
        web.routes[f"/f{n}.xml"] = Route(200, _feed(f"Outlet {n}", [item]))
        feeds.append(web.url(f"/f{n}.xml"))
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=feeds, smtp_port=port, slack_url=None, seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       terms=("Wagner", "Вагнер", "Tinzaouatene"))
    assert main(["--config", str(cfg), "once"]) == 0
    subjects = [m["Subject"] for m in box.messages]
    breaking = [s for s in subjects if "breaking" in s]
    # named by its title (its first stored article's: the feeds are read at once)
    assert len(breaking) == 1 and breaking[0] in {f"[monitor] sahel: breaking: {title}"
                                                  for _, title, _ in AMBUSH}, subjects
    assert main(["--config", str(cfg), "once"]) == 0
    assert len([m for m in box.messages if "breaking" in m["Subject"]]) == 1


def test_an_alert_queued_before_a_crash_goes_out_once_and_a_kill_keeps_the_cooldown(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int]) -> None:
    import signal
    import subprocess
    import sys
    import time

    from monitor import config
    from monitor.service import Service
    from tests.conftest import ROOT

    box, port = smtp
    now = datetime.now(UTC).replace(microsecond=0)
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=_newsroom(web, now), smtp_port=port, slack_url=None, seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       watchlist='schedule = "daily 07:00"',
                       extra="[poll]\ntick = 0.5\ninterval = 1")
    # an instance that records the alert (and queues its message), then dies before the relay
    crashed = Service(config.load(cfg))
    crashed.prepare()
    crashed.poll(ignore_schedule=True)
    assert crashed.alerter.run() >= 1
    crashed.close()  # its resources go; the relay never ran: as if killed here
    assert not [m for m in box.messages if "spike" in m["Subject"]]

    # a daemon starts: the queued alert goes out once, and no new alert is made for the surge
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), "run"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while not [m for m in box.messages if "spike" in m["Subject"]]:
            assert datetime.now(UTC) < deadline, "the queued alert was not sent"
            time.sleep(0.2)
        time.sleep(3)  # a few more ticks
    finally:
        proc.send_signal(signal.SIGKILL)  # kill -9: the cooldown is in the database
        proc.wait(30)
    assert main(["--config", str(cfg), "once"]) == 0
    assert [m["Subject"] for m in box.messages if "spike" in m["Subject"]] == [
        "[monitor] sahel: spike: Wagner"]
