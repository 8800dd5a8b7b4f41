"""Writing feature stores so that a kill at any moment never corrupts one.

HDF5 files are not crash-safe while open for writing, so no open-for-write file is ever the store:
  - rows of a running extraction go into small part files, `NAME.h5.parts/part-000001.h5`, each
    written whole to `*.tmp` and renamed (a part either exists complete or not at all);
  - at the end (or on Ctrl-C) `finalize` copies the store to `NAME.h5.tmp`, applies the parts in
    order (changed keys in place, new keys appended), fsyncs and renames it over `NAME.h5`,
    then deletes the parts. Rerunning after a kill anywhere repeats only what was lost, and
    applying a part twice gives the same store, so the result equals one clean run.
h5py is used from the main process only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, fields
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.cache.damage import probe, reading, short
from sf.errors import SfError, write_failure
from sf.lockfile import held

CHUNK_BYTES = 256 * 1024
STR = h5py.string_dtype("utf-8")
COMPRESSIONS = ("none", "gzip", "lzf")


@dataclass
class RowBlock:
    """A block of store rows, in store order."""

    keys: list[str]
    content_hash: list[str]
    status: list[str]
    reason: list[str]
    input_index: np.ndarray  # (n,) int64
    image_pooled: np.ndarray  # (n, C) float16
    image_grid: np.ndarray | None = None  # (n, R, C) float16
    text_tokens: np.ndarray | None = None  # (n, L, D) float16
    text_mask: np.ndarray | None = None  # (n, L) uint8
    text_pooled: np.ndarray | None = None  # (n, D) float16
    image_decoder: np.ndarray | None = None  # (n,) uint8, codes of schema.DECODERS

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, idx) -> "RowBlock":
        idx = np.asarray(idx, dtype=np.int64)
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                out[f.name] = None
            elif isinstance(v, list):
                out[f.name] = [v[i] for i in idx]
            else:
                out[f.name] = v[idx]
        return RowBlock(**out)

    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray))


# Dataset name -> RowBlock field, numeric datasets only.
NUMERIC = {
    S.INPUT_INDEX: "input_index",
    S.IMAGE_POOLED: "image_pooled",
    S.IMAGE_GRID: "image_grid",
    S.TEXT_TOKENS: "text_tokens",
    S.TEXT_MASK: "text_mask",
    S.TEXT_POOLED: "text_pooled",
    S.IMAGE_DECODER: "image_decoder",
}
STRINGS = {S.KEYS: "keys", S.CONTENT_HASH: "content_hash", S.STATUS: "status", S.REASON: "reason"}


# ---------------------------------------------------------------- layout


def row_shapes(attrs: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """Dataset -> (per-row shape, dtype) implied by a store's attributes."""
    c, gh, gw = int(attrs["channels"]), int(attrs["grid_h"]), int(attrs["grid_w"])
    shapes = {S.INPUT_INDEX: ((), "i8"), S.IMAGE_POOLED: ((c,), "f2"), S.IMAGE_DECODER: ((), "u1")}
    if not attrs.get("pooled_only", False):
        shapes[S.IMAGE_GRID] = ((gh * gw, c), "f2")  # one row per grid slot in sparse stores (see row_datasets)
        if S.sparse_grid(attrs):
            shapes[S.IMAGE_GRID_SLOT] = ((), "i8")
    if attrs.get("text_encoder", "none") != "none":
        d, L = int(attrs["text_dim"]), int(attrs["text_len"])
        shapes[S.TEXT_TOKENS] = ((L, d), "f2")
        shapes[S.TEXT_MASK] = ((L,), "u1")
        shapes[S.TEXT_POOLED] = ((d,), "f2")
    return shapes


STRING_BYTES_PER_ROW = 200  # key, content hash, status, reason and their heap entries, measured on VISUELLE


def bytes_per_row(attrs: dict, image: bool) -> int:
    """Uncompressed bytes one store row takes: a row without an image pays no grid in sparse stores."""
    total = STRING_BYTES_PER_ROW
    for name, (shape, dtype) in row_shapes(attrs).items():
        if name == S.IMAGE_GRID and not image and S.sparse_grid(attrs):
            continue
        total += int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return total


def expected_bytes(attrs: dict, rows: int, image_rows: int) -> int:
    return image_rows * bytes_per_row(attrs, True) + (rows - image_rows) * bytes_per_row(attrs, False)


