"""`sf cache verify`: read every chunk of a store, so disk corruption shows up before training does.

Numeric datasets carry fletcher32 checksums per chunk (HDF5 refuses to return a chunk whose
checksum fails). Variable-length strings cannot be filtered in HDF5, so their content is checked
against the `strings_sha256` attribute written with the store (sf.cache.damage). Whatever the damage,
the answer is one line: ok, incomplete, or damaged with the rows and datasets affected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.cache.damage import hint, layout_problems, short, string_problems
from sf.cache.isolated import Crashed, run_isolated
from sf.errors import SfError


@dataclass
class VerifyResult:
    path: Path
    rows: int = 0
    chunks: int = 0
    bytes: int = 0
    complete: bool = True
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (dataset, rows, problem)

    @property
    def ok(self) -> bool:
        return not self.failures and self.complete

    def summary(self) -> str:
        """The one-line answer."""
        if not self.failures and self.complete:
            return (f"{self.path}: ok — {self.rows} rows, {self.chunks} chunks, {self.bytes / 2**20:.1f} MiB read, "
                    "all checksums match")
        if not self.failures:
            return (f"{self.path}: incomplete — extraction was interrupted before it finished; "
                    "rerun the same `sf extract` to finish it")
        shown = "; ".join(f"{d} rows {r}: {p}" if r not in ("-", "all") else f"{d}: {p}" for d, r, p in self.failures[:3])
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        return f"{self.path}: damaged — {shown}{more}; {hint(self.path).split('; ')[1]}"


def verify_store(path: str | Path) -> VerifyResult:
    """Check everything that can be checked; never raises for a damaged file (only for a missing one)."""
    path = Path(path)
    if not path.exists():
        raise SfError(f"{path}: feature store not found")
    if not path.is_file():
        raise SfError(f"{path}: not a file (a feature store is one .h5 file made by `sf extract`)")
    try:
        return run_isolated(_verify, path, extra_bytes=2 * path.stat().st_size)
    except Crashed as e:
        return VerifyResult(path, failures=[("metadata", "-", str(e))])


def _verify(path: Path) -> VerifyResult:
    res = VerifyResult(path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        res.failures.append(("file", "-", f"not a readable HDF5 file ({short(e)})"))
        return res
    try:
        with f:
            _verify_open(f, path, res)
    except Exception as e:  # damage in the object headers surfaces as many exception types
        res.failures.append(("metadata", "-", f"unreadable ({short(e)})"))
    return res


def _verify_open(f: h5py.File, path: Path, res: VerifyResult) -> None:
    try:
        attrs = {k: S._plain(v) for k, v in f.attrs.items()}
    except Exception as e:
        res.failures.append(("metadata", "-", f"attributes unreadable ({short(e)})"))
        attrs = {}
    res.complete = bool(attrs.get("complete", False))
    if "schema_version" not in attrs or S.KEYS not in f:
        res.failures.append(("metadata", "-", "not an sf feature store (no schema_version attribute or keys dataset)"))
        return
    layout = layout_problems(f, attrs, path.stat().st_size)
    res.failures += [(d, "-", p) for d, p in layout]
    skip = {d for d, _ in layout}
    if S.KEYS in skip or "metadata" in skip:
        return
    res.rows = f[S.KEYS].shape[0]
    for name in _dataset_names(f, res):
        if name in skip:
            continue
        ds = f[name]
        if ds.dtype.kind in "OSU" or ds.chunks is None:
            _read_whole(ds, res)
        else:
            _read_chunks(ds, res, _slot_rows(f) if name == S.IMAGE_GRID else None)
    try:
        res.failures += [(d, "-", p) for d, p in string_problems(f, attrs)]
    except Exception as e:
        res.failures.append(("keys/content_hash/status/reason", "all", f"read failure ({short(e)})"))


def _dataset_names(f: h5py.File, res: VerifyResult) -> list[str]:
    names: list[str] = []
    try:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    except Exception as e:
        res.failures.append(("metadata", "-", f"object headers unreadable ({short(e)})"))
        from sf.cache.writer import NUMERIC, STRINGS

        names = [n for n in (*STRINGS, *NUMERIC) if n in f]
    return names


def _slot_rows(f: h5py.File) -> np.ndarray | None:
    """Grid row -> store row (-1 for an unused one) of a sparse store, so damage is reported by store row."""
    if S.IMAGE_GRID_SLOT not in f:
        return None
    slot = f[S.IMAGE_GRID_SLOT][()]
    rows = np.full(f[S.IMAGE_GRID].shape[0], -1, dtype=np.int64)
    used = slot >= 0
    rows[slot[used]] = np.flatnonzero(used)
    return rows


def _read_chunks(ds: h5py.Dataset, res: VerifyResult, slot_rows: np.ndarray | None = None) -> None:
    if ds.shape[0] == 0:  # an interrupted or empty shard's store: nothing to read (iter_chunks would raise)
        return
    for sel in ds.iter_chunks():
        rows = f"{sel[0].start}..{sel[0].stop - 1}" if sel and isinstance(sel[0], slice) else "?"
        if slot_rows is not None and rows != "?":
            hit = slot_rows[sel[0]]
            hit = hit[hit >= 0]
            rows = _row_list(hit) if len(hit) else f"none (unused grid rows {rows})"
        try:
            block = ds[sel]
        except Exception as e:
            res.failures.append((ds.name.lstrip("/"), rows, f"checksum/read failure ({short(e)})"))
            continue
        res.chunks += 1
        res.bytes += block.nbytes
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            res.failures.append((ds.name.lstrip("/"), rows, "non-finite values (inf/nan)"))


def _row_list(rows: np.ndarray) -> str:
    if rows.max() - rows.min() + 1 == len(rows):
        return f"{rows.min()}..{rows.max()}"
    return ", ".join(map(str, rows[:5])) + (f" (+{len(rows) - 5} more)" if len(rows) > 5 else "")


def _read_whole(ds: h5py.Dataset, res: VerifyResult) -> None:
    try:
        ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
        res.chunks += 1
    except Exception as e:
        res.failures.append((ds.name.lstrip("/"), "all", f"read failure ({short(e)})"))
