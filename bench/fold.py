"""What folding the parts into the store costs next to writing them: N rows of ResNet-101-sized features
(pooled 2048 + 7x7x2048 grid, float16: ~200 KiB a row) written as parts, then `finalize` into a fresh store
(raw chunk copy) — the second write every row gets today.

    python bench/fold.py --rows 2000 --part-rows 256 --json runs/bench/fold.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.cache import schema as S  # noqa: E402
from sf.cache.writer import RowBlock, StoreFiles  # noqa: E402
from _common import print_pairs, write_json  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--part-rows", type=int, default=256)
    ap.add_argument("--channels", type=int, default=2048)
    ap.add_argument("--grid", type=int, default=7)
    ap.add_argument("--pooled-only", action="store_true")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    attrs = {"schema_version": S.SCHEMA_VERSION, "backbone": "bench", "weights": "random", "weights_sha256": "",
             "preprocessing": "{}", "text_encoder": "none", "text_encoder_sha256": "", "channels": a.channels,
             "grid_h": a.grid, "grid_w": a.grid, "pooled_only": a.pooled_only}
    rng = np.random.default_rng(0)
    c, r = a.channels, a.grid * a.grid
    template_grid = None if a.pooled_only else rng.standard_normal((a.part_rows, r, c)).astype(np.float16)
    template_pooled = rng.standard_normal((a.part_rows, c)).astype(np.float16)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        files = StoreFiles(Path(tmp) / "store.h5")
        t = time.perf_counter()
        for k0 in range(0, a.rows, a.part_rows):
            n = min(a.part_rows, a.rows - k0)
            files.write_part(attrs, RowBlock(
                keys=[f"k{k0 + i}" for i in range(n)], content_hash=[""] * n, status=["ok"] * n, reason=[""] * n,
                input_index=np.arange(k0, k0 + n), image_pooled=template_pooled[:n],
                image_grid=None if template_grid is None else template_grid[:n],
                image_decoder=np.ones(n, np.uint8)))
        write_s = time.perf_counter() - t
        part_bytes = sum(p.stat().st_size for p in files.parts())
        t = time.perf_counter()
        files.finalize(attrs, complete=True)
        fold_s = time.perf_counter() - t
        store_bytes = files.out.stat().st_size
    result = {"rows": a.rows, "part_rows": a.part_rows, "bytes": store_bytes, "bytes_per_row": store_bytes // a.rows,
              "write_parts_s": round(write_s, 3), "fold_s": round(fold_s, 3),
              "write_mb_s": round(part_bytes / write_s / 1e6, 1), "fold_mb_s": round(store_bytes / fold_s / 1e6, 1),
              "fold_over_write": round(fold_s / write_s, 3)}
    print_pairs(result, 16)
    write_json(a.json, result)


if __name__ == "__main__":
    main()
