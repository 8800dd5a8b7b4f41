"""Time `sf ablate`: the paper's 8-row x 5-seed grid from the cache, and pool vs. one process.

    python bench/ablate.py --features cache/visuelle_resnet101.h5 --features-alt cache/visuelle_resnet18.h5 \
        --data data/visuelle
    python bench/ablate.py --synthetic --data data/visuelle   # VISUELLE-shaped random stores, for timing only

Prints: store load time; seconds per run for the same few runs in one process (2 torch threads) and in a
pool of one-thread worker processes; then the full grid (8 rows x --seeds) with the faster setting,
its wall time and the goal (10 minutes on a 2-core CPU). Features never change the cost of a run, only
their shapes do, so --synthetic (random features with ResNet-101 / ResNet-18 shapes: 7x7 regions of
2048 / 512 channels, 32 words of 384 dims, images only where the dataset has them) times the same work.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sf.cache import schema as S  # noqa: E402
from sf.cache.grid import from_dense  # noqa: E402
from sf.data.contract import load_dataset  # noqa: E402
from sf.studies import pool as H  # noqa: E402
from sf.studies.ablate import AblateConfig, ablation_table, run_ablation  # noqa: E402
from sf.forecast.config import TrainConfig  # noqa: E402


def synthetic_store(path: Path, data: Path, backbone: str, channels: int, seed: int = 0) -> Path:
    """A store with the shapes `sf extract` writes for `backbone` (random values; for timing only)."""
    ds = load_dataset(data)
    keys = ds.product_ids
    has = np.array([bool(x) for x in ds.products["image"].to_list()])
    rng = np.random.default_rng(seed)
    n, regions, words, dim = len(keys), 49, 32, 384
    grid = np.zeros((n, regions, channels), np.float16)
    grid[has] = np.abs(rng.standard_normal((int(has.sum()), regions, channels))).astype(np.float16)
    mask = np.arange(words)[None, :] < rng.integers(4, 16, n)[:, None]
    tokens = (rng.standard_normal((n, words, dim)) * mask[..., None]).astype(np.float16)
    attrs = {"schema_version": S.SCHEMA_VERSION, "backbone": backbone, "weights": "random", "weights_sha256": "0",
             "preprocessing": json.dumps({"synthetic": True}), "text_encoder": "synthetic", "text_encoder_sha256": "0",
             "grid_h": 7, "grid_w": 7, "channels": channels, "text_dim": dim, "text_len": words, "pooled_only": False,
             "complete": True, "random_weights": True}
    attrs["fingerprint"] = S.fingerprint(attrs)
    with h5py.File(path, "w") as f:
        text = h5py.string_dtype()
        f.create_dataset(S.KEYS, data=np.array(keys, dtype=object), dtype=text)
        f.create_dataset(S.CONTENT_HASH, data=np.array(keys, dtype=object), dtype=text)
        f.create_dataset(S.STATUS, data=np.array(["ok" if h else "no_image" for h in has], dtype=object), dtype=text)
        f.create_dataset(S.REASON, data=np.array([""] * n, dtype=object), dtype=text)
        sparse = from_dense(grid, has)
        f.create_dataset(S.IMAGE_GRID, data=sparse.data)
        f.create_dataset(S.IMAGE_GRID_SLOT, data=sparse.slot)
        f.create_dataset(S.IMAGE_POOLED, data=grid.astype(np.float32).mean(1).astype(np.float16))
        f.create_dataset(S.TEXT_TOKENS, data=tokens)
        f.create_dataset(S.TEXT_MASK, data=mask.astype(np.uint8))
        f.create_dataset(S.TEXT_POOLED, data=tokens.astype(np.float32).sum(1).astype(np.float16))
        f.attrs.update(attrs)
    return path


def pool_vs_one(cfg: AblateConfig, runs: int) -> dict[str, float]:
    """Seconds per run of the same `runs` sf runs: one process with 2 threads vs. a pool of 1-thread workers."""
    out = {}
    small = replace(cfg, extras=False, train=replace(cfg.train, seeds=runs))
    for label, workers, threads in (("one process, 2 threads", 1, 2), (f"pool of {H.default_workers()}, 1 thread each", 0, 1)):
        c = replace(small, workers=workers, train=replace(small.train, threads=threads), features_alt=Path("/nonexistent"))
        t = time.perf_counter()
        res = run_ablation(replace(c, out=Path(tempfile.mkdtemp())), progress=False)
        n = sum(len(s["seeds"]) for s in res.summary if s["group"] != "reference")
        out[label] = (time.perf_counter() - t) / n
        print(f"  {label:32s} {out[label]:6.1f} s per run ({n} runs, {time.perf_counter() - t:.0f} s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--features", type=Path)
    ap.add_argument("--features-alt", type=Path)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--synthetic", action="store_true", help="Write VISUELLE-shaped random stores and time those.")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--probe-runs", type=int, default=2, help="Runs per setting in the pool-vs-one probe (0: skip).")
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="sf_bench_ablate_")))
    args = ap.parse_args()

    if args.synthetic:
        tmp = Path(tempfile.mkdtemp(prefix="sf_bench_stores_"))
        t = time.perf_counter()
        args.features = synthetic_store(tmp / "bench_resnet101.h5", args.data, "resnet101", 2048)
        args.features_alt = synthetic_store(tmp / "bench_resnet18.h5", args.data, args.backbone, 512)
        print(f"synthetic stores written in {time.perf_counter() - t:.0f} s: {args.features}, {args.features_alt}")
    elif args.features is None:
        sys.exit("give --features (and --features-alt), or --synthetic")

    cfg = AblateConfig(features=args.features, data=args.data, backbone=args.backbone, features_alt=args.features_alt,
                       extras=False, out=args.out, train=TrainConfig(seeds=args.seeds),
                       allow_stale_features=args.synthetic)  # random stores match no image or text, by design
    if args.probe_runs:
        print("pool vs. one process (main store, 4 grid rows):")
        pool_vs_one(cfg, args.probe_runs)

    t = time.perf_counter()
    result = run_ablation(cfg)
    wall = time.perf_counter() - t
    from rich.console import Console

    Console(width=160).print(ablation_table(result))
    grid = [s for s in result.summary if s["group"] == "grid"]
    runs = sum(len(s["seeds"]) for s in grid)
    epochs = [e for s in grid for e in s["epochs_run"]]
    print(f"\nablation grid: {len(grid)} rows x {args.seeds} seeds = {runs} runs in {wall:.0f} s wall "
          f"({result.workers} worker(s); {wall / max(runs, 1):.1f} s per run; epochs run per seed: "
          f"median {int(np.median(epochs))}, max {max(epochs)}); goal: <= 600 s on a 2-core CPU -> "
          f"{'met' if wall <= 600 else 'NOT met'}")


if __name__ == "__main__":
    main()
