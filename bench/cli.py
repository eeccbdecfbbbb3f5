"""How fast the command line answers: wall time of `monitor --help`, `monitor check` on the example
config, and `monitor status` on a database of stored articles.

    python bench/cli.py [--articles 100000] [--runs 7]

Each command runs ``--runs`` times as a fresh process; the median and the spread (min-max) are
printed, with the ratio to a bare interpreter start (`python -c pass`) measured in the same run,
so the figures can be compared across machines. Targets (issue 15): `--help` under 0.3 s,
`status` under 1 s with 100,000 stored articles.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(cmd: list[str], runs: int) -> tuple[float, float, float]:
    """Median, min and max wall seconds of ``cmd`` (it must exit 0)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def fill(db: Path, articles: int) -> Path:
    """A config whose SQLite database holds ``articles`` stored articles (one feed)."""
    from sqlalchemy import insert

    from monitor.store import db as store
    from monitor.store import feeds as feed_store
    from monitor.store.tables import Article

    cfg = db.with_suffix(".toml")
    cfg.write_text(f'[storage]\nurl = "sqlite:///{db}"\n[[feeds]]\nurl = '
                   f'"https://news.example/rss.xml"\n[[watchlists]]\nname = "sahel"\n'
                   f'terms = ["Wagner"]\nchannels = []\n')
    engine, sessions = store.open_database(f"sqlite:///{db}")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with sessions.begin() as s:
        feed_store.sync_feeds(s, [("https://news.example/rss.xml", None, 1800.0)], now)
    rows = []
    for i in range(articles):
        url = f"https://news.example/a/{i}"
        rows.append(dict(link=url, guid=url, canonical_url=url, title=f"Article {i}",
                         outlet="Example", text="Some words about the Sahel. " * 20,
                         text_source="page",
                         content_hash=hashlib.sha1(url.encode()).hexdigest(),
                         created_at=now + timedelta(seconds=i), is_seed=False))
        if len(rows) == 5000 or i == articles - 1:
            with sessions.begin() as s:
                s.execute(insert(Article), rows)
            rows = []
    engine.dispose()
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = sys.executable
    monitor = [python, "-m", "monitor"]
    example = str(ROOT / "config" / "monitor.toml")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        cfg = fill(Path(tmp) / "bench.db", args.articles)
        print(f"{args.articles:,} articles stored in {time.perf_counter() - started:.1f}s; "
              f"{args.runs} runs each, median (min-max)")
        base = timed([python, "-c", "pass"], args.runs)
        rows = [("python -c pass (baseline)", base, None),
                ("monitor --help", timed([*monitor, "--help"], args.runs), 0.3),
                ("monitor check (example config)",
                 timed([*monitor, "--config", example, "check"], args.runs), None),
                (f"monitor status ({args.articles:,} articles)",
                 timed([*monitor, "--config", str(cfg), "status"], args.runs), 1.0)]
    for name, (median, low, high), target in rows:
        verdict = "" if target is None else (" ok" if median < target else " OVER") + \
            f" (target < {target:g}s)"
        print(f"  {name:<42} {median:6.3f}s ({low:.3f}-{high:.3f})  "
              f"x{median / base[0]:5.1f} baseline{verdict}")


if __name__ == "__main__":
    main()
