"""Digests people can read and trust: hostile content escaped in both channels, the HTML preview,
re-sending, per-watchlist recipients, Apprise, quiet hours, urgent terms, operator notices,
template overrides. Real SMTP (aiosmtpd) and HTTP endpoints on loopback."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from sqlalchemy import select

from monitor.cli import main
from monitor.config import EmailChannel
from monitor.digest import DigestData, Item, Renderer, dumps_slack, message_id, safe_link
from monitor.notify.email import EmailSender
from monitor.notify.slack import SlackSender
from monitor.service import Service
from monitor.store.outbox import DigestJob
from monitor.store.tables import Digest
from tests import builders
from tests.conftest import Clock, Mailbox, Route, Web, shared_corpus, write_config

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


def rss(items: list[tuple[str, str, str]]) -> bytes:
    return builders.rss(items, title="Wire", date=None, guid="title", escape=True)


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


# -- hostile content through both channels ---------------------------------------------------

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "div", "h1", "a", "mark",
                "strong", "p", "ul", "li"}
ALLOWED_ATTRS = {"class", "style", "href", "lang", "charset", "name", "content"}


def sanitize_vectors() -> list[tuple[str, str]]:
    """(raw HTML payload, href found in it) from every file of the sanitize corpus."""
    out = []
    for path in sorted(shared_corpus("feeds", "wellformed", "sanitize").glob("*.xml")):
        doc = path.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"<(content|summary|title|description|subtitle|info)\b[^>]*>"
                             r"(.*?)</\1>", doc, re.S):
            payload = html.unescape(m.group(2).replace("<![CDATA[", "").replace("]]>", ""))
            href = re.search(r"""(?:href|src)\s*=\s*["']?([^"' >]+)""", payload)
            out.append((payload, href.group(1) if href else ""))
    return out


RELIABILITY_TITLES = [
    "<script>alert(1)</script> Wagner", '<img src=x onerror="alert(1)"> Wagner',
    '<a href="javascript:alert(1)">Wagner</a>', "Wagner \u202egnp.exe\u200b", "{{ 7*7 }} Wagner",
    "Wagner\r\nBcc: victim@example.org", "=?utf-8?b?V2FnbmVy?= Wagner", "<!channel> Wagner",
    "<!here|here> Wagner", "<@U123> Wagner", "<https://evil.example|click> Wagner",
    "&lt;script&gt; Wagner & co", "{% raw %}{{ config }}{% endraw %} Wagner",
]


def hostile_items() -> list[Item]:
    items = []
    for i, (payload, href) in enumerate(sanitize_vectors()):
        items.append(Item(i, f"Wagner {payload}"[:300], safe_link(href), payload[:60],
                          NOW, ["Wagner"], f"…{payload[:200]} Wagner…"))
    for j, title in enumerate(RELIABILITY_TITLES, len(items)):
        items.append(Item(j, title, safe_link("javascript:alert(1)"), title, NOW, ["Wagner"],
                          title))
    items.append(Item(len(items), "Real link", "https://news.example/a?x=1&y=<2>|z", "Wire",
                      NOW, ["Wagner"], "Wagner here"))
    return items


def test_hostile_titles_and_snippets_are_inert_in_mail_and_slack(
        smtp: tuple[Mailbox, int], slack: Web) -> None:
    box, port = smtp
    items = hostile_items()
    assert len(items) > 600
    rendered = Renderer().render(DigestData("sahel", items, NOW, ["a <b>notice</b> {{ 7*7 }}"]))
    job = DigestJob(1, "sahel", "email", rendered.subject, rendered.text, rendered.html,
                    dumps_slack(rendered.slack), message_id(1, "sahel", "email", "example.org"),
                    1, 0)
    email_settings = EmailChannel(host="127.0.0.1", port=port, tls="none",
                                  sender="monitor@example.org", recipients=["a@example.org"])
    EmailSender(email_settings).send(job, ["a@example.org"])
    posted: list[int] = []
    SlackSender(slack.url("/hook"), 10).send(job, posted.append)

    # mail: one message, only our headers, only our markup, only http(s) links
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert msg["Bcc"] is None and set(msg.keys()) >= {"Subject", "From", "To", "Message-ID",
                                                      "List-Id"}
    assert box.envelopes[0].rcpt_tos == ["a@example.org"]
    doc = lxml.html.document_fromstring(html_part(msg))
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue  # comments
        assert element.tag in ALLOWED_TAGS, element.tag
        assert set(element.attrib) <= ALLOWED_ATTRS, (element.tag, dict(element.attrib))
        if "href" in element.attrib:
            assert element.attrib["href"].startswith(("http://", "https://"))
    assert "{{ 7*7 }}" in html_part(msg)
    text = text_part(msg)
    assert "{{ 7*7 }}" in text and "{% raw %}{{ config }}{% endraw %}" in text
    for line in text.splitlines():
        if line.strip().startswith(("http://", "https://", "javascript:", "data:", "file:")):
            assert line.strip().startswith(("http://", "https://"))

    # Slack: every <...> is one of our links; nothing can mention or forge a link
    payloads = slack.posts("/hook")
    assert len(payloads) == len(json.loads(job.slack_payload)) == posted[-1] > 1
    for payload in payloads:
        assert payload["unfurl_links"] is False and len(payload["blocks"]) <= 50
        assert "<" not in payload["text"]
        for block in payload["blocks"]:
            texts = [block.get("text", {}).get("text", "")] + \
                [e.get("text", "") for e in block.get("elements", [])]
            for t in texts:
                assert len(t) <= 3000
                for link in re.findall(r"<[^>]*>", t):
                    assert re.fullmatch(r"<https?://[^|<>\s]+\|[^<>]*>", link), link
    assert "https://news.example/a?x=1&amp;y=%3C2%3E%7Cz" in json.dumps(payloads)


def test_hostile_entries_through_the_pipeline_reach_both_channels_escaped(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int], slack: Web) -> None:
    box, port = smtp
    web.routes["/rss"] = Route(200, rss([(t, f"javascript:go({i})", f"{t} Wagner Group")
                                         for i, t in enumerate(RELIABILITY_TITLES)]))
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss")],
                       smtp_port=port, slack_url=slack.url("/hook"), seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False})
    assert main(["--config", str(cfg), "once"]) == 0
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert msg["Bcc"] is None
    body = html_part(msg)
    assert "<script" not in body and "onerror" not in body and "javascript:" not in body
    assert "{{ 7*7 }}" in body and "{{ 7*7 }}" in text_part(msg)
    assert "\u202e" not in body and "\u200b" not in body
    posted = json.dumps(slack.posts("/hook"))
    assert "<!channel>" not in posted and "<!here" not in posted and "<@U123>" not in posted
    assert "&lt;!channel&gt;" in posted
    assert "<https://evil.example|click>" not in posted


