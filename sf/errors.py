"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""

import errno
import os
from pathlib import Path


class SfError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


def where(file: object, row: int | None = None, column: str | None = None) -> str:
    """Format a location as `file, row R, column 'C'` for error messages (rows are 1-based data rows)."""
    parts = [str(file)]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def disk_full(e: BaseException, folder: str | Path) -> bool:
    """A library's write error that was really the disk: errno 28 in its text, or under 1 MiB left."""
    text = str(e)
    if "No space left" in text or "os error 28" in text or getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20) or st.f_favail == 0


def write_failure(path: str | Path, e: BaseException) -> str:
    """`path: <reason> (nothing was replaced; free space or choose another path)`: one line for any write failure."""
    if isinstance(e, OSError) and e.strerror:
        why = e.strerror
    elif disk_full(e, Path(path).parent):
        why = "No space left on device"
    else:
        why = f"{type(e).__name__}: {str(e)[:160]}"
    return f"{path}: could not be written: {why} (nothing there was replaced; free space or choose another path)"
