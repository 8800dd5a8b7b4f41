"""Output paths checked before any work: an unwritable or wrongly typed `--out` is one line naming the
path at the start, not a traceback after an hour of extraction or training.

`writable_file` / `writable_dir` really create (and remove) a probe file in the nearest existing folder,
because permission bits say nothing for root, and read-only mounts, immutable folders or a parent that is
a file only show on write. They create nothing, so a command refused later leaves no empty folder.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from sf.errors import SfError

WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENOSPC, errno.EEXIST,
                errno.ENOENT, errno.EDQUOT}


def os_error_line(e: OSError) -> str:
    """One line for an OSError that escaped to the command line: the path and what the OS said."""
    where = e.filename if e.filename is not None else "file"
    what = e.strerror or type(e).__name__
    if e.errno in WRITE_ERRNOS:
        return f"{where}: {what} (cannot create or write it; choose another path)"
    return f"{where}: {what}"


def _probe_dir(folder: Path, shown: Path) -> None:
    """Write-test the nearest existing folder on the way to `folder` (nothing is left behind, nothing created)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise SfError(f"{shown}: cannot be created: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sf-write-test.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise SfError(f"{shown}: not writable ({probe}: {e.strerror or e})") from None


def writable_file(path: str | Path) -> Path:
    """`path` can be written as a file (its folder can be created); it is not itself a folder."""
    path = Path(path)
    if path.is_dir():
        raise SfError(f"{path}: is a folder; give a file path")
    _probe_dir(path.parent, path)
    return path


def writable_dir(path: str | Path) -> Path:
    """`path` is (or can be made) a writable folder; an existing file there is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SfError(f"{path}: exists and is not a folder; give a folder path")
    _probe_dir(path, path)
    return path
