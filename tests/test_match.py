"""The shipped Sahel watchlist (config/watchlists/sahel.toml) on sentences in English, French,
Russian and Arabic: every mention found, in any case ending or with attached clitics, and the
look-alikes left alone, Wagner the composer included (context guards)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor import config
from monitor.digest import highlight
from monitor.errors import ConfigError
from monitor.watchlists import matcher_for
from tests.conftest import ROOT

SETTINGS = config.load(ROOT / "config" / "monitor.toml")
MATCHER = matcher_for(SETTINGS)  # as the daemon builds it, guards included

MENTIONS = [
    # English
    "Russian mercenaries of the Wagner Group arrived in Bamako this week.",
    "Wagner's fighters were seen near Gao.",
    "France ended Operation Barkhane in 2022.",
    "The European Takuba task force left Mali.",
    "Peacekeepers of MINUSMA withdrew from Kidal.",
    "Colonel Assimi Goïta addressed the nation.",
    "Yevgeny Prigozhin died in a plane crash in 2023.",
    "Africa Corps now runs Russia's operations in the Sahel.",
    # French
    "Les mercenaires du groupe Wagner sont arrivés à Bamako.",
    "L'opération Barkhane a pris fin en 2022.",
    "Le colonel Assimi Goita a reçu l'ambassadeur russe.",
    "La MINUSMA a quitté le camp de Tessalit.",
    "Evgueni Prigojine est mort en 2023.",
    "La seconde lettre parle de « Asmi Guetta » et de la junte.",
    # Russian
    "Наемники группы Вагнера прибыли в Бамако.",
    "Боевики ЧВК «Вагнер» покидают Мали.",
    "Сотрудничество Мали с Вагнером продолжалось три года.",
    "Евгений Пригожин погиб в авиакатастрофе.",
    "Смерть Пригожина изменила всё.",
    "Миссия МИНУСМА покинула Мали.",
    "Африканский корпус заменил наемников.",
    "Бойцы Африканского корпуса прибыли в Бамако.",
    "Полковник Ассими Гоита выступил с речью.",
    "Европейская группа Такуба ушла из Мали.",
    # Arabic
    "وصل مرتزقة مجموعة فاغنر إلى باماكو هذا الأسبوع.",
    "غادرت قوات فاغنر مالي.",
    "وقالت بعثة الأمم المتحدة مينوسما إن جنديين أصيبا.",
    "وانسحبت المينوسما من كيدال.",
    "انتهت عملية برخان الفرنسية عام 2022.",
    "قال العقيد عاصمي غويتا إن الجيش سيواصل القتال.",
    "قُتل يفغيني بريغوجين في تحطم طائرة.",
    "حل الفيلق الأفريقي محل المرتزقة.",
    "وفاغنر ما زالت في مالي.",
    "ولفاغنر دور كبير في شمال مالي.",
    "Wagner leaves Mali after three years",
    "Le départ de Wagner du Mali a été annoncé vendredi.",
    "قوة تاكوبا الأوروبية غادرت مالي.",
]

TRAPS = [
    "The Wagnerian scale of the opera impressed the critics.",
    "Il faut gagner la confiance des électeurs.",
    "The Warner Bros. studio announced a new film.",
    "La MINUSCA reste en Centrafrique.",
    "Вагнеровский фестиваль в Байройте открылся.",
    "A tall barkhan dune rises over the desert road.",
    "Les corps des victimes ont été rendus aux familles.",
    "Фестиваль вагнеровской музыки прошёл в Москве.",
    "تاكوبار مدينة صغيرة.",
    "The Bayreuth festival opened with Wagner's Parsifal.",
    "Richard Wagner composed the Ring cycle over twenty-six years; the opera house was his.",
    "Le compositeur Wagner a vécu à Lucerne.",
    "Композитор Вагнер написал оперу «Лоэнгрин».",
    "Mr Wagner, the school's headmaster, retired in June.",
    "Honus Wagner was one of the first five players in the Baseball Hall of Fame.",
    "الموسيقار فاغنر ألف أوبرا بارسيفال.",
    "Wagner's Ring at the Metropolitan Opera: a review of the new production in Moscow.",
]


@pytest.mark.parametrize("sentence", MENTIONS)
def test_every_mention_is_found_and_highlighted(sentence: str) -> None:
    found = MATCHER.match("", sentence)
    assert found, sentence
    pieces = highlight(found[0].snippet, found[0].terms, found[0].marks)
    assert any(hit for _, hit in pieces), "the match must light up in the digest"
    for span in found[0].spans:  # spans point into the original text
        assert sentence[span.start : span.end].strip()


@pytest.mark.parametrize("sentence", TRAPS)
def test_look_alikes_are_left_alone(sentence: str) -> None:
    assert MATCHER.match("", sentence) == [], sentence


def test_a_guarded_term_counts_where_its_context_is() -> None:
    text = ("The opera season opened with Wagner in Vienna. " + "Filler words here. " * 10 +
            "Meanwhile Wagner fighters reached Gao.")
    found = MATCHER.match("", text)
    wagner = [s for s in found[0].spans if s.term == "Wagner Group"]
    assert len(wagner) == 1
    assert text[wagner[0].start:].startswith("Wagner fighters")


def test_guards_must_name_watchlist_terms(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[[watchlists]]\nname = "x"\nterms = ["Wagner"]\n'
                    '[[watchlists.guards]]\nterms = ["Vagner"]\nnear = ["Mali"]\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert "guards[0].terms: not among terms, entities or aliases: Vagner" in str(info.value)


def test_arabic_and_cyrillic_folding() -> None:
    from monitor.text import fold

    assert fold("أإآٱ")[0] == "اااا"  # hamza seats and wasla
    assert fold("مدرسة")[0] == fold("مدرسه")[0]  # ta marbuta
    assert fold("مصطفى")[0] == fold("مصطفي")[0]  # alef maqsura
    assert fold("فـاغـنـر")[0] == "فاغنر"  # tatweel
    assert fold("فَاغْنَر")[0] == "فاغنر"  # harakat
    assert fold("Пригожин Ёж")[0] == "пригожин еж"


# ---------------------------------------------------------------------------------------------
# The labelled set: 293 sentences (tests/data/match_sentences.jsonl) in English, French, Russian
# and Arabic, positives and traps, labelled by meaning before the shipped watchlist was tuned on
# them; real prose from the seeds and the corpus where they have it.

LABELLED = [json.loads(line) for line in
            (ROOT / "tests" / "data" / "match_sentences.jsonl").read_text().splitlines()]
# A second set of 174, written later by another hand without sight of the first or of the
# watchlist; it scored precision 0.989 and recall 0.967 before the watchlist saw its errors.
HELD_OUT = [json.loads(line) for line in
            (ROOT / "tests" / "data" / "match_heldout.jsonl").read_text().splitlines()]
FLOOR_PRECISION = 0.98
FLOOR_RECALL = 0.95


def _scores(rows: list[dict[str, Any]]) -> tuple[float, float, list[str]]:
    tp = fp = fn = 0
    wrong = []
    for row in rows:
        got = bool(MATCHER.match(row.get("title", ""), row["text"]))
        tp += got and row["expect"]
        fp += got and not row["expect"]
        fn += not got and row["expect"]
        if got != row["expect"]:
            wrong.append(f"{row['id']} ({row['family']}): {row['text'][:80]}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, wrong


def test_the_labelled_set_meets_its_floors() -> None:
    assert len(LABELLED) >= 200
    assert {r["lang"] for r in LABELLED} == {"en", "fr", "ru", "ar"}
    precision, recall, wrong = _scores(LABELLED)
    print(f"\nlabelled set: {len(LABELLED)} sentences, precision {precision:.3f}, "
          f"recall {recall:.3f}")
    for lang in ("en", "fr", "ru", "ar"):
        p, r, _ = _scores([x for x in LABELLED if x["lang"] == lang])
        print(f"  {lang}: precision {p:.3f}, recall {r:.3f}")
    assert precision >= FLOOR_PRECISION and recall >= FLOOR_RECALL, wrong
    precision, recall, wrong = _scores(HELD_OUT)
    print(f"second set: {len(HELD_OUT)} sentences, precision {precision:.3f}, "
          f"recall {recall:.3f}")
    assert precision >= FLOOR_PRECISION and recall >= FLOOR_RECALL, wrong


@pytest.mark.parametrize("lang", ["en", "fr", "ru", "ar"])
def test_no_language_falls_behind(lang: str) -> None:
    precision, recall, wrong = _scores([x for x in LABELLED + HELD_OUT if x["lang"] == lang])
    assert precision >= 0.95 and recall >= 0.9, wrong
