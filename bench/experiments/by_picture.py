"""Tuning-log row 96b: sf's validation and test WAPE split by whether the product has a picture.

    python bench/experiments/by_picture.py --features /work/cache/visuelle_efficientnet_lite0.h5 \
        --data /work/cache/data/visuelle --seeds 0,1,2 [--set hparams.fused_dropout=0.2]

Trains sf (its defaults plus the --set overrides) on the time split that `sf train` carves, once per seed, and
prints one JSON object: per split, the pooled WAPE of each seed's forecast over the products with a picture and
over those without, and both groups' sizes and units. Whether a change helps only the products whose fused vector
comes from words alone is what a rule by picture would need.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench._common import overrides  # noqa: E402
from sf.cache.reader import load_features  # noqa: E402
from sf.data.contract import load_dataset  # noqa: E402
from sf.forecast import engine  # noqa: E402
from sf.forecast.config import TrainConfig  # noqa: E402
from sf.forecast.metrics import compute_metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    base = TrainConfig(seeds=1, threads=1, refit=False, features=args.features, data=args.data)
    cfg = replace(base, **overrides(args.set))
    inputs, attrs = engine.load_inputs(cfg, load_features(args.features), load_dataset(args.data))
    prepared = engine.prepare(cfg, inputs=inputs, store_attrs=attrs, label=args.data.name)
    seeds = [int(s) for s in args.seeds.split(",")]
    fits = [engine.train_seed(cfg, prepared, s) for s in seeds]
    out = {"overrides": overrides(args.set), "seeds": seeds}
    for split in ("val", "test"):
        part = prepared.parts[split]
        out[split] = {}
        for name, rows in (("picture", part.has_image), ("no_picture", ~part.has_image)):
            per_seed = [compute_metrics(part.y[rows], f.forecasts[split][rows], part.y_mask[rows],
                                        prepared.hit_threshold)["WAPE"] for f in fits]
            out[split][name] = {"products": int(rows.sum()), "units": float((part.y[rows] * part.y_mask[rows]).sum()),
                                "per_seed": [round(w, 2) for w in per_seed], "mean": round(float(np.mean(per_seed)), 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
