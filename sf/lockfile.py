"""One writer per output: an flock'ed lock file that records its holder's pid.

The OS drops an flock when every process holding it is gone, even by SIGKILL; but forked children
(DataLoader workers) inherit it and keep it for seconds after their parent was killed, so a lock whose
recorded holder is dead is taken over through a fresh lock file renamed over the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sf.errors import SfError


def acquire(lock_path: Path, busy: str):
    """The open, flock'ed lock file (close it to release); SfError `busy (pid N)` if a live process holds it."""
    fh = open(lock_path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip()
        fh.close()
        if not holder.isdigit() or alive(int(holder)):
            raise SfError(busy + (f" (pid {holder})" if holder.isdigit() else "")) from None
        fresh = lock_path.with_name(f"{lock_path.name}.{os.getpid()}")
        fh = open(fresh, "w")
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        os.replace(fresh, lock_path)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
    except OSError as e:  # a full disk: name the lock file, not "file"
        with contextlib.suppress(OSError):
            fh.close()  # flushes the unwritten pid again, and fails again
        from sf.errors import write_failure

        raise SfError(write_failure(lock_path, e)) from None
    return fh


@contextlib.contextmanager
def held(lock_path: Path, busy: str):
    """`acquire` for a block. The lock file stays afterwards: deleting it would let a second writer lock a
    new file while a third still holds the old one."""
    fh = acquire(lock_path, busy)
    try:
        yield
    finally:
        fh.close()


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a zombie (killed, not yet reaped) holds nothing any more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
