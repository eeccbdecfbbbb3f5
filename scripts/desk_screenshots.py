"""Screenshots of the web desk for the README: fills a database through the real pipeline from
loopback feeds (the labelled four-language stories of tests/data/stories and hostile titles,
as the desk's tests do), serves the desk, and photographs its pages in Debian's chromium.

    .venv/bin/python scripts/desk_screenshots.py [OUT_DIR]     (default docs/desk)
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from monitor.desk.pages import Desk
from monitor.ops import Liveness, serve
from monitor.store import db
from tests.conftest import _running_web
from tests.test_desk import fill


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/desk")
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, _running_web() as web:
        filled = fill(Path(tmp), web)
        engine, sessions = db.open_database(filled.settings.storage.url)
        live = Liveness(heartbeat=5, cycle_limit=60)
        live.beat()
        endpoint = serve("127.0.0.1:0", sessions, live, lambda: ["sahel"],
                         desk=Desk(sessions, lambda: filled.settings))
        base = f"http://127.0.0.1:{endpoint.port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.goto(base + "/?days=90&watchlist=sahel&entity=Wagner%20Group")
                story = re.findall(r'href="(/story/\d+)"', page.content())[0]
                page.goto(base + story)
                article = next(a for a in re.findall(r'href="(/article/\d+)"', page.content()))
                shots = [("stories", "/?days=90"), ("story", story), ("article", article),
                         ("search", "/search?q=%40wagner+AND+Mali"), ("feeds", "/feeds"),
                         ("trends", "/trends")]
                for name, path in shots:
                    page.goto(base + path)
                    page.screenshot(path=str(out / f"{name}.png"))
                phone = browser.new_page(viewport={"width": 390, "height": 800},
                                         device_scale_factor=1)
                phone.goto(base + "/?days=90")
                phone.screenshot(path=str(out / "stories-phone.png"))
                browser.close()
        finally:
            endpoint.close()
            engine.dispose()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
