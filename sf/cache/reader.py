"""Read a feature store into memory once, so training never touches HDF5 per batch; only image grids larger
than the memory budget (sf.cache.budget) stay in the store and are read per batch (sf.cache.grid)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.cache.budget import memory_budget
from sf.cache.damage import probe, reading, refuse_damage
from sf.cache.grid import GridFile, SparseGrid
from sf.errors import SfError


@dataclass
class Features:
    path: Path
    attrs: dict
    keys: list[str]
    status: np.ndarray  # (N,) str
    reason: np.ndarray  # (N,) str
    image_pooled: np.ndarray  # (N, C) float16
    image_grid: SparseGrid | None  # (N, R, C) float16, rows with an image only; None in pooled-only stores
    text_tokens: np.ndarray | None  # (N, L, D) float16
    text_mask: np.ndarray | None  # (N, L) bool
    text_pooled: np.ndarray | None  # (N, D) float16
    content_hash: np.ndarray | None = None  # (N,) str: sha256 of the image bytes + text each row was made from

    @property
    def fingerprint(self) -> str:
        return str(self.attrs["fingerprint"])

    @property
    def has_image(self) -> np.ndarray:
        return self.status == S.STATUS_OK

    @property
    def has_text(self) -> np.ndarray:
        if self.text_mask is None:
            return np.zeros(len(self.keys), dtype=bool)
        return self.text_mask.any(axis=1)

    def rows(self, keys: list[str]) -> np.ndarray:
        """Row indices of `keys`; a key the store lacks is an error naming it and the store."""
        index = {k: i for i, k in enumerate(self.keys)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise SfError(
                f"{self.path}: {len(missing)} product(s) not in the feature store (first: {missing[0]!r}); "
                f"run `sf extract --data DIR --out {self.path}` to add them"
            )
        return np.array([index[k] for k in keys], dtype=np.int64)


def read_attrs(path: str | Path, check: bool = True) -> dict:
    """A store's attributes, after checking (in a crash-proof child, once per file) that its metadata,
    layout and string checksum are intact; `check=False` returns them for a damaged store too."""
    path = Path(path)
    if not path.exists():
        if path.with_name(path.name + ".parts").is_dir():
            raise SfError(f"{path}: extraction is still running or was killed before finishing; re-run the same `sf extract` to finish it")
        raise SfError(f"{path}: feature store not found (make one with `sf extract`)")
    if not path.is_file():
        raise SfError(f"{path}: not a file (a feature store is one .h5 file made by `sf extract`)")
    attrs, problems = probe(path)
    if check:
        refuse_damage(path, problems)
    return attrs


def _strings(ds) -> np.ndarray:
    return np.array(ds.asstr()[()], dtype=object)


def _all_finite(a: np.ndarray, rows: int = 256) -> bool:
    """np.isfinite(a).all() without a full-size temporary; float16 by its exponent bits (~10x faster)."""
    for i in range(0, len(a), rows):
        block = a[i:i + rows]
        if block.dtype == np.float16:
            if ((block.view(np.uint16) & 0x7C00) == 0x7C00).any():
                return False
        elif not np.isfinite(block).all():
            return False
    return True


def _grid(f: h5py.File, path: Path, attrs: dict, ok: np.ndarray, budget: int) -> SparseGrid | None:
    """The grid rows of ok rows: in memory when they fit `budget`, else read from the store per batch."""
    if S.IMAGE_GRID not in f:
        return None
    ds = f[S.IMAGE_GRID]
    if S.sparse_grid(attrs):
        slot = f[S.IMAGE_GRID_SLOT][()]
    else:  # schema 1: a grid row per store row, zeros unless ok
        slot = np.where(ok, np.arange(len(ok)), -1)
    row_bytes = int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize
    if int(ok.sum()) * row_bytes > budget:
        return SparseGrid(slot, GridFile(path, cache_bytes=max(16 * 2**20, min(budget // 4, 512 * 2**20))))
    if S.sparse_grid(attrs):
        return SparseGrid(slot, ds[()])
    rows = np.flatnonzero(ok)  # schema 1: keep the ok rows only, read block by block (no dense copy)
    data = np.empty((len(rows), *ds.shape[1:]), dtype=ds.dtype)
    step = 4 * (ds.chunks[0] if ds.chunks else 64)
    at = 0
    for lo in range(0, len(ok), step):
        keep = rows[(rows >= lo) & (rows < lo + step)]
        if len(keep):
            data[at : at + len(keep)] = ds[lo : lo + step][keep - lo]
            at += len(keep)
    slot = np.full(len(ok), -1, dtype=np.int64)
    slot[rows] = np.arange(len(rows))
    return SparseGrid(slot, data)


def load_features(path: str | Path, allow_incomplete: bool = False, memory_budget_bytes: int | None = None) -> Features:
    """The store in memory (image grids over the budget stay on disk), after checking its layout, chunk
    checksums and string checksum: a damaged store is refused in one line, never half-used."""
    path = Path(path)
    attrs = read_attrs(path)
    if S.version(attrs) not in S.READABLE_VERSIONS:
        raise SfError(f"{path}: store schema version {attrs.get('schema_version')} is not one this sf reads "
                      f"({', '.join(map(str, S.READABLE_VERSIONS))}); re-run `sf extract` with this sf")
    budget = memory_budget() if memory_budget_bytes is None else memory_budget_bytes
    if not attrs.get("complete", False) and not allow_incomplete:
        raise SfError(f"{path}: store is incomplete (extraction was interrupted); re-run the same `sf extract` to finish it")
    with reading(path), h5py.File(path, "r") as f:  # read_attrs checked the metadata, layout and strings
        def opt(name, dtype=None):
            if name not in f:
                return None
            a = f[name][()]
            return a.astype(dtype) if dtype is not None else a

        status = _strings(f[S.STATUS])
        feats = Features(
            path=path,
            attrs=attrs,
            keys=list(_strings(f[S.KEYS])),
            status=status,
            reason=_strings(f[S.REASON]),
            image_pooled=f[S.IMAGE_POOLED][()],
            image_grid=_grid(f, path, attrs, status == S.STATUS_OK, budget),
            text_tokens=opt(S.TEXT_TOKENS),
            text_mask=opt(S.TEXT_MASK, bool),
            text_pooled=opt(S.TEXT_POOLED),
            content_hash=_strings(f[S.CONTENT_HASH]) if S.CONTENT_HASH in f else None,
        )
        grid = feats.image_grid
        if grid is not None and not _all_finite(grid.data if not grid.streamed else f[S.IMAGE_GRID]):
            refuse_damage(path, [(S.IMAGE_GRID, "non-finite values")])  # streamed: checked block by block once
    for name in ("image_pooled", "text_tokens", "text_pooled"):
        a = getattr(feats, name)
        if a is not None and not _all_finite(a):
            bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
            refuse_damage(path, [(name.replace("_", "/", 1), f"non-finite values in rows {', '.join(map(str, bad[:5]))}"
                                  + (" ..." if len(bad) > 5 else ""))])
    return feats
