"""Watchlist format and tools: the query language, entities with options, fuzziness rules,
fixtures run by `monitor check`, `monitor explain` and `monitor backfill` over stored articles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from monitor import query as q
from monitor.cli import main
from monitor.match import Entity, Guard, Matcher, Rule, Term, Watchlist, fuzzy_distance
from tests.builders import page, rss
from tests.conftest import Mailbox, Route, Web, write_config


def one(wl: Watchlist, title: str, text: str = "") -> list[str]:
    """The labels of the spans the watchlist finds, in order."""
    found = Matcher([wl]).match(title, text)
    return [s.term for s in found[0].spans] if found else []


# -- the query language ------------------------------------------------------------------------

def test_queries_parse_with_the_usual_precedence() -> None:
    tree = q.parse('Wagner NEAR/5 (Mali OR "Burkina Faso") AND NOT title:opera')
    assert tree == q.And((q.Near(q.Word("Wagner"), q.Or((q.Word("Mali"),
                                                         q.Word("Burkina Faso"))), 5),
                          q.Not(q.Word("opera", "title"))))
    assert q.parse("a b OR c") == q.Or((q.And((q.Word("a"), q.Word("b"))), q.Word("c")))
    assert q.parse("a NEAR b") == q.Near(q.Word("a"), q.Word("b"), q.DEFAULT_NEAR)
    assert q.parse("@goita OR body:mercenar*") == q.Or((q.Ref("goita"),
                                                        q.Word("mercenar*", "body")))
    assert q.parse("wagner and mali") == q.And((q.Word("wagner"), q.Word("and"),
                                                q.Word("mali")))  # operators are upper-case


@pytest.mark.parametrize("query, message", [
    ("", "empty query"),
    ("Wagner AND", "ends where a word was expected"),
    ("(Wagner OR Mali", "parenthesis at character 1 is not closed"),
    ("Wagner)", "unexpected ')' at character 7"),
    ('"" OR Mali', "empty phrase"),
    ("NOT opera", "only excludes"),
    ("Wagner NEAR/0 Mali", "distance must be 1 to 200"),
    ("Wagner NEAR/5 NOT opera", "needs words on both sides"),
    ("(Wagner OR)", "unexpected ')'"),
    ("Wagner -opera", "write NOT opera"),
    ("title: Wagner", "must touch what it limits"),
    ("(" * 60 + "a" + ")" * 60, "nests deeper than 50"),
])
def test_bad_queries_say_what_and_where(query: str, message: str) -> None:
    with pytest.raises(q.QueryError, match=re.escape(message)):
        q.parse(query)


def test_rules_combine_words_phrases_fields_and_proximity() -> None:
    wl = Watchlist("x", rules=(
        Rule("near", 'Wagner NEAR/3 (Mali OR "Burkina Faso") AND NOT opera'),
        Rule("headline", "title:Takuba"),
    ))
    assert one(wl, "", "Wagner fighters left Mali.") == ["near", "near"]
    assert one(wl, "", "Wagner said the fighters of the group had left Mali.") == []  # 8 apart
    assert one(wl, "", "In Burkina Faso, Wagner men arrived.") == ["near", "near"]
    assert one(wl, "", "Wagner fighters left Mali; the opera closed.") == []
    assert one(wl, "Takuba leaves", "") == ["headline"]
    assert one(wl, "News", "Takuba leaves") == []  # title: only
    # words of a rule match like terms: inflections, clitics, diacritics
    wl_ru = Watchlist("x", rules=(Rule("ru", "Вагнер NEAR/4 Мали"),))
    assert one(wl_ru, "", "Бойцы Вагнера ушли из Мали.") == ["ru", "ru"]


def test_entity_references_bring_every_alias_and_the_guards() -> None:
    goita = Entity("Assimi Goïta", (Term("Assimi Goïta"), Term("Гоита"), Term("غويتا")), "goita")
    wagner = Entity("Wagner Group", (Term("Wagner Group"), Term("Wagner")), "wagner")
    wl = Watchlist("x", entities=(), rules=(Rule("r", "@goita NEAR/8 @wagner"),))
    wl = Watchlist("x", entities=(goita, wagner), rules=wl.rules,
                   guards=(Guard(("Wagner",), not_near=("opera",)),))
    found = Matcher([wl]).match("", "Гоиту видели с Wagner")
    assert found and "r" in found[0].terms
    found = Matcher([wl]).match("", "Гоиту видели в опере Wagner opera")
    assert found and found[0].terms == ["Assimi Goïta"]  # the guarded alias does not count


def test_a_rule_naming_an_unknown_entity_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('[[watchlists]]\nname = "x"\n[[watchlists.rules]]\nname = "r"\n'
                   'query = "@nobody OR Mali"\n')
    assert main(["--config", str(cfg), "check"]) == 2


# -- entities and per-term options ---------------------------------------------------------------

def test_fuzziness_follows_the_safe_rules() -> None:
    assert fuzzy_distance("MINUSMA") == 0  # all capitals: never
    assert fuzzy_distance("Wagner") == 0  # under 7 letters
    assert fuzzy_distance("Korybko") == 1
    assert fuzzy_distance("Prigozhine") == 2
    assert fuzzy_distance("G5Sahel1") == 0  # digits
    wl = Watchlist("x", entities=(
        Entity("Korybko", (Term("Andrew Korybko", fuzzy=True),)),
        Entity("MINUSMA", (Term("MINUSMA", fuzzy=True),)),
        Entity("Deby", (Term("Mahamat Deby", fuzzy=True),)),
        Entity("Lavrov", (Term("Sergei Lavrov", fuzzy=True),)),
    ))
    assert one(wl, "", "Andrew Korbyko wrote it.") == ["Korybko"]  # a swap is one edit
    assert one(wl, "", "Andrew Kobryok wrote it.") == []  # two edits on 7 letters
    assert one(wl, "", "Korbyko Andrew wrote it.") == []  # the words in order
    assert one(wl, "", "MINUSCA stays in Bangui.") == []
    assert one(wl, "", "Mahamet Deby flew in.") == ["Deby"]
    assert one(wl, "", "Mahamet Deba flew in.") == []  # "Deby" is too short to bend
    assert one(wl, "", "Sergey Lavrov spoke.") == []  # 6 letters: an alias's job


def test_exact_and_capitalised_aliases() -> None:
    wl = Watchlist("x", entities=(
        Entity("Chad", (Term("Chad", capitalised=True), Term("Чад", capitalised=True))),
        Entity("Niger", (Term("Нигер", exact=True),)),
        Entity("Wagner", (Term("Вагнер"),)),
    ))
    assert one(wl, "", "Chad closed its border.") == ["Chad"]
    assert one(wl, "", "a hanging chad") == []
    assert one(wl, "", "В Чаде прошли выборы.") == ["Chad"]
    assert one(wl, "", "в чаду кутежа") == []
    assert one(wl, "", "Выборы в Нигер.") == ["Niger"]
    assert one(wl, "", "Выборы в Нигерии.") == []  # exact: no case endings
    assert one(wl, "", "с Вагнером") == ["Wagner"]  # not exact: declined


def test_spans_point_at_the_original_text_and_the_snippet_marks_them() -> None:
    text = "Intro.\n\n  The colonel, Assimi GOÏTA’s ally, met «Вагнер»   in Gao."
    wl = Watchlist("x", terms=("Goïta", "Вагнер", "Gao"))
    found = Matcher([wl]).match("", text)[0]
    assert [text[s.start:s.end] for s in found.spans] == ["GOÏTA’s", "Вагнер", "Gao"]
    assert [found.snippet[a:b] for a, b in found.marks] == ["GOÏTA’s", "Вагнер", "Gao"]
    assert "\n" not in found.snippet and "  " not in found.snippet


# -- fixtures, explain, backfill -----------------------------------------------------------------

def test_check_runs_the_fixtures_and_names_each_failure(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    (tmp_path / "watchlists").mkdir()
    wfile = tmp_path / "watchlists" / "desk.toml"
    wfile.write_text('terms = ["Wagner"]\nchannels = []\n[fixtures]\n'
                     'must_match = ["Wagner fighters in Mali", "Prigozhin dies"]\n'
                     'must_not_match = ["Wagner opera tonight"]\n')
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('watchlist_files = ["watchlists/*.toml"]\n')
    assert main(["--config", str(cfg), "check"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"config error: {wfile}: fixtures.must_match[1]: not matched: 'Prigozhin dies'",
        f"config error: {wfile}: fixtures.must_not_match[0]: matched (Wagner): "
        "'Wagner opera tonight'",
    ]


def test_the_shipped_fixtures_pass(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    assert main(["--config", str(ROOT / "config" / "monitor.toml"), "check"]) == 0


def test_explain_says_what_matched_where_and_what_was_set_aside(
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    cfg = str(ROOT / "config" / "monitor.toml")
    assert main(["--config", cfg, "explain", "--title", "Bayreuth opens with Wagner's Ring",
                 "The opera house was full."]) == 1
    out = capsys.readouterr().out
    assert "no match" in out and "set aside 'Wagner Group' at title 20-28 \"Wagner's\"" in out
    assert main(["--config", cfg, "explain", "Andrew Korbyko says Wagner fighters left Gao"]) == 0
    out = capsys.readouterr().out
    assert "MATCH: Andrew Korybko, Wagner Group, Gao" in out
    assert "'korbyko' is 1 edit from 'Korybko'" in out
    assert main(["--config", cfg, "explain", "--watchlist", "nope", "x"]) == 2


def test_backfill_records_past_matches_and_alerts_only_when_asked(
        tmp_path: Path, db_url: str, web: Web, smtp: tuple[Mailbox, int],
        capsys: pytest.CaptureFixture[str]) -> None:
    box, port = smtp
    web.routes.update({
        "/a/1": Route(200, page("Goïta meets envoys", "Colonel Assimi Goïta met envoys in "
                                "Bamako on Monday to discuss the transition calendar. " * 3),
                      {"Content-Type": "text/html"}),
        "/a/2": Route(200, page("Council budget", "The council argued about bus tickets and "
                                "the bridge repair for three hours. " * 3),
                      {"Content-Type": "text/html"}),
        "/rss.xml": Route(200, rss([("Goïta meets envoys", web.url("/a/1"), "x"),
                                    ("Council budget", web.url("/a/2"), "y")]),
                          {"Content-Type": "application/rss+xml"}),
    })
    args = dict(db_url=db_url, feeds=[web.url("/rss.xml")], smtp_port=port, slack_url=None,
                allowed=[f"127.0.0.1:{web.port}"], seeds=False)
    cfg = write_config(tmp_path / "monitor.toml", terms=("Takuba",), **args)  # type: ignore[arg-type]
    assert main(["--config", str(cfg), "once"]) == 0
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert box.messages == []  # nothing matched "Takuba"

    # The desk adds Goïta: explain --history previews, backfill records; no mail without --alert.
    cfg = write_config(tmp_path / "monitor.toml", terms=("Takuba", "Goïta"), **args)  # type: ignore[arg-type]
    capsys.readouterr()
    assert main(["--config", str(cfg), "explain", "--history"]) == 0
    out = capsys.readouterr().out
    assert "sahel: 1 of 2 stored articles match; 1 would change" in out
    assert "no match -> Goïta: 'Goïta meets envoys'" in out
    assert main(["--config", str(cfg), "backfill"]) == 0
    assert "1 new match recorded, 0 updated, 0 alerts queued" in capsys.readouterr().out
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert box.messages == []
    assert main(["--config", str(cfg), "explain", "--history"]) == 0
    assert "0 would change" in capsys.readouterr().out

    # Asked to alert: the past article goes out once, and only once.
    assert main(["--config", str(cfg), "backfill", "--alert"]) == 0
    assert "0 new matches recorded, 0 updated, 1 alert queued" in capsys.readouterr().out
    assert main(["--config", str(cfg), "digest", "--send"]) == 0
    assert len(box.messages) == 1
    body = box.messages[0].get_body(("plain",))
    assert body is not None and "Goïta meets envoys" in body.get_content()
    assert main(["--config", str(cfg), "backfill", "--alert"]) == 0
    assert "0 alerts queued" in capsys.readouterr().out


def test_vectorised_folding_equals_folding_char_by_char() -> None:
    import random

    from monitor.text import _fold_slow, fold

    rnd = random.Random(5)
    samples = ["فَاغْنَر ـــ أإآٱ", "Straße İstanbul GOÏTA … ½ ﬁ", "𝐖𝐚𝐠𝐧𝐞𝐫 😀 Ｗａｇｎｅｒ", "a\x00b"]
    for _ in range(2000):
        samples.append("".join(chr(rnd.choice([rnd.randrange(0x20, 0x800),
                                               rnd.randrange(0x300, 0x370),
                                               rnd.randrange(0x600, 0x700),
                                               rnd.randrange(0x2000, 0x2100),
                                               rnd.randrange(0xFB00, 0xFE00),
                                               rnd.randrange(0x10000, 0x30000)]))
                               for _ in range(rnd.randrange(1, 30))))
    for sample in samples:
        assert fold(sample) == _fold_slow(sample), repr(sample)


# -- reload -------------------------------------------------------------------------------------

def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_edits_and_sighup_reload_the_running_daemon_and_a_broken_edit_is_refused(
        tmp_path: Path, web: Web, smtp: tuple[Mailbox, int]) -> None:
    import signal
    import subprocess
    import sys
    import threading

    from tests.conftest import ROOT

    box, port = smtp
    items: list[tuple[str, str, str]] = []

    def publish(title: str, text: str) -> None:
        path = f"/a/{len(items)}"
        web.routes[path] = Route(200, page(title, (text + " ") * 4),
                                 {"Content-Type": "text/html"})
        items.append((title, web.url(path), text))
        web.routes["/rss.xml"] = Route(200, rss(items), {"Content-Type": "application/rss+xml"})

    publish("Takuba convoy leaves Ménaka", "The European task force Takuba left Ménaka today.")
    (tmp_path / "watchlists").mkdir()
    desk = tmp_path / "watchlists" / "desk.toml"
    desk.write_text('terms = ["Wagner"]\nchannels = ["email"]\nurgent = true\n')
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=[web.url("/rss.xml")], smtp_port=port, slack_url=None,
                       allowed=[f"127.0.0.1:{web.port}"], seeds=False,
                       terms=("Barkhane",))
    cfg.write_text('watchlist_files = ["watchlists/*.toml"]\n' + cfg.read_text()
                   + '[poll]\ntick = "1s"\ninterval = "1s"\n')
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), "run"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(
        line.decode(errors="replace") for line in iter(proc.stdout.readline, b"")),  # type: ignore[union-attr]
        daemon=True).start()

    def said(text: str, times: int = 1) -> bool:
        return sum(text in line for line in log) >= times

    try:
        _wait_for(lambda: said("cycle feeds=1"))
        # The desk adds Takuba: the edit applies without a restart.
        desk.write_text('terms = ["Wagner", "Takuba"]\nchannels = ["email"]\n'
                        'urgent = true\n')
        _wait_for(lambda: said("reloaded: 1 feeds, 2 watchlists"))
        publish("Takuba hands over its base", "Takuba handed its base in Gao to the army.")
        _wait_for(lambda: any("Takuba hands over" in str(m) for m in box.messages), 60)

        # A broken edit is refused, one line naming the file; the running watchlist stays.
        desk.write_text('terms = ["Wagner", "Takuba"\n')
        _wait_for(lambda: said("reload refused"))
        refused = [line for line in log if "reload refused" in line]
        assert str(desk) in refused[0]
        publish("Takuba's last patrol", "A last patrol of Takuba reached Gao.")
        _wait_for(lambda: any("last patrol" in str(m) for m in box.messages), 60)
        assert proc.poll() is None

        # A fixture the edit breaks refuses it too; SIGHUP asks for a reload at once.
        desk.write_text('terms = ["Wagner"]\nchannels = ["email"]\n[fixtures]\n'
                        'must_match = ["Takuba leaves"]\n')
        _wait_for(lambda: said("fixtures.must_match[0]: not matched"))
        desk.write_text('terms = ["Wagner", "Takuba", "Gao"]\nchannels = ["email"]\n')
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: said("reloaded: 1 feeds, 2 watchlists", 2))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stdout.close()  # type: ignore[union-attr]
    titles = [m["Subject"] for m in box.messages]
    assert not any("Ménaka" in str(m) for m in box.messages), titles  # before the edit


def _ends_agree(term: str, pieces: list[str], seed: int) -> None:
    """On 3,000 random texts made of ``pieces``, the matcher's spans of ``term`` are those of
    one regular expression with the possessive and the word boundaries of a spaced script."""
    import random
    import re

    from monitor.match import POSSESSIVE, term_pattern
    from monitor.text import fold_text

    reference = re.compile(rf"(?<!\w)(?:{term_pattern(term)}){POSSESSIVE}(?!\w)")
    matcher = Matcher([Watchlist("x", (term,))])
    rnd = random.Random(seed)
    for _ in range(3000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 8)))
        found = matcher.match("", text)
        got = [(s.start, s.end) for s in found[0].spans] if found else []
        folded = fold_text(text)
        want = [folded.span(*m.span()) for m in reference.finditer(folded.text)]
        assert got == want, repr(text)


def test_one_word_terms_end_where_their_pattern_would() -> None:
    """The automaton's fast path (a one-word term checked by hand) agrees with the pattern."""
    from monitor.match import _compile_term

    assert _compile_term(0, "Wagner").plain
    _ends_agree("Wagner", ["wagner", "Wagner", "'", "'s", "s", "x", "_", "1", " ", ",", "é",
                           "’", "-"], seed=3)


