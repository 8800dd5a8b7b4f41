"""Atomic writes: a result appears whole or not at all, and bad input never clobbers an old one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sf.errors import SfError, disk_full, write_failure


def _umask_mode(mode: int) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """`write(tmp)` a temp file beside `path`, then rename it over `path`: the file is whole or absent.

    A write the disk refuses (full, quota, read-only) is one SfError naming `path`, whichever library
    wrote it (torch.save says "unexpected pos", polars "ComputeError"), and the temp file is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SfError(write_failure(path, e)) from None
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600 files; results should get the permissions any other new file would.
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, path)
    except (SfError, KeyboardInterrupt):
        raise
    except Exception as e:
        if not isinstance(e, OSError) and not disk_full(e, path.parent):
            raise
        raise SfError(write_failure(path, e)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to a temp file beside `path`, then rename it over `path`."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


DATASET_MARKERS = ("products.csv", "products.parquet")


def refuse_existing(out: Path, force: bool, markers: tuple[str, ...] = DATASET_MARKERS) -> None:
    """Raise before any work if `out` holds something that only --force may replace.

    With --force, a non-empty `out` is replaced only if it holds one of `markers` (what this kind of
    output always contains), so a typo never deletes an unrelated folder.
    """
    if out.exists() and not out.is_dir():
        raise SfError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise SfError(f"{out}: folder exists and is not empty (use --force to replace it)")
        if markers and not any((out / m).exists() for m in markers):
            raise SfError(f"{out}: holds none of {', '.join(markers)}, so it is not an earlier result; "
                          "refusing to replace it even with --force")


@contextmanager
def staged_dir(out: str | Path, force: bool = False, markers: tuple[str, ...] = DATASET_MARKERS) -> Iterator[Path]:
    """Yield an empty temp folder beside `out`; when the block succeeds it becomes `out`.

    On any error the temp folder is removed and an existing `out` is left untouched.
    """
    out = Path(out)
    refuse_existing(out, force, markers)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Same parent, so the final rename stays on one filesystem and is atomic.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "x")
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old / "x", out)  # put the previous result back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
