"""Watchlists, on their own: ``schema`` (the format, validated as the config is read) and
``compile`` (settings -> the matcher; fixtures; warnings). The config imports this package;
nothing here imports the config at run time."""

from monitor.watchlists.compile import (
    common_word_languages,
    fixture_problems,
    matcher_for,
    term_warnings,
    watchlist_of,
)
from monitor.watchlists.schema import WatchlistSettings

__all__ = ["WatchlistSettings", "common_word_languages", "fixture_problems", "matcher_for",
           "term_warnings", "watchlist_of"]