# -- preview, HTML file, re-send --------------------------------------------------------------


def test_preview_writes_html_and_resend_repeats_a_failed_digest(
        tmp_path: Path, db_url: str, web: Web, slack: Web, capsys: pytest.CaptureFixture[str]
        ) -> None:
    web.routes["/rss"] = Route(200, rss([("Wagner in Gao", "https://news.example/1",
                                          "Wagner Group fighters in Gao.")]))
    slack.routes["/hook"] = Route(404, b"no_service")
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss")],
                       smtp_port=None, slack_url=slack.url("/hook"), seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       watchlist='schedule = "daily 07:00"')
    out_html = tmp_path / "digest.html"
    assert main(["--config", str(cfg), "once"]) == 0  # polls, sends the first digest: 404
    capsys.readouterr()
    assert main(["--config", str(cfg), "status"]) == 0
    status = capsys.readouterr().out
    found = re.search(r"digest (\d+) sahel/slack .*404", status)
    assert found, status
    digest_id = found.group(1)

    web.routes["/rss"] = Route(200, rss([("Wagner in Gao", "https://news.example/1",
                                          "Wagner Group fighters in Gao."),
                                         ("Barkhane ends", "https://news.example/2",
                                          "The Barkhane operation ended.")]))
    assert main(["--config", str(cfg), "once"]) == 0  # the new one waits for 07:00
    assert main(["--config", str(cfg), "digest", "--preview", "--html", str(out_html)]) == 0
    preview = capsys.readouterr().out
    assert "Barkhane ends" in preview and f"HTML of sahel: {out_html}" in preview
    page = out_html.read_text()
    assert "Barkhane ends" in page and '<mark style="' in page and "<style>" in page
    assert "@media (max-width: 480px)" in page and "src=" not in page  # nothing external

    slack.routes["/hook"] = Route(200, b"ok")
    assert main(["--config", str(cfg), "digest", "--resend", digest_id]) == 0
    assert len(slack.posts("/hook")) == 2  # the 404 attempt, then the re-send
    assert "Wagner in Gao" in json.dumps(slack.posts("/hook")[-1])
    assert main(["--config", str(cfg), "digest", "--resend", "999"]) == 1
    assert main(["--config", str(cfg), "digest", "--html", str(out_html), "--send"]) == 2


# -- per-watchlist recipients and channels -------------------------------------------------------