def test_review_findings_stay_fixed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor import dedup

    # a short text sharing one or two sampled shingles with a pruned article is not its copy
    assert dedup.verify_sampled(frozenset({1}), frozenset({1, 2, 3, 4}), 7) is None
    assert dedup.verify_sampled(frozenset({1, 2}), frozenset({1, 2, 3}), 7) is None
    assert dedup.verify_sampled(frozenset({1, 2, 3}), frozenset({1, 2, 3, 4}), 7) is not None
    # a word with nothing to match is a config error, not a crash at start-up
    cfg = tmp_path / "m.toml"
    cfg.write_text('[[watchlists]]\nname = "x"\n[[watchlists.rules]]\nname = "r"\n'
                   'query = \'Wagner AND "- -"\'\n')
    assert main(["--config", str(cfg), "check"]) == 2
    assert "has no letters or digits" in capsys.readouterr().err
    # Russian nouns in -ий, Arabic و/ف before لل, fuzzy names that must be capitalised
    wl = Watchlist("x", terms=("Дмитрий Уткин", "فاغنر"), entities=(
        Entity("Diop", (Term("Abdoulaye Diop", fuzzy=True, capitalised=True),)),))
    assert one(wl, "", "Похороны Дмитрия Уткина") == ["Дмитрий Уткин"]
    assert one(wl, "", "с Дмитрием Уткиным") == ["Дмитрий Уткин"]
    assert one(wl, "", "وللفاغنر دور في مالي") == ["فاغنر"]
    assert one(wl, "", "Abdulaye Diop visits Moscow") == ["Diop"]
    assert one(wl, "", "abdulaye diop visits Moscow") == []
    # a span keeps the marks of its last letter
    found = Matcher([wl]).match("", "قوات فاغنرُ في مالي")[0]
    assert "قوات فاغنرُ في مالي"[found.spans[0].start:found.spans[0].end] == "فاغنرُ"


def test_a_failed_feeds_import_leaves_the_config_as_it_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "monitor.toml"
    before = 'feeds = [{ url = "https://a.example/rss" }]\n'
    cfg.write_text(before)
    opml = tmp_path / "f.opml"
    opml.write_text('<opml version="2.0"><body><outline text="B" '
                    'xmlUrl="https://b.example/rss"/></body></opml>')
    assert main(["--config", str(cfg), "feeds", "import", str(opml)]) == 2
    assert "is unchanged" in capsys.readouterr().err
    assert cfg.read_text() == before
    assert not (tmp_path / ".monitor.toml.import").exists()


@pytest.mark.parametrize("term", ["Wagner Group", "Вагнер", "группа Вагнера", "فاغنر"])
def test_terms_of_several_words_or_endings_end_where_their_pattern_would(term: str) -> None:
    """The same for terms checked through their own pattern (several words, Russian endings,
    Arabic clitics)."""
    _ends_agree(term, [term, term.lower(), "а", "ами", "ов", "и", "ال", "و", "'", "'s", "s", "x",
                       "_", "1", " ", ",", "-", "é"], seed=5)