def chunk_rows(row_shape: tuple[int, ...], dtype: str) -> int:
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return int(max(1, min(4096, CHUNK_BYTES // max(row_bytes, 1))))


def create_datasets(f: h5py.File, attrs: dict, compression: str = "none") -> None:
    comp = None if compression in (None, "none") else compression
    for name in STRINGS:
        f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=STR, chunks=(1024,))
    for name, (shape, dtype) in row_shapes(attrs).items():
        f.create_dataset(
            name,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype=dtype,
            chunks=(chunk_rows(shape, dtype), *shape),
            fletcher32=True,
            compression=comp,
        )


def write_attrs(f: h5py.File, attrs: dict) -> None:
    for k, v in attrs.items():
        if v is None:
            v = ""
        elif isinstance(v, (dict, list, tuple)):
            v = json.dumps(v, sort_keys=True)
        f.attrs[k] = v


def row_datasets(f: h5py.File) -> dict[str, str]:
    """Dataset -> RowBlock field of the datasets with one entry per store row (a sparse grid goes by slot)."""
    sparse = S.IMAGE_GRID_SLOT in f
    return {n: a for n, a in {**STRINGS, **NUMERIC}.items() if n in f and not (sparse and n == S.IMAGE_GRID)}


def put_grid(f: h5py.File, n0: int, status, grid: np.ndarray | None) -> None:
    """Slots for store rows n0.. (`status`, dense `grid` of those rows): ok rows get new grid rows, others -1."""
    has = np.asarray([s == S.STATUS_OK for s in status], dtype=bool)
    g, slots = f[S.IMAGE_GRID], f[S.IMAGE_GRID_SLOT]
    m0, k = g.shape[0], int(has.sum())
    slot = np.full(len(has), -1, dtype=np.int64)
    slot[has] = np.arange(m0, m0 + k)
    slots.resize(n0 + len(has), axis=0)
    slots[n0 : n0 + len(has)] = slot
    if k:
        if grid is None:
            raise SfError(f"{f.filename}: rows to append lack {S.IMAGE_GRID}")
        g.resize(m0 + k, axis=0)
        g[m0 : m0 + k] = grid if k == len(has) else grid[has]


def dense_grid(f: h5py.File, rows: np.ndarray | None = None) -> np.ndarray:
    """Store rows `rows` (default all) of the grid with zeros for rows without one, whatever the layout."""
    g = f[S.IMAGE_GRID]
    if S.IMAGE_GRID_SLOT not in f:
        return g[()] if rows is None else g[np.asarray(rows)]
    slot = f[S.IMAGE_GRID_SLOT][()] if rows is None else f[S.IMAGE_GRID_SLOT][()][np.asarray(rows)]
    out = np.zeros((len(slot), *g.shape[1:]), dtype=g.dtype)
    have = slot >= 0
    if have.any():  # one read of the slots' span: rows of one block have neighbouring slots
        lo, hi = int(slot[have].min()), int(slot[have].max()) + 1
        out[have] = g[lo:hi][slot[have] - lo]
    return out


def append(f: h5py.File, block: RowBlock) -> None:
    n0, n = f[S.KEYS].shape[0], len(block)
    if n == 0:
        return
    if S.IMAGE_GRID_SLOT in f:
        put_grid(f, n0, block.status, block.image_grid)
    for name, attr in row_datasets(f).items():
        value = getattr(block, attr)
        if value is None:
            raise SfError(f"{f.filename}: rows to append lack {name}")
        ds = f[name]
        ds.resize(n0 + n, axis=0)
        ds[n0 : n0 + n] = np.asarray(value, dtype=object) if name in STRINGS else value


def append_file(f: h5py.File, src: h5py.File) -> None:
    """Append all of `src`'s rows. Where both datasets share chunk shape and filters and the rows
    start on a chunk boundary, chunks are copied as stored bytes (already checksummed/compressed):
    folding parts into the store then costs one read and one write, no decode or re-encode."""
    n0, n = f[S.KEYS].shape[0], src[S.KEYS].shape[0]
    if S.IMAGE_GRID_SLOT in f:
        if S.IMAGE_GRID_SLOT not in src:
            raise SfError(f"{src.filename}: rows to append lack {S.IMAGE_GRID_SLOT}")
        m0 = f[S.IMAGE_GRID].shape[0]
        slot = src[S.IMAGE_GRID_SLOT][()]
        slots = f[S.IMAGE_GRID_SLOT]
        slots.resize(n0 + n, axis=0)
        slots[n0 : n0 + n] = np.where(slot >= 0, slot + m0, -1)
        _copy_rows(f[S.IMAGE_GRID], src[S.IMAGE_GRID], m0, numeric=True)
    for name in row_datasets(f):
        if name not in src:
            raise SfError(f"{src.filename}: rows to append lack {name}")
        _copy_rows(f[name], src[name], n0, numeric=name in NUMERIC)


def _copy_rows(ds: h5py.Dataset, sds: h5py.Dataset, n0: int, numeric: bool) -> None:
    """Append all of `sds` to `ds` at row n0, chunk by stored chunk where the layouts allow it."""
    n = sds.shape[0]
    ds.resize(n0 + n, axis=0)
    rows = ds.chunks[0]
    if numeric and _same_layout(ds, sds) and n0 % rows == 0:
        tail = (0,) * (ds.ndim - 1)
        for r in range(0, n, rows):
            mask, raw = sds.id.read_direct_chunk((r, *tail))
            ds.id.write_direct_chunk((n0 + r, *tail), raw, mask)
    elif n:
        ds[n0 : n0 + n] = sds[()]


def _same_layout(a: h5py.Dataset, b: h5py.Dataset) -> bool:
    return (a.chunks == b.chunks and a.dtype == b.dtype and a.compression == b.compression
            and a.compression_opts == b.compression_opts and a.fletcher32 == b.fletcher32 and a.shuffle == b.shuffle)


def overwrite(f: h5py.File, row: int, block: RowBlock, i: int) -> None:
    for name, attr in row_datasets(f).items():
        f[name][row] = getattr(block, attr)[i]
    if S.IMAGE_GRID_SLOT in f:
        g, slots = f[S.IMAGE_GRID], f[S.IMAGE_GRID_SLOT]
        slot = int(slots[row])
        if block.status[i] == S.STATUS_OK:
            if slot < 0:
                slot = g.shape[0]
                g.resize(slot + 1, axis=0)
                slots[row] = slot
            g[slot] = block.image_grid[i]
        elif slot >= 0:  # the row lost its image: its old grid row is zeroed and left unused
            g[slot] = 0
            slots[row] = -1


def read_block(f: h5py.File) -> RowBlock:
    values = {attr: list(f[name].asstr()[()]) for name, attr in STRINGS.items()}
    for name, attr in NUMERIC.items():
        values[attr] = f[name][()] if name in f else None
    if S.IMAGE_GRID_SLOT in f:
        values["image_grid"] = dense_grid(f)
    if values["input_index"] is None:
        values["input_index"] = np.arange(len(values["keys"]), dtype=np.int64)
    return RowBlock(**values)


def strings_sha256(f: h5py.File) -> str:
    h = hashlib.sha256()
    for name in STRINGS:
        h.update(f"{name}\0".encode())
        for s in f[name].asstr()[()]:
            h.update(s.encode())
            h.update(b"\0")
    return h.hexdigest()


def failpoint(name: str) -> None:
    """Crash-test hook: with SF_FAILPOINT=name the process SIGKILLs itself here (no cleanup runs)."""
    if os.environ.get("SF_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def write_bytes_synced(path: Path, data) -> None:
    """`data` to `path`, fsynced; on any failure the half-written file is removed and SfError names it."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        path.unlink(missing_ok=True)
        raise SfError(write_failure(path, e)) from None


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the working area of one store


class StoreFiles:
    """NAME.h5, its part files and its temp file; all writes of one extraction go through here."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.tmp = self.out.with_name(self.out.name + ".tmp")
        self.parts_dir = self.out.with_name(self.out.name + ".parts")
        self.lock_path = self.out.with_name(self.out.name + ".lock")

    @contextlib.contextmanager
    def locked(self):
        """One writer per store; the OS drops the lock when a process dies, even by SIGKILL."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with held(self.lock_path, f"{self.out}: another `sf extract` is writing this store right now"):
            self.clean_leftovers()
            yield self

    def check_space(self, new_bytes: int) -> int:
        """Refuse a run the disk cannot hold: new rows are written twice (parts, then the store) and the
        store is copied once (finalize). Returns the bytes needed."""
        need = 2 * new_bytes + (self.out.stat().st_size if self.out.exists() else 0)
        free = shutil.disk_usage(self.out.parent).free
        if need > free:
            raise SfError(f"{self.out}: this extraction needs about {need / 1e9:.2f} GB free on {self.out.parent} "
                          f"({new_bytes / 1e9:.2f} GB of new rows, written as parts then folded into the store), "
                          f"only {free / 1e9:.2f} GB is free; free some space or choose --out on another disk")
        return need

    def clean_leftovers(self) -> None:
        """Half-written files of a killed run: never complete, so always safe to delete."""
        self.tmp.unlink(missing_ok=True)
        if self.parts_dir.is_dir():
            for p in self.parts_dir.glob("*.tmp"):
                p.unlink(missing_ok=True)

    def parts(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        return sorted(self.parts_dir.glob("part-*.h5"))

    def existing_attrs(self) -> list[tuple[Path, dict]]:
        """Attributes of the store and every part, to check a new run against."""
        out = []
        for p in ([self.out] if self.out.exists() else []) + self.parts():
            out.append((p, read_attrs_of(p)))
        return out

    def done(self) -> dict[str, str]:
        """key -> content hash of every row already extracted (store, then parts; later wins)."""
        done: dict[str, str] = {}
        if self.out.exists():
            # Never extend a damaged store: its bad rows would count as extracted. Reading every chunk once
            # costs far less than the extraction that follows.
            from sf.cache.verify import verify_store

            res = verify_store(self.out)
            if res.failures:
                raise SfError(f"{res.summary()} (refusing to add rows to it)")
        for p in ([self.out] if self.out.exists() else []) + self.parts():
            with _open(p, "r") as f, reading(p):
                keys = f[S.KEYS].asstr()[()]
                hashes = f[S.CONTENT_HASH].asstr()[()]
            done.update(zip(keys, hashes))
        return done

    def write_part(self, attrs: dict, blocks: RowBlock | list[RowBlock], compression: str = "none",
                   name: str | None = None) -> Path:
        """One part file, written whole and renamed. `name` ("part-....h5"): for writers that run
        concurrently (Ray workers), which cannot number parts by listing the folder."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if name is None:
            existing = self.parts()
            n = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
            name = f"part-{n:06d}.h5"
        final = self.parts_dir / name
        tmp = final.with_name(final.name + ".tmp")
        # Built in memory, written by Python: HDF5 never meets a full disk (closing a file after a failed
        # write segfaults it), and ENOSPC is one OSError naming the part.
        image = io.BytesIO()
        with h5py.File(image, "w") as f:
            create_datasets(f, attrs, compression)
            for block in [blocks] if isinstance(blocks, RowBlock) else blocks:
                append(f, block)  # block by block: no concatenated copy of a part's worth of features
            write_attrs(f, {**attrs, "complete": False, "part": True})
        write_bytes_synced(tmp, image.getbuffer())
        failpoint("part-before-rename")
        os.replace(tmp, final)
        failpoint("part-written")
        return final

    def finalize(self, attrs: dict, complete: bool, compression: str = "none",
                 positions: dict[str, int] | None = None) -> None:
        """Fold the parts into NAME.h5 atomically (see the module docstring).

        `positions`: key -> index in the listing this run read (whose hash goes into the attributes);
        rows kept from an earlier run get their position in this listing, so `sf cache merge` can
        restore input order from any shard, resumed or incremental."""
        parts = self.parts()
        self._room_to_fold(parts)
        try:
            self._fold(parts, attrs, complete, compression, positions)
        except OSError as e:  # the disk filled anyway (another writer): the store and the parts stay as they were
            self.tmp.unlink(missing_ok=True)
            raise SfError(write_failure(self.tmp, e) + f"; the rows extracted so far stay in {self.parts_dir}") from None
        fsync_path(self.tmp)
        failpoint("finalize-before-rename")
        os.replace(self.tmp, self.out)
        fsync_path(self.out.parent)
        failpoint("finalize-renamed")
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _room_to_fold(self, parts: list[Path]) -> None:
        """Refuse before copying when the copy cannot fit: HDF5 is not trusted to fail cleanly mid-write."""
        need = (self.out.stat().st_size if self.out.exists() else 0) + sum(p.stat().st_size for p in parts) + (1 << 20)
        free = shutil.disk_usage(self.out.parent).free
        if need > free:
            raise SfError(f"{self.tmp}: could not be written: No space left on device (folding the parts needs "
                          f"{need / 1e6:.1f} MB, {free / 1e6:.1f} MB free); free space and rerun the same command "
                          f"(the rows extracted so far stay in {self.parts_dir})")

    def _fold(self, parts: list[Path], attrs: dict, complete: bool, compression: str,
              positions: dict[str, int] | None) -> None:
        if self.out.exists():
            shutil.copyfile(self.out, self.tmp)
        with h5py.File(self.tmp, "r+" if self.out.exists() else "w") as f:
            created = f.attrs.get("created")
            if S.KEYS not in f:
                create_datasets(f, attrs, compression)
            index = {k: i for i, k in enumerate(f[S.KEYS].asstr()[()])}
            for p in parts:
                with _open(p, "r") as pf:
                    part_keys = pf[S.KEYS].asstr()[()]
                    if not any(k in index for k in part_keys):
                        n0 = len(index)
                        index.update((k, n0 + i) for i, k in enumerate(part_keys))
                        append_file(f, pf)
                        continue
                    block = read_block(pf)
                new = []
                for i, k in enumerate(block.keys):
                    if k in index:
                        overwrite(f, index[k], block, i)
                    else:
                        index[k] = len(index)
                        new.append(i)
                append(f, block.take(new))
            if positions:
                ds = f[S.INPUT_INDEX]
                idx = ds[()]
                moved = [(i, positions[k]) for i, k in enumerate(index) if k in positions and idx[i] != positions[k]]
                if moved:
                    for i, pos in moved:
                        idx[i] = pos
                    ds[...] = idx
            now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_attrs(f, {**attrs, "created": S._plain(created) if created is not None else now, "updated": now})
            f.attrs["complete"] = bool(complete)
            f.attrs["fingerprint"] = S.fingerprint(attrs)
            f.attrs["strings_sha256"] = strings_sha256(f)


class BackgroundParts:
    """StoreFiles.write_part on a writer thread, so the forward pass never waits for the disk.

    At most `depth` parts wait in the queue (bounded memory); an error on the thread is raised by the
    next `put` or by `close`. HDF5 and fsync release the GIL for the I/O itself."""

    def __init__(self, files: StoreFiles, attrs: dict, compression: str = "none", depth: int = 2):
        import queue
        import threading

        self.files, self.attrs, self.compression = files, attrs, compression
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="sf-part-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            blocks = self.queue.get()
            if blocks is None:
                return
            if self.error is None:
                try:
                    self.files.write_part(self.attrs, blocks, self.compression)
                except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
                    self.error = e

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, blocks: list[RowBlock]) -> None:
        self._raise()
        if blocks:
            self.queue.put(blocks)

    def close(self) -> None:
        """Wait until every queued part is on disk."""
        self.queue.put(None)
        self.thread.join()
        self._raise()


def read_attrs_of(path: Path) -> dict:
    if not path.is_file():
        raise SfError(f"{path}: not a file (a feature store is one .h5 file); use another --out")
    return probe(path)[0]


def _open(path: Path, mode: str) -> h5py.File:
    if not path.is_file():
        raise SfError(f"{path}: not a file (a feature store is one .h5 file); use another --out")
    try:
        return h5py.File(path, mode)
    except Exception as e:  # OSError for a non-HDF5 file, others for a damaged one
        raise SfError(f"{path}: not a readable HDF5 feature store ({short(e)}); delete it to start over") from None


def check_compatible(new: dict, existing: list[tuple[Path, dict]]) -> None:
    """Refuse to mix rows from different extractors, naming what differs."""
    for path, old in existing:
        diff = S.fingerprint_diff(old, new)
        if diff:
            raise SfError(
                f"{path} was made with a different extractor ({'; '.join(diff)}); "
                f"use another --out, or delete it to re-extract"
            )
        if S.version(old) != S.version(new):
            raise SfError(f"{path} has store schema {S.version(old)} (dense grids), this sf writes schema "
                          f"{S.version(new)} (sparse grids); convert it with `sf cache merge NEW.h5 {path}` and "
                          f"extract into NEW.h5, or use another --out")
        if bool(old.get("pooled_only", False)) != bool(new.get("pooled_only", False)):
            mode = "pooled-only" if old.get("pooled_only") else "full (grid)"
            raise SfError(f"{path} is a {mode} store; rerun with the same --pooled-only setting or use another --out")
        if str(old.get("shard", "")) != str(new.get("shard", "")):
            raise SfError(f"{path} holds shard {old.get('shard') or 'none'!r}, this run is shard {new.get('shard') or 'none'!r}; use another --out")