def test_each_desk_gets_its_own_recipients_webhook_and_apprise_urls(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int], slack: Web) -> None:
    box, port = smtp
    slack.routes["/desk"] = Route(200, b"ok")
    slack.routes["/apprise"] = [Route(500, b"down"), Route(200, b"{}")]
    slack.routes["/apprise2"] = Route(200, b"{}")
    web.routes["/rss"] = Route(200, rss([
        ("Wagner in Menaka", "https://news.example/w", "Wagner Group fighters in Menaka."),
        ("MINUSMA leaves Kidal", "https://news.example/m", "MINUSMA left its Kidal camp."),
    ]))
    apprise = [f"json://127.0.0.1:{slack.port}/apprise", f"json://127.0.0.1:{slack.port}/apprise2"]
    extra = (f'[[watchlists]]\nname = "un-desk"\nterms = ["MINUSMA"]\n'
             f'channels = ["email", "slack", "apprise"]\nrecipients = ["un-desk@example.org"]\n'
             f'slack_webhook_url = "{slack.url("/desk")}"\napprise_urls = {json.dumps(apprise)}\n')
    cfg = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss")], smtp_port=port, slack_url=slack.url("/hook"),
                       seeds=False, allowed=[f"127.0.0.1:{web.port}"],
                       fetch={"fetch_pages": False}, terms=("Wagner",), extra=extra)
    assert main(["--config", str(cfg), "check"]) == 0
    assert main(["--config", str(cfg), "once"]) == 0
    assert sorted(tuple(e.rcpt_tos) for e in box.envelopes) == [("analyst@example.org",),
                                                                ("un-desk@example.org",)]
    assert "MINUSMA" in json.dumps(slack.posts("/desk")) and "Menaka" not in json.dumps(
        slack.posts("/desk"))
    assert "Menaka" in json.dumps(slack.posts("/hook"))
    # Apprise: the first URL failed once (retried later), the second went out once
    assert len(slack.posts("/apprise")) == 1 and len(slack.posts("/apprise2")) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(slack.posts("/apprise")) == 2 and len(slack.posts("/apprise2")) == 1
    assert "MINUSMA leaves Kidal" in slack.posts("/apprise2")[0]["message"]
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(slack.posts("/apprise")) == 2 and len(slack.posts("/apprise2")) == 1


def test_a_bad_apprise_url_is_a_config_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[channels.apprise]\nurls = ["nosuchservice://x"]\n')
    assert main(["--config", str(path), "check"]) == 2
    assert "channels.apprise.urls" in capsys.readouterr().err


# -- schedules: quiet hours, urgent, notices ---------------------------------------------------


def test_quiet_hours_defer_urgent_terms_go_now_and_nothing_is_dropped(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int],
        services: Callable[..., Service]) -> None:
    box, port = smtp
    web.routes["/rss"] = [
        Route(200, rss([("Wagner at dawn", "https://news.example/1", "Wagner Group seen.")])),
        Route(200, rss([("Wagner at dawn", "https://news.example/1", "Wagner Group seen."),
                        ("Takuba at night", "https://news.example/2", "Takuba task force.")])),
    ]
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss")],
                       smtp_port=port, slack_url=None, seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       watchlist='schedule = "every 1h"\ntimezone = "Africa/Bamako"\n'
                                 'quiet_hours = "22:00-07:00"\nurgent_terms = ["Takuba"]')
    clock = Clock(datetime(2026, 11, 2, 23, 0, tzinfo=UTC))  # 23:00 in Bamako (UTC+0)
    svc = services(cfg, clock)
    svc.cycle(ignore_schedule=True)
    assert box.messages == []  # quiet: the Wagner digest waits
    clock.now += timedelta(hours=2)
    svc.cycle(ignore_schedule=True)  # Takuba is urgent: out now, with what was waiting
    assert len(box.messages) == 1
    assert "Takuba at night" in text_part(box.messages[0])
    assert "Wagner at dawn" in text_part(box.messages[0])
    clock.now = datetime(2026, 11, 3, 7, 30, tzinfo=UTC)
    svc.cycle(ignore_schedule=True)
    assert len(box.messages) == 1  # nothing new: no empty digest


