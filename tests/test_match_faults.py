"""The smaller faults of issue 14: an address the guard took for public, terms that never matched
(backslashes, scripts written without spaces), and terms so common they match everything."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest

from monitor import config
from monitor.cli import main
from monitor.errors import BlockedAddress
from monitor.guard import is_internal
from monitor.match import Entity, Matcher, Term, Watchlist
from monitor.service import Service
from monitor.watchlists import common_word_languages, term_warnings
from tests.conftest import Web, write_config
from tests.test_reliability import fetcher

# -- the guard ---------------------------------------------------------------------------------

INTERNAL = [
    "fec0::1", "fec0:1234::5", "feff::1",  # site-local (deprecated, still routed inside sites)
    "fc00::1", "fd12:3456::1",  # unique local
    "fe80::1", "::1", "::", "ff02::1",  # link-local, loopback, unspecified, multicast
    "100::1",  # discard-only
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64 to 127.0.0.1 and 169.254.169.254
    "2002:7f00:1::1", "2002:c0a8:101::1",  # 6to4 through 127.0.0.1 and 192.168.1.1
    "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "2001:db8::1", "3fff::1",  # documentation
    "2001::1", "2001:2::1",  # Teredo, benchmarking
    "0.0.0.0", "0.1.2.3", "10.1.2.3", "100.64.0.1", "127.0.0.2", "169.254.169.254",
    "172.16.0.1", "192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.0.1", "198.18.0.1",
    "198.51.100.1", "203.0.113.9", "224.0.0.1", "240.0.0.1", "255.255.255.255",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e",
          "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", INTERNAL)
def test_special_purpose_addresses_are_internal(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_stay_public(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["fec0::1", "64:ff9b::7f00:1", "198.18.0.1"])
def test_a_name_resolving_to_a_special_address_is_refused_before_connecting(
        web: Web, address: str) -> None:
    f = fetcher(resolve=lambda host, port: [address])
    with pytest.raises(BlockedAddress, match="internal address"):
        f.get(f"http://news.example:{web.port}/feed", max_bytes=100)
    assert web.requests == []


# -- terms that never matched ------------------------------------------------------------------


def _found(term: str, title: str = "", text: str = "") -> list[list[str]]:
    return [m.terms for m in Matcher([Watchlist("w", terms=(term,))]).match(title, text)]


@pytest.mark.parametrize("term", [r"AC\DC", r"C:\Windows", "Wagner\\", "\\Wagner", r"a\b\c",
                                  r"\d+", r"\1"])
def test_a_term_with_a_backslash_matches_itself(term: str) -> None:
    assert _found(term, text=f"Seen here: {term} and more.") == [[term]]
    assert _found(term, title=f"{term} in the news") == [[term]]


def test_a_term_with_a_backslash_matches_through_the_config(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    (tmp_path / "watchlists").mkdir()
    (tmp_path / "watchlists" / "w.toml").write_text(
        "name = 'w'\nterms = ['AC\\DC', \"C:\\\\Temp\"]\n"
        "[fixtures]\nmust_match = ['AC\\DC played Bamako', 'files in C:\\Temp']\n"
        "must_not_match = ['ACDC played Bamako']\n", encoding="utf-8")
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=[], seeds=False, extra='watchlist_files = ["watchlists/*.toml"]\n')
    text = cfg.read_text()
    cfg.write_text('watchlist_files = ["watchlists/*.toml"]\n' +
                   text.replace('watchlist_files = ["watchlists/*.toml"]\n', ""))
    assert main(["--config", str(cfg), "check"]) == 0, capsys.readouterr().err
    assert main(["--config", str(cfg), "explain", "--watchlist", "w",
                 "--title", r"AC\DC at the festival", ""]) == 0
    assert "MATCH: AC\\DC" in capsys.readouterr().out


@pytest.mark.parametrize(("term", "text"), [
    ("瓦格纳", "俄罗斯瓦格纳集团在马里活动"),  # Chinese: no spaces at all
    ("瓦格纳集团", "据报道，瓦格纳集团已撤出马里。"),
    ("マリ", "ワグネルがマリで活動している"),  # Japanese: Katakana run between Kanji and Hiragana
    ("ワグネル", "ロシアのワグネルは"),
    ("바그너", "바그너가 말리에서 철수했다"),  # Korean: a particle right after the name
    ("มาลี", "ทหารในมาลีถอนกำลัง"),  # Thai
])
def test_terms_of_scripts_written_without_spaces_match_inside_running_text(
        term: str, text: str) -> None:
    assert _found(term, text=text) == [[term]]


@pytest.mark.parametrize(("term", "text"), [
    ("マリ", "マリアが来た"),  # inside a longer Katakana word (Maria)
    ("바그너", "스바그너"),  # not at the start of the Korean word
    ("Wagner", "Wagnerian opera"), ("Mali", "Somalia"),  # spaced scripts keep their boundaries
])
def test_word_boundaries_still_hold_where_a_script_has_them(term: str, text: str) -> None:
    assert _found(term, text=text) == []


def test_cjk_term_in_an_entity_and_a_mixed_text() -> None:
    matcher = Matcher([Watchlist("w", entities=(
        Entity("Wagner", (Term("Wagner"), Term("瓦格纳"), Term("ワグネル"))),))])
    [found] = matcher.match("", "Reuters：瓦格纳集团 (Wagner Group) 离开马里")
    assert found.terms == ["Wagner"]


# -- terms too common to mean anything ---------------------------------------------------------


def test_common_words_are_found_in_each_language() -> None:
    assert common_word_languages("the") == ["English"]
    assert common_word_languages("Of The") == ["English"]
    assert "French" in common_word_languages("le")
    assert common_word_languages("и") == ["Russian"]
    assert common_word_languages("في") == ["Arabic"]
    for fine in ("Wagner", "Mali", "Barkhane force", "группа Вагнера", "فاغنر", "瓦格纳"):
        assert common_word_languages(fine) == [], fine


def test_check_warns_about_stop_word_terms_and_still_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=["127.0.0.1:9"], seeds=False, terms=("Wagner", "the", "a", "Le"),
                       watchlist='[[watchlists.entities]]\nname = "United States"\n'
                                 'aliases = [{ text = "US", capitalised = true }, "us"]')
    assert main(["--config", str(cfg), "check"]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("warning:")]
    assert len(warned) == 4, err
    assert any("watchlists[0].terms[1]: 'the' is a common word in English" in line
               for line in warned), warned
    assert any("terms[2]: 'a' is a common word in English and French" in line for line in warned)
    assert any("entities[0] (United States): 'us'" in line for line in warned)
    assert not any("'US'" in line for line in warned)  # capitalised: the country only


def test_the_daemon_logs_stop_word_terms_at_start(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=[], seeds=False, terms=("Wagner", "the"))
    settings = config.load(cfg)
    assert [str(w) for w in term_warnings(settings)] == [
        f"{cfg}: watchlists[0].terms[1]: 'the' is a common word in English and will match "
        "almost every article; use a longer phrase, a rule or a guard"]
    with caplog.at_level(logging.WARNING, "monitor"):
        svc = Service(settings)
        svc.prepare()
        svc.close()
    assert any("'the' is a common word" in r.getMessage() for r in caplog.records)


def test_check_warns_about_lower_case_operators_in_rules(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                       feeds=["http://127.0.0.1:9/rss.xml"], smtp_port=None, slack_url=None,
                       allowed=["127.0.0.1:9"], seeds=False,
                       watchlist='[[watchlists.rules]]\nname = "either"\n'
                                 'query = \'Wagner or Barkhane AND "not" NOT Takuba near/5 x\'')
    assert main(["--config", str(cfg), "check"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("warning:")]
    assert len(warned) == 2, warned  # "or" and "near/5"; the quoted "not" is a word on purpose
    assert "watchlists[0].rules[0] (either): 'or' is searched for as a word; operators are " \
           "upper case (OR)" in warned[0]
    assert "'near/5'" in warned[1]
