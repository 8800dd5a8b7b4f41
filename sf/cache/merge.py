"""`sf cache merge OUT SHARDS...`: combine shard stores (same fingerprint) without re-extracting.

Shards of one listing (`sf extract --shard I/N` over the same input) are interleaved back into the
input order using each row's `input_index`, so the result equals one unsharded run row for row.
Other stores are concatenated in the order given. Rows are copied block by block (bounded memory).
The result always has the current schema: merging one schema-1 store converts it to sparse grids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.cache.reader import read_attrs
from sf.cache.writer import (STRINGS, StoreFiles, create_datasets, dense_grid, fsync_path, put_grid, row_datasets,
                             strings_sha256, write_attrs)
from sf.errors import SfError

BLOCK_ROWS = 1024


@dataclass
class MergeReport:
    out: Path
    rows: int
    shards: int
    ordered_by_input: bool


def merge_stores(out: str | Path, shards: list[str | Path], force: bool = False) -> MergeReport:
    out, shards = Path(out), [Path(p) for p in shards]
    if not shards:
        raise SfError("give at least one shard store to merge")
    if out.exists() and not force:
        raise SfError(f"{out}: already exists; pass --force to replace it")
    if out.resolve() in {p.resolve() for p in shards}:
        raise SfError(f"{out}: the output cannot also be one of the shards")
    attrs = [read_attrs(p) for p in shards]
    _check(shards, attrs)

    handles = [h5py.File(p, "r") for p in shards]
    try:
        keys = [h[S.KEYS].asstr()[()] for h in handles]
        seen: dict[str, Path] = {}
        for p, ks in zip(shards, keys):
            for k in ks:
                if k in seen:
                    raise SfError(f"key {k!r} is in both {seen[k]} and {p}; shards must not overlap")
                seen[k] = p
        order, by_input = _order(handles, attrs)
        files = StoreFiles(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        files.tmp.unlink(missing_ok=True)
        merged_attrs = {**attrs[0], "shard": "", "merged_from": [p.name for p in shards],
                        "schema_version": S.SCHEMA_VERSION}
        with h5py.File(files.tmp, "w") as f:
            create_datasets(f, merged_attrs, str(attrs[0].get("compression") or "none"))
            total = len(order)
            for name in row_datasets(f):
                f[name].resize(total, axis=0)
            for start in range(0, total, BLOCK_ROWS):
                _copy_block(f, handles, order[start : start + BLOCK_ROWS], start)
            write_attrs(f, merged_attrs)
            f.attrs["complete"] = True
            f.attrs["fingerprint"] = S.fingerprint(merged_attrs)
            f.attrs["strings_sha256"] = strings_sha256(f)
        fsync_path(files.tmp)
        os.replace(files.tmp, out)
    finally:
        for h in handles:
            h.close()
    return MergeReport(out=out, rows=len(order), shards=len(shards), ordered_by_input=by_input)


def _check(shards: list[Path], attrs: list[dict]) -> None:
    first = attrs[0]
    for p, a in zip(shards, attrs):
        if not a.get("complete", False):
            raise SfError(f"{p}: shard is incomplete; finish it with the same `sf extract --shard ...` first")
        diff = S.fingerprint_diff(first, a)
        if diff:
            raise SfError(f"{p} was made with a different extractor than {shards[0]} ({'; '.join(diff)})")
        if bool(a.get("pooled_only", False)) != bool(first.get("pooled_only", False)):
            raise SfError(f"{p}: pooled-only and full stores cannot be merged ({shards[0]} differs)")


def _order(handles, attrs) -> tuple[list[tuple[int, int]], bool]:
    """(shard, row) for every output row: input order for shards of one listing, else concatenation."""
    same_listing = len({a.get("input_sha256", "") for a in attrs}) == 1 and attrs[0].get("input_sha256")
    index = [h[S.INPUT_INDEX][()] if S.INPUT_INDEX in h else None for h in handles]
    if same_listing and all(ix is not None for ix in index):
        allidx = np.concatenate(index)
        if len(np.unique(allidx)) == len(allidx):
            pairs = [(int(v), s, r) for s, ix in enumerate(index) for r, v in enumerate(ix)]
            pairs.sort()
            return [(s, r) for _, s, r in pairs], True
    return [(s, r) for s, h in enumerate(handles) for r in range(h[S.KEYS].shape[0])], False


def _copy_block(f: h5py.File, handles, block: list[tuple[int, int]], start: int) -> None:
    n = len(block)
    shard_ids = np.array([s for s, _ in block])
    rows = np.array([r for _, r in block])
    if S.IMAGE_GRID_SLOT in f:
        status = np.empty(n, dtype=object)
        grid = np.zeros((n, *f[S.IMAGE_GRID].shape[1:]), dtype=np.float16)
        for s in np.unique(shard_ids):
            where = np.flatnonzero(shard_ids == s)
            r = rows[where]
            status[where] = np.asarray(handles[s][S.STATUS].asstr()[int(r.min()):int(r.max()) + 1], dtype=object)[r - r.min()]
            grid[where] = dense_grid(handles[s], rows[where])
        put_grid(f, start, status, grid)
    for name in row_datasets(f):
        if any(name not in h for h in handles):
            continue  # a column older shards lack (image/decoder): left at 0, "not recorded"
        src0 = handles[0][name]
        is_str = name in STRINGS
        buf = np.empty((n, *src0.shape[1:]), dtype=object if is_str else src0.dtype)
        for s in np.unique(shard_ids):
            where = np.flatnonzero(shard_ids == s)
            r = rows[where]  # increasing within a shard: each shard keeps its own order
            ds = handles[s][name]
            lo, hi = int(r.min()), int(r.max()) + 1
            chunk = ds.asstr()[lo:hi] if is_str else ds[lo:hi]
            buf[where] = np.asarray(chunk, dtype=object)[r - lo] if is_str else chunk[r - lo]
        f[name][start : start + n] = buf
