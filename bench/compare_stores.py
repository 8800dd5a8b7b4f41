"""How far apart are two feature stores of the same images (CPU vs GPU, fp32 vs bf16, sharded vs whole)?

Prints, over the keys both stores hold with an image, whether the pooled vectors are bit-identical, the
largest absolute difference and the cosine similarity (min and median) of pooled vectors and region grids.

    python bench/compare_stores.py cache/a_cpu.h5 cache/a_gpu.h5 --json runs/bench/stores.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.cache.reader import load_features  # noqa: E402
from _common import print_pairs, write_json  # noqa: E402


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def compare(path_a: Path, path_b: Path) -> dict:
    a, b = load_features(path_a), load_features(path_b)
    keys = sorted(set(np.array(a.keys)[a.has_image]) & set(np.array(b.keys)[b.has_image]))
    if not keys:
        raise SystemExit(f"{path_a} and {path_b} share no keys with an image")
    ia, ib = a.rows(keys), b.rows(keys)
    pa, pb = a.image_pooled[ia], b.image_pooled[ib]
    out = {
        "a": str(path_a), "b": str(path_b), "keys": len(keys),
        "a_precision": a.attrs.get("precision"), "b_precision": b.attrs.get("precision"),
        "a_device": a.attrs.get("device"), "b_device": b.attrs.get("device"),
        "pooled_bit_identical": bool(np.array_equal(pa, pb)),
        "pooled_max_abs_diff": float(np.abs(pa.astype(np.float32) - pb.astype(np.float32)).max()),
        "pooled_cosine_min": float(cosine(pa, pb).min()),
        "pooled_cosine_median": float(np.median(cosine(pa, pb))),
    }
    if a.image_grid is not None and b.image_grid is not None:
        c = cosine(a.image_grid[ia], b.image_grid[ib])
        out |= {"grid_cosine_min": float(c.min()), "grid_cosine_median": float(np.median(c))}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    result = compare(args.a, args.b)
    print_pairs(result, 22)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
