"""Byte-flip fuzzing of a feature store (run as a script by test_store_fuzz.py, so a hang is a timeout).

    python tests/store_fuzz.py STORE TRIALS SEED

Each trial copies STORE, XORs 1-4 random bytes in one region (header: the first 2 KiB; chunks: the
bytes of numeric and string chunks; metadata: everything else: object headers, B-trees, heaps,
attributes; outside chunks only non-zero bytes, i.e. not free space), then
  - `verify_store` must return (never raise) and answer in one line;
  - `load_features` (what `sf train` reads) must either refuse with SfError or return exactly the
    pristine store's rows: a damaged row must never reach training.
Prints one JSON line per trial and a summary line.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from sf.cache.reader import load_features
from sf.cache.verify import verify_store
from sf.errors import SfError

FIELDS = ("keys", "status", "reason", "content_hash", "image_pooled", "image_grid", "text_tokens", "text_mask",
          "text_pooled")
HEADER_BYTES = 2048


def regions(path: Path) -> dict[str, np.ndarray]:
    """Byte offsets of the file by kind: header, chunks (stored chunk bytes), metadata (the rest)."""
    size = path.stat().st_size
    in_chunk = np.zeros(size, bool)
    with h5py.File(path, "r") as f:
        def visit(_name, obj):
            if isinstance(obj, h5py.Dataset) and obj.chunks is not None:
                for i in range(obj.id.get_num_chunks()):
                    info = obj.id.get_chunk_info(i)
                    in_chunk[info.byte_offset:info.byte_offset + info.size] = True
        f.visititems(visit)
    idx = np.arange(size)
    header = idx < HEADER_BYTES
    # Outside chunks, zero bytes are mostly unused space; aim the flips at the structures themselves.
    used = np.frombuffer(path.read_bytes(), np.uint8) != 0
    return {"header": idx[header & ~in_chunk & used], "chunks": idx[in_chunk],
            "metadata": idx[~header & ~in_chunk & used]}


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and (a.tobytes() == b.tobytes() if a.dtype.kind in "fiub" else list(a) == list(b))


def trial(pristine: bytes, where: np.ndarray, rng: np.random.Generator, work: Path, clean) -> dict:
    data = bytearray(pristine)
    k = int(rng.integers(1, 5))
    at = int(rng.choice(where))
    offsets = sorted({min(at + int(d), len(data) - 1) for d in rng.integers(0, 16, k)})
    xors = [int(rng.integers(1, 256)) for _ in offsets]
    for o, x in zip(offsets, xors):
        data[o] ^= x
    work.write_bytes(bytes(data))
    print(json.dumps({"start": list(zip(offsets, xors))}), flush=True)  # names the flip if the process dies
    t0 = time.perf_counter()
    out = {"flips": list(zip(offsets, xors))}
    try:
        res = verify_store(work)
        line = res.summary()
        out["verify"] = "ok" if res.ok else ("incomplete" if not res.failures else "damaged")
        out["one_line"] = "\n" not in line
    except BaseException as e:  # any exception here is a finding
        out["verify"] = f"RAISED {type(e).__name__}: {str(e)[:200]}"
        out["one_line"] = False
    try:
        feats = load_features(work)
        out["load"] = "same" if all(same(getattr(feats, n), getattr(clean, n)) for n in FIELDS) else "DIFFERENT"
    except SfError as e:
        out["load"] = "refused"
        out["load_one_line"] = "\n" not in str(e)
    except BaseException as e:
        out["load"] = f"RAISED {type(e).__name__}: {str(e)[:200]}"
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def main(store: str, trials: int, seed: int) -> None:
    store = Path(store)
    clean = load_features(store)
    pristine = store.read_bytes()
    kinds = regions(store)
    rng = np.random.default_rng(seed)
    tmp = Path(tempfile.mkdtemp(prefix="sf-fuzz-"))
    counts: dict[str, int] = {}
    try:
        for i in range(trials):
            kind = ("header", "metadata", "chunks")[i % 3]
            r = trial(pristine, kinds[kind], rng, tmp / "x.h5", clean)
            r.update(trial=i, region=kind)
            key = f"{kind}:{r['verify']}/{r['load']}"
            counts[key] = counts.get(key, 0) + 1
            print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"summary": counts}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
