"""`sf cache verify`: read every chunk of a store, so disk corruption shows up before training does.

Numeric datasets carry fletcher32 checksums per chunk (HDF5 refuses to return a chunk whose
checksum fails). Variable-length strings cannot be filtered in HDF5, so their content is checked
against the `strings_sha256` attribute written with the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

from sf.cache import schema as S
from sf.cache.writer import STRINGS, strings_sha256
from sf.errors import SfError

VALID_STATUS = {S.STATUS_OK, S.STATUS_NO_IMAGE, S.STATUS_UNREADABLE}


@dataclass
class VerifyResult:
    path: Path
    chunks: int = 0
    bytes: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (dataset, rows, problem)

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_store(path: str | Path) -> VerifyResult:
    path = Path(path)
    if not path.exists():
        raise SfError(f"{path}: feature store not found")
    res = VerifyResult(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SfError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        attrs = {k: S._plain(v) for k, v in f.attrs.items()}
        n = f[S.KEYS].shape[0] if S.KEYS in f else None
        if n is None:
            res.failures.append((S.KEYS, "-", "dataset missing: not a feature store"))
            return res
        datasets: list[h5py.Dataset] = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for ds in datasets:
            if ds.shape[:1] != (n,):
                res.failures.append((ds.name, "-", f"has {ds.shape[0] if ds.shape else 0} rows, keys has {n}"))
            if ds.dtype.kind in "OSU" or ds.chunks is None:
                _read_whole(ds, res)
            else:
                _read_chunks(ds, res)
        _check_strings(f, attrs, res)
        stored = attrs.get("fingerprint")
        if stored is not None and stored != S.fingerprint(attrs):
            res.failures.append(("attrs", "-", "fingerprint attribute does not match the extractor attributes"))
    return res


def _read_chunks(ds: h5py.Dataset, res: VerifyResult) -> None:
    for sel in ds.iter_chunks():
        rows = f"{sel[0].start}..{sel[0].stop - 1}" if sel and isinstance(sel[0], slice) else "?"
        try:
            block = ds[sel]
        except OSError as e:
            res.failures.append((ds.name, rows, f"checksum/read failure ({str(e).splitlines()[0][:120]})"))
            continue
        res.chunks += 1
        res.bytes += block.nbytes
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            res.failures.append((ds.name, rows, "non-finite values (inf/nan)"))


def _read_whole(ds: h5py.Dataset, res: VerifyResult) -> None:
    try:
        ds[()]
        res.chunks += 1
    except (OSError, UnicodeDecodeError) as e:
        res.failures.append((ds.name, "all", f"read failure ({str(e).splitlines()[0][:120]})"))


def _check_strings(f: h5py.File, attrs: dict, res: VerifyResult) -> None:
    try:
        if S.STATUS in f:
            bad = set(f[S.STATUS].asstr()[()]) - VALID_STATUS
            if bad:
                res.failures.append((S.STATUS, "-", f"unknown status value(s): {', '.join(sorted(bad))}"))
        if attrs.get("strings_sha256") and all(n in f for n in STRINGS):
            if strings_sha256(f) != attrs["strings_sha256"]:
                res.failures.append(("keys/content_hash/status/reason", "-", "content differs from strings_sha256 (corrupted)"))
    except (OSError, UnicodeDecodeError) as e:
        res.failures.append(("strings", "-", f"read failure ({str(e).splitlines()[0][:120]})"))


def print_result(res: VerifyResult, console: Console) -> None:
    if res.ok:
        console.print(f"[green]ok[/]: {res.path} — {res.chunks} chunks, {res.bytes / 2**20:.1f} MiB read, all checksums match")
        return
    t = Table(title=f"{res.path}: {len(res.failures)} problem(s)", header_style="bold red")
    for col in ("dataset", "rows", "problem"):
        t.add_column(col)
    for row in res.failures:
        t.add_row(*row)
    console.print(t)
