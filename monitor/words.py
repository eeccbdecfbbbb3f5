"""What an article is filed under in the search index (``monitor.search`` reads it): its
words, folded, each once. Computed in the document workers, so this module imports no more than
the text tools (no database, no config)."""

from __future__ import annotations

import re

from monitor.match import _ARABIC_CLITICS
from monitor.text import fold_text

WORD = re.compile(r"[^\W_]+")
_CLITIC_HEAD = re.compile(_ARABIC_CLITICS)
# runs of letters of one kind: spaced scripts (Latin, Cyrillic, Arabic...), then each script
# written without spaces, whose characters may stand next to a spaced word with no space between
_SCRIPT_RUN = re.compile(r"[^\W_\u0e00-\u0eff\u1000-\u11ff\u1780-\u17ff\u3040-\u30ff"
                         r"\u3130-\u318f\ua960-\ua97f"
                         r"\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7ff\uf900-\ufaff"
                         r"\uff66-\uff9f\U00020000-\U0003ffff]+"
                         r"|[\u0e00-\u0eff]+|[\u1000-\u109f]+|[\u1780-\u17ff]+"
                         r"|[\u3040-\u30ff\uff66-\uff9f]+"
                         r"|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]+"
                         r"|[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7ff]+")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
# a letter of a script written without spaces (the runs after the first of ``_SCRIPT_RUN``)
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u11ff\u1780-\u17ff\u3040-\u30ff\uff66-\uff9f"
                       r"\u3130-\u318f\ua960-\ua97f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7ff"
                       r"\uf900-\ufaff\U00020000-\U0003ffff]")
_MAX_WORD = 100  # longer "words" (base64, run-together junk) are not indexed


def index_words(title: str, text: str) -> list[str]:
    """The words an article is indexed under: folded, each once; an Arabic word also without
    the clitics that may be written onto it (و ف ب ك ل and the article)."""
    folded = fold_text(f"{title}\n{text}").text
    tokens = WORD.findall(folded)
    unspaced = _UNSPACED.search(folded) is not None
    if not unspaced and _ARABIC.search(folded) is None:  # most texts: the words, once each
        return list(dict.fromkeys(token for token in tokens if len(token) <= _MAX_WORD))
    seen: dict[str, None] = {}
    for token in tokens:
        if len(token) > _MAX_WORD:
            continue
        # a change of script is a word boundary to the matcher ("美国总统Trump表示"): each run
        # of one script is a word too
        words = [token] if not unspaced or token.isascii() else [token, *(
            run for run in (m.group() for m in _SCRIPT_RUN.finditer(token)) if run != token)]
        for word in words:
            seen[word] = None
            if _ARABIC.match(word):
                for cut in range(1, min(5, len(word) - 1)):
                    if _CLITIC_HEAD.fullmatch(word[:cut]):
                        seen[word[cut:]] = None
    return list(seen)
