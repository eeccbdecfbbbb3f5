"""Command line: the only place that configures logging and turns errors into exit codes.
What each command does is in ``commands.py``, imported once the arguments are parsed, so
``monitor --help`` (and a mistyped option) answers at once.

Exit codes: 0 ok, 2 bad usage or invalid config, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from monitor import __version__
from monitor.urls import redact

log = logging.getLogger("monitor")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else config/monitor.toml)")
    parser = argparse.ArgumentParser(
        prog="monitor", description="Media monitoring: feeds in, deduplicated watchlist "
        "digests out by email and Slack.")
    parser.add_argument("--config", default=None, metavar="PATH",
                        help="config file (default: $MONITOR_CONFIG, else config/monitor.toml)")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="run the daemon in the foreground",
                   description="Poll feeds and send digests on schedule until SIGTERM/SIGINT.")
    sub.add_parser("once", parents=[common], help="one cycle now: poll every feed, deliver due",
                   description="Poll every feed now (ignoring intervals), process new entries, "
                   "deliver whatever is due by schedule, and exit.")
    digest = sub.add_parser("digest", parents=[common], help="send or preview pending digests",
                            description="Deliver or show every pending match of every watchlist.")
    mode = digest.add_mutually_exclusive_group(required=True)
    mode.add_argument("--send", action="store_true",
                      help="send everything pending now, ignoring schedules and retry back-off")
    mode.add_argument("--preview", action="store_true",
                      help="print what would be sent; send nothing, mark nothing")
    mode.add_argument("--resend", type=int, metavar="ID",
                      help="send digest ID again (one that failed, or was lost downstream); "
                      "`monitor status` lists failed digests with their IDs")
    digest.add_argument("--html", metavar="FILE",
                        help="with --preview: also write the HTML version to FILE (one file per "
                        "watchlist, FILE-<watchlist>.html, when there are several)")
    sub.add_parser("check", parents=[common], help="validate the config",
                   description="Validate the config; every problem on its own line.")
    sub.add_parser("status", parents=[common], help="feeds and their health, counts, digests",
                   description="Show feed health, counts, last digest per watchlist and failed "
                   "deliveries.")
    feeds = sub.add_parser("feeds", parents=[common], help="import or export the feed list (OPML)",
                           description="Move the feed list in and out as OPML.")
    feeds_sub = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    imp = feeds_sub.add_parser("import", parents=[common], help="add the feeds of an OPML file",
                               description="Append the OPML file's feeds that are not "
                               "configured yet to the config file, as [[feeds]] tables.")
    imp.add_argument("file", help="the OPML file ('-': standard input)")
    exp = feeds_sub.add_parser("export", parents=[common], help="write the feeds as OPML",
                               description="Write the configured feeds as OPML 2.0.")
    exp.add_argument("file", nargs="?", default="-", help="where to write (default: "
                     "standard output)")
    search = sub.add_parser("search", parents=[common], help="search stored articles",
                            description="Search stored articles (newest first) with the "
                            "watchlist query language: words, \"phrases\", AND, OR, NOT, "
                            "NEAR/n, title:, body:.")
    search.add_argument("query", help='e.g. \'"Africa Corps" NEAR/10 Bamako\'')
    search.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    search.add_argument("--since", metavar="AGE", help="articles stored in the last AGE")
    sub.add_parser("prune", parents=[common], help="apply retention.after now",
                   description="Prune articles older than retention.after to their "
                   "fingerprints and delete their matches and delivery records (the daemon does "
                   "it once a day).")
    sub.add_parser("health", parents=[common], help="is the daemon live? (for HEALTHCHECK)",
                   description="Ask the running daemon's /healthz when [http] is enabled (the "
                   "scheduler ticks, the database answers); else check that the database "
                   "answers. Exit 0 healthy, 1 not.")
    explain = sub.add_parser(
        "explain", parents=[common], help="say which rule matched where, or why not",
        description="Run the watchlists on a text, a stored article, or every stored article "
        "(--history: what a changed watchlist would now match; nothing is changed).")
    explain.add_argument("text", nargs="?", help="the text to try ('-': read standard input)")
    explain.add_argument("--title", default="", help="a headline to try with the text")
    explain.add_argument("--watchlist", metavar="NAME", help="only this watchlist")
    source = explain.add_mutually_exclusive_group()
    source.add_argument("--article", type=int, metavar="ID", help="a stored article")
    source.add_argument("--history", action="store_true",
                        help="every stored article: list those whose match would change")
    explain.add_argument("--since", metavar="AGE", help="with --history: articles stored in "
                         "the last AGE ('30d', '12h'); default: all")
    backfill = sub.add_parser(
        "backfill", parents=[common], help="match stored articles again after a watchlist change",
        description="Record the matches stored articles have under the current watchlists. "
        "Past articles are alerted only with --alert.")
    backfill.add_argument("--watchlist", metavar="NAME", help="only this watchlist")
    backfill.add_argument("--since", metavar="AGE", help="articles stored in the last AGE "
                          "('30d', '12h'); default: all")
    backfill.add_argument("--alert", action="store_true",
                          help="also queue the new matches for the next digests")
    backfill.add_argument("--stories", action="store_true",
                          help="instead: place the stored articles that are in no story yet "
                               "(stored before stories existed) in stories, oldest first")
    stories = sub.add_parser(
        "stories", parents=[common], help="stories: one event across outlets and languages",
        description="Stories with an article stored in the period, newest activity first, "
        "each with every article it holds (copies marked). Seed documents are not listed.")
    stories.add_argument("--since", metavar="AGE", help="the period ('7d', '12h'; default 7d)")
    stories.add_argument("--watchlist", metavar="NAME",
                         help="only stories with an article this watchlist matched")
    stories.add_argument("--json", action="store_true", help="one JSON array (for tools)")
    stories.add_argument("--limit", type=int, default=500,
                         help="at most this many stories (default 500)")
    trends = sub.add_parser(
        "trends", parents=[common], help="each watchlist entity's recent count against its usual",
        description="Per watchlist entity and term: the mentions (original articles) in the "
        "recent window, the usual count of such a window, the surprise score and whether it "
        "is spiking.")
    trends.add_argument("--watchlist", metavar="NAME", help="only this watchlist")
    trends.add_argument("--json", action="store_true", help="one JSON array (for tools)")
    sub.add_parser("watchlists", parents=[common], help="list the watchlists",
                   description="Each watchlist: what it looks for, its channels and schedule, "
                   "and the file it comes from.")
    test = sub.add_parser("test-channel", parents=[common],
                          help="send a test message through a channel",
                          description="Send a short test message through a configured channel "
                          "(email, slack or apprise), to the recipients, webhook or URLs of a "
                          "watchlist; nothing is stored.")
    test.add_argument("channel", help="email, slack or apprise")
    test.add_argument("--watchlist", metavar="NAME",
                      help="whose recipients, webhook or URLs (default: the first that uses "
                      "the channel)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from sqlalchemy.exc import SQLAlchemyError

    from monitor import config
    from monitor.commands import COMMANDS, UsageError
    from monitor.errors import ConfigError, MonitorError

    try:
        settings = config.load(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    _setup_logging(settings.log.level, settings.log.format)
    try:
        return COMMANDS[args.command](settings, args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MonitorError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 1
    except SQLAlchemyError as e:  # the database failed mid-command (full disk, gone away)
        from monitor.store.db import describe

        print(f"error: database: {redact(describe(e))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `monitor status | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (not the one of set-up time,
    which may be closed since: a test's capture, a redirected stream)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _Redact(logging.Filter):
    """No password of a URL (``https://user:pass@host``) ever reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: redact(v) if isinstance(v, str) else v
                             for k, v in fields.items()}
        return True


def _setup_logging(level: str, form: str = "text") -> None:
    handler = _StderrHandler()
    handler.addFilter(_Redact())
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))


if __name__ == "__main__":
    raise SystemExit(main())
