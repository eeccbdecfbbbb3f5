"""Rewrite the configuration reference in README.md from the settings' own declarations."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.config import reference_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def main() -> None:
    text = README.read_text()
    block = f"{START}\n{reference_markdown()}\n{END}"
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    README.write_text(new)


if __name__ == "__main__":
    main()
