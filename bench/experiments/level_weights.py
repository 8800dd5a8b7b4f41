"""Tuning-log row 50: each training product's loss weighted by its sales level, tried for sf and not kept.

    ALPHA=0.5 nice -n 10 python bench/experiments/level_weights.py --variants default --seeds 5 \
        --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle

Pooled WAPE weighs a cell by its units; sf's L1 on log(1 + y/ū) weighs every cell alike. This replaces the
per-product loss weights (`sf.forecast.fit.recency_weights`, the hook TOML `recency_half_life` uses) with
(the product's mean weekly units / the training mean) ** ALPHA, mean 1, then runs bench/tuning.py with the
remaining arguments. ALPHA = 0 is sf's loss; 1 is roughly L1 on units. Training products only: a weight is
never needed at prediction time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sf.forecast import fit as F  # noqa: E402


def level_weights(inp, half_life: float, alpha: float) -> torch.Tensor:
    observed = inp.y_mask.sum(1)
    mean_units = np.where(observed > 0, (inp.y * inp.y_mask).sum(1) / np.maximum(observed, 1), 0.0)
    level = mean_units / max(mean_units[observed > 0].mean(), 1e-6)
    w = np.clip(level, 0.05, None) ** alpha  # products that sold nothing keep a small weight
    return torch.as_tensor(w / w.mean(), dtype=torch.float32)


def main() -> None:
    if "ALPHA" not in os.environ:
        sys.exit("set ALPHA (e.g. ALPHA=0.5), then give bench/tuning.py's arguments")
    alpha = float(os.environ["ALPHA"])
    F.recency_weights = lambda inp, half_life: level_weights(inp, half_life, alpha)
    import tuning

    tuning.main(experiment={"script": "level_weights.py", "ALPHA": alpha})


if __name__ == "__main__":
    main()
