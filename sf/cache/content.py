"""What a store row was made from: one sha256 over the image file's bytes and the description.

`sf extract` stores it per row (/content_hash) to decide what is already extracted; stage 2 recomputes
it for the products it is about to train on or score, so features of another catalogue, or of an image
replaced since extraction, are refused instead of silently used (`stale_products`).

Both stages hash through `content_hash` here, so the two can never disagree. Files are hashed once per
process: the digest of the image bytes is kept keyed by (device, inode, size, mtime), so a study that
loads two stores of the same catalogue, or a second check in the same run, costs one `stat` per product.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# No product image is anywhere near this; a bigger file is refused rather than read (a runaway copy,
# a disk image named .jpg). Special files (FIFOs, devices such as a link to /dev/zero) are never read.
MAX_IMAGE_BYTES = 512 * 2**20


class NotAnImageFile(Exception):
    """The path is not a regular, readable file of sane size; str(e) is the reason."""


def check_regular_file(path: str | Path) -> int:
    """Size of `path` if it is a regular file (symlinks followed) within MAX_IMAGE_BYTES, else NotAnImageFile.

    Checked before any open(): opening a FIFO blocks until someone writes, and a device never ends."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotAnImageFile("file not found") from None
    except OSError as e:
        raise NotAnImageFile(f"cannot read file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise NotAnImageFile("is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) \
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "special"
        raise NotAnImageFile(f"not a regular file ({kind})")
    if st.st_size > MAX_IMAGE_BYTES:
        raise NotAnImageFile(f"file too large ({st.st_size / 2**20:,.0f} MiB > {MAX_IMAGE_BYTES // 2**20} MiB read cap)")
    return st.st_size


_image_digests: dict[tuple, "hashlib._Hash"] = {}


def _image_state(image: Path) -> "hashlib._Hash":
    """sha256 state after b'image:' + the file's bytes (or its error), memoised by file identity."""
    try:
        st = os.stat(image)
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
    except OSError:
        ident = None
    if ident is not None and ident in _image_digests:
        return _image_digests[ident]
    h = hashlib.sha256()
    try:
        if ident is None or stat.S_ISDIR(ident[-1]):
            open(image, "rb").close()  # raises the OSError that names the problem (missing, a folder, ...)
        size = check_regular_file(image)
        with open(image, "rb") as fh:
            h.update(b"image:")
            left = size
            # Read at most the size stat reported: a file that grows while being read cannot make this endless.
            while left > 0:
                block = fh.read(min(1 << 20, left))
                if not block:
                    break
                h.update(block)
                left -= len(block)
    except NotAnImageFile as e:
        h = hashlib.sha256(f"image-error:{e}".encode())
    except OSError as e:
        # A missing or unreadable file hashes to its error, so fixing the file changes the hash.
        h = hashlib.sha256(f"image-error:{type(e).__name__}".encode())
    if ident is not None:
        _image_digests[ident] = h
    return h


def content_hash(image: str | Path | None, text: str | None) -> str:
    """sha256 of the image file's bytes and the description: what decides 'already extracted'."""
    if image is None:
        h = hashlib.sha256(b"image:none")
    else:
        h = _image_state(Path(image)).copy()
    h.update(b"\0text:")
    h.update((text or "").encode())
    return h.hexdigest()


def content_hashes(rows: list[tuple[str | Path | None, str | None]], threads: int = 8) -> list[str]:
    """content_hash of each (image, text); hashlib and file reads release the GIL, so threads help."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda r: content_hash(*r), rows, chunksize=64))


def stale_products(ids: list[str], stored: list[str], rows: list[tuple[str | Path | None, str | None]]) -> list[str]:
    """Products whose (image, text) no longer hash to the content hash stored with their features."""
    now = content_hashes(rows)
    return [pid for pid, old, new in zip(ids, stored, now) if old != new]
