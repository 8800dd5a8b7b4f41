"""The command line's two consoles: results on stdout, progress, notes and errors on stderr.

Piped or redirected, rich would cut every line at 80 columns; a result read by a program (or pasted into an
issue) must be whole, so a non-terminal stdout gets a width no table reaches.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape

PIPED_WIDTH = 1000


def _width(stream) -> int | None:
    # COLUMNS set by the user (or a test) still wins, as rich does by default.
    if "COLUMNS" in os.environ or stream.isatty():
        return None
    return PIPED_WIDTH


def results_console() -> Console:
    return Console(width=_width(sys.stdout))


def messages_console() -> Console:
    return Console(stderr=True, width=_width(sys.stderr))


def plain(text: object) -> str:
    """`text` shown as written: `pip install -e '.[tune]'` keeps its brackets (rich would read them as markup)."""
    return escape(str(text))
