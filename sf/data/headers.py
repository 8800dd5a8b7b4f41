"""Table headers checked before a table is parsed: every column has a name, no name appears twice
(after trimming spaces), and a header that is not text or is absurdly long is refused in a line of
readable length. Polars would otherwise rename an exact duplicate to `color_duplicated_0` (a silent
new attribute), crash on a trimmed duplicate, or echo a 10 MB header in its message.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sf.errors import SfError

MAX_HEADER_BYTES = 1 << 20  # a header of thousands of ordinary column names is a few KiB
ECHO_CHARS = 200


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` cut to `limit` characters for an error line, saying how much was cut."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def columns_list(names) -> str:
    return clip(", ".join(map(str, names)))


def check_names(names: list[str], path: Path) -> None:
    """Refuse blank and duplicate column names (compared after trimming spaces), naming them."""
    seen: dict[str, int] = {}
    for i, raw in enumerate(names, start=1):
        name = str(raw).strip()
        if not name:
            raise SfError(f"{path}: column {i} of the header has no name (columns: {columns_list(names)})")
        if name in seen:
            raise SfError(f"{path}: column {clip(name, 60)!r} appears twice in the header (columns {seen[name]} and {i})")
        seen[name] = i


def check_csv_header(path: Path, sep: str = ",") -> list[str]:
    """Read and check only the header line of a CSV file; returns its column names."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(MAX_HEADER_BYTES + 1)
    except OSError as e:
        raise SfError(f"{path}: cannot be read ({e.strerror or e})") from None
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) > MAX_HEADER_BYTES:
        raise SfError(f"{path}: the header line is longer than {MAX_HEADER_BYTES // 2**20} MiB; not a CSV table?")
    if b"\0" in line:
        raise SfError(f"{path}: binary data in the header line; not a CSV text table")
    try:
        text = line.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as e:
        raise SfError(f"{path}: the header is not UTF-8 text (byte {e.start + 1}); save the table as UTF-8 CSV") from None
    if not text.strip():
        raise SfError(f"{path}: the first line (the header) is empty")
    try:
        names = next(csv.reader(io.StringIO(text), delimiter=sep))
    except csv.Error as e:
        raise SfError(f"{path}: the header line is not valid CSV ({clip(e, 120)})") from None
    check_names(names, path)
    return names