def test_operator_notices_ride_in_the_next_digest(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int], slack: Web,
        services: Callable[..., Service]) -> None:
    box, port = smtp
    slack.routes["/hook"] = Route(410, b"channel_is_archived")
    web.routes["/rss"] = [Route(200, rss([("Wagner one", "https://news.example/1", "Wagner.")])),
                          Route(200, rss([("Wagner one", "https://news.example/1", "Wagner."),
                                          ("Wagner two", "https://news.example/2",
                                           "More about the Wagner Group.")]))]
    web.routes["/dead"] = Route(500, b"down")
    cfg = write_config(tmp_path / "m.toml", db_url=db_url,
                       feeds=[web.url("/rss"), web.url("/dead")], smtp_port=port,
                       slack_url=slack.url("/hook"), seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       watchlist='schedule = "every 1h"')
    clock = Clock()
    svc = services(cfg, clock)
    svc.cycle(ignore_schedule=True)
    assert len(box.messages) == 1 and "For the operator" not in text_part(box.messages[0])
    with svc.sessions() as session:
        failed = session.scalars(select(Digest).where(Digest.status == "failed")).one()
    clock.now += timedelta(days=4)
    svc.cycle(ignore_schedule=True)
    assert len(box.messages) == 2
    text = text_part(box.messages[1])
    assert f"slack delivery failed for good (digest {failed.id}" in text
    assert f"monitor digest --resend {failed.id}" in text and "410" in text
    assert f"feed {web.url('/dead')} has failed since" in text
    assert "For the operator" in html_part(box.messages[1])


def test_templates_can_be_overridden_and_still_never_render_data(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "digest.txt").write_text(
        "DESK COPY\n{% for item in items %}* {{ item.title }} <{{ item.link }}>\n{% endfor %}")
    web.routes["/rss"] = Route(200, rss([("{{ 7*7 }} Wagner {% if true %}x{% endif %}",
                                          "https://news.example/1", "Wagner Group.")]))
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[web.url("/rss")],
                       smtp_port=port, slack_url=None, seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False},
                       extra=f'[digest]\ntemplates = "{folder}"\n')
    assert main(["--config", str(cfg), "once"]) == 0
    text = text_part(box.messages[0])
    assert text.startswith("DESK COPY")
    assert "{{ 7*7 }} Wagner {% if true %}x{% endif %}" in text
    assert "Wagner" in html_part(box.messages[0])  # the built-in HTML template still serves



def test_daily_schedule_across_dst_gives_one_digest_per_local_day() -> None:
    from monitor.schedule import parse_schedule

    daily = parse_schedule("daily 07:00", "Europe/Paris")
    when = datetime(2026, 3, 26, 12, 0, tzinfo=UTC)  # DST starts 2026-03-29, ends 2026-10-25
    seen = []
    for _ in range(8):
        when = daily.next_after(when, None)
        seen.append(when)
    local = [w.astimezone(ZoneInfo("Europe/Paris")) for w in seen]
    assert [(d.hour, d.minute) for d in local] == [(7, 0)] * 8
    assert len({d.date() for d in local}) == 8  # one per day, none doubled or skipped
    autumn = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    first = daily.next_after(autumn, None).astimezone(UTC)
    second = daily.next_after(first, first).astimezone(UTC)
    assert second - first == timedelta(hours=25)  # the long night, still one digest


def test_an_untrusted_smtp_certificate_is_an_error_never_a_plain_retry(
        tmp_path: Path) -> None:
    import ssl

    import trustme
    from aiosmtpd.controller import Controller

    from monitor.errors import DeliveryError
    from tests.conftest import free_port

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True)
    controller.start()
    try:
        settings = EmailChannel(host="127.0.0.1", port=port, tls="starttls",
                                sender="m@example.org", recipients=["a@example.org"])
        job = DigestJob(1, "sahel", "email", "s", "text", "<p>html</p>", "[]", "<x@y>", 1, 0)
        with pytest.raises(DeliveryError, match="certificate"):
            EmailSender(settings).send(job, ["a@example.org"])
        assert box.messages == []
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        EmailSender(settings, ssl_context=trusted).send(job, ["a@example.org"])
        assert len(box.messages) == 1
    finally:
        controller.stop()


def test_the_render_script_makes_a_png_of_the_html(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Chromium is not installed (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    items = [Item(1, "Wagner in Gao", "https://news.example/1", "Wire", NOW, ["Wagner"],
                  "Wagner Group fighters reached Gao.")]
    page = tmp_path / "digest.html"
    page.write_text(Renderer().render(DigestData("sahel", items, NOW)).html)
    png = tmp_path / "digest.png"
    subprocess.run([str(Path(__file__).parent.parent / "scripts" / "render_digest.sh"),
                    str(page), str(png), "390"], check=True, capture_output=True, timeout=120)
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


def test_a_desk_with_its_own_recipients_needs_no_global_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.toml"
    desk = '[[watchlists]]\nname = "desk"\nterms = ["Wagner"]\n'
    path.write_text('[channels.email]\nhost = "smtp.example.org"\n' + desk +
                    'recipients = ["desk@example.org"]\n')
    assert main(["--config", str(path), "check"]) == 0
    path.write_text('[channels.email]\nhost = "smtp.example.org"\n' + desk)
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "channels.email.recipients" in err and "'desk'" in err
