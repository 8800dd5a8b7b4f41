"""Damaged stores: whatever HDF5 raises for a corrupt file becomes one `error:` line, and every reader
checks a store's layout and string checksum before trusting a row.

Numeric chunks carry fletcher32 checksums (HDF5 refuses a chunk that fails). What they do not cover is
checked here: the string datasets (keys, content hashes, status) against the `strings_sha256` attribute,
the fingerprint attribute against the extractor attributes, and every dataset's shape against the
attributes, before anything is read (a corrupt dimension must not make a reader allocate or loop over
rows that do not exist).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.errors import SfError

VALID_STATUS = {S.STATUS_OK, S.STATUS_NO_IMAGE, S.STATUS_UNREADABLE}
# Datasets added to the schema later: stores written before them lack them and stay readable.
OPTIONAL = {S.INPUT_INDEX, S.IMAGE_DECODER}
# Every row has a key, stored as a 16-byte reference in a chunk that exists on disk.
MIN_BYTES_PER_ROW = 16


def hint(path: str | Path) -> str:
    return f"run `sf cache verify {path}` for details; delete it and rerun the `sf extract` that made it"


def short(e: BaseException) -> str:
    text = str(e).splitlines()[0].strip() if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


@contextlib.contextmanager
def reading(path: str | Path):
    """Turn any error HDF5 raises while reading `path` into one SfError naming the store."""
    try:
        yield
    except SfError:
        raise
    except Exception as e:  # h5py raises OSError, RuntimeError, KeyError, ValueError, ... for damaged files
        raise SfError(f"{path}: damaged feature store ({short(e)}); {hint(path)}") from None


def layout_problems(f: h5py.File, attrs: dict, file_size: int) -> list[tuple[str, str]]:
    """(dataset, problem) for every dataset missing or shaped unlike the attributes say; nothing is read."""
    from sf.cache.writer import STRINGS, row_shapes

    n = f[S.KEYS].shape[0] if S.KEYS in f and f[S.KEYS].shape else None
    if n is None:
        return [(S.KEYS, "missing or not a row dataset")]
    if n * MIN_BYTES_PER_ROW > file_size:
        return [(S.KEYS, f"claims {n:,} rows, more than a {file_size:,}-byte file can hold")]
    try:
        expected = {name: ((), "str") for name in STRINGS} | row_shapes(attrs)
    except (KeyError, TypeError, ValueError) as e:
        return [("metadata", f"attributes do not describe the datasets ({short(e)})")]
    problems = []
    for name, (shape, dtype) in expected.items():
        if name not in f:
            if name not in OPTIONAL:
                problems.append((name, "missing"))
            continue
        ds = f[name]
        rows = n
        if name == S.IMAGE_GRID and S.sparse_grid(attrs) and isinstance(ds, h5py.Dataset) and ds.shape:
            rows = ds.shape[0]  # one row per grid slot; the slots are checked below
            if rows * MIN_BYTES_PER_ROW > file_size:
                problems.append((name, f"claims {rows:,} rows, more than a {file_size:,}-byte file can hold"))
                continue
        if not isinstance(ds, h5py.Dataset) or ds.shape != (rows, *shape):
            problems.append((name, f"shape {getattr(ds, 'shape', 'a group')}, expected {(rows, *shape)}"))
        elif not _type_ok(ds, dtype):
            problems.append((name, "stored data type is not the one sf writes (damaged type description)"))
        else:
            problems += [(name, p) for p in _chunk_problems(ds, rows, file_size)]
    if not problems and S.sparse_grid(attrs):
        problems += _slot_problems(f, n)
    return problems


def _slot_problems(f: h5py.File, n: int) -> list[tuple[str, str]]:
    """Every ok row points at its own grid row, every other row at none (-1)."""
    slot = f[S.IMAGE_GRID_SLOT][()]
    m = f[S.IMAGE_GRID].shape[0]
    ok = f[S.STATUS].asstr()[()] == S.STATUS_OK if n else np.zeros(0, bool)
    used = slot[slot >= 0]
    if (slot < -1).any() or (used >= m).any():
        return [(S.IMAGE_GRID_SLOT, f"slots outside the {m:,} grid rows")]
    if len(np.unique(used)) != len(used):
        return [(S.IMAGE_GRID_SLOT, "two rows share one grid row")]
    if ((slot >= 0) != ok).any():
        row = int(np.flatnonzero((slot >= 0) != ok)[0])
        return [(S.IMAGE_GRID_SLOT, f"row {row} has {'a grid but no image' if slot[row] >= 0 else 'an image but no grid'}")]
    return []


_FILE_TYPES = {"f2": h5py.h5t.IEEE_F16LE, "u1": h5py.h5t.STD_U8LE, "i8": h5py.h5t.STD_I64LE}


def _type_ok(ds: h5py.Dataset, dtype: str) -> bool:
    """Compare the type as stored in the file (not as converted for numpy): a flipped bit in a float's
    exponent layout would otherwise decode every value wrongly and still pass the chunk checksums."""
    tid = ds.id.get_type()
    if dtype == "str":
        return tid.get_class() == h5py.h5t.STRING and tid.is_variable_str()
    return tid.equal(_FILE_TYPES[dtype])


def _chunk_problems(ds: h5py.Dataset, n: int, file_size: int) -> list[str]:
    """Every row's chunk must exist (a lost chunk reads back as zeros, checksum or not) and lie inside the file."""
    if ds.chunks is None or n == 0:
        return []
    rows = ds.chunks[0]
    expected = -(-n // rows)
    count = ds.id.get_num_chunks()
    if count != expected:
        return [f"{count} stored chunks, {expected} expected (rows without data)"]
    raw = int(np.prod(ds.chunks, dtype=np.int64)) * ds.dtype.itemsize
    for i in range(count):
        info = ds.id.get_chunk_info(i)
        if info.byte_offset is None or info.byte_offset + info.size > file_size or info.size > 2 * raw + 4096:
            return [f"chunk {i} lies outside the file or has an impossible size"]
    return []


def string_problems(f: h5py.File, attrs: dict) -> list[tuple[str, str]]:
    """Checks of what fletcher32 cannot cover: string content, status values, the fingerprint attribute."""
    from sf.cache.writer import strings_sha256

    problems = []
    bad = {str(s) for s in f[S.STATUS].asstr()[()]} - VALID_STATUS
    if bad:
        problems.append((S.STATUS, f"unknown status value(s): {', '.join(sorted(bad))[:120]}"))
    stored = attrs.get("strings_sha256")
    if stored and strings_sha256(f) != stored:
        problems.append(("keys/content_hash/status/reason", "content differs from strings_sha256 (corrupted)"))
    fp = attrs.get("fingerprint")
    if fp is not None and fp != S.fingerprint(attrs):
        problems.append(("metadata", "fingerprint attribute does not match the extractor attributes"))
    return problems


def refuse_damage(path: str | Path, problems: list[tuple[str, str]]) -> None:
    if problems:
        name, problem = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SfError(f"{path}: damaged feature store ({name}: {problem}{more}); {hint(path)}")


def probe(path: str | Path) -> tuple[dict, list[tuple[str, str]]]:
    """(attributes, problems) of a store, parsed in a forked child (sf.cache.isolated) and memoised by
    file identity: the first read of a damaged store cannot crash or exhaust the caller."""
    from sf.cache.isolated import Crashed, run_isolated

    path = Path(path)
    st = path.stat()
    ident = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if ident not in _probed:
        try:
            _probed[ident] = run_isolated(_probe, path, extra_bytes=2 * st.st_size)
        except Crashed as e:
            raise SfError(f"{path}: damaged feature store ({e}); {hint(path)}") from None
    return _probed[ident]


_probed: dict[tuple, tuple[dict, list]] = {}


def _probe(path: Path) -> tuple[dict, list[tuple[str, str]]]:
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # OSError for non-HDF5 files; others for damaged superblocks
        raise SfError(f"{path}: not a readable HDF5 feature store ({short(e)})") from None
    with reading(path), f:
        attrs = {k: S._plain(v) for k, v in f.attrs.items()}
        if not (S.KEYS in f and S.STATUS in f and "schema_version" in attrs):
            raise SfError(f"{path}: an HDF5 file but not an sf feature store (no {S.KEYS}/{S.STATUS} datasets "
                          "or schema_version)")
        problems = layout_problems(f, attrs, path.stat().st_size)
        if not problems:
            problems = string_problems(f, attrs)
    return attrs, problems
