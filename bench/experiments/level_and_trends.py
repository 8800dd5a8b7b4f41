"""Tuning-log round 12: a loss term on each product's level, and dropout on the trends' input; tried for sf.

    LEVEL_AUX=0.5 EXOG_DROP=0.2 nice -n 10 python bench/experiments/level_and_trends.py --variants default \
        --seeds 5 --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle

LEVEL_AUX = w adds w × |mean_t ŷ_t − mean_t y_t| per product (over its scored cells, in the target's units,
weighted by its cell count so it is on the per-cell scale of the loss) to the training and validation loss:
row 86 found the whole error in the products' level, which the per-cell L1 reaches only through the cells.
EXOG_DROP = p zeroes each of the 52 × K pre-release trend values that sf's trends encoder reads with
probability p while dropout is on (training and the MC passes), drawn per product through sf.keyed_noise:
that encoder is one linear map from 156 values, the largest input sf has. Both patch sf in this process
only, then run bench/tuning.py with the remaining arguments.
TARGET_C = c trains on log(1 + units / (c ū)) instead of log(1 + units / ū) (and the popularity levels with it):
the same per-cell median, but c > 1 weighs the cells more like units (WAPE's own weighting), c < 1 more like
equal relative errors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sf import keyed_noise  # noqa: E402
from sf.forecast import fit, losses  # noqa: E402
from sf.forecast.models import sf_model  # noqa: E402


def with_level_term(weight: float):
    plain = losses.Objective.loss_sum

    def loss_sum(self, raw, y, mask):
        m = mask.to(raw.dtype)
        point = self.outputs(raw)[..., 0]
        cells = m.sum(1)
        gap = ((point - y) * m).sum(1) / cells.clamp(min=1e-12)  # mean_t ŷ_t − mean_t y_t over scored cells
        return plain(self, raw, y, mask) + weight * (gap.abs() * cells).sum()

    return loss_sum


def with_exog_dropout(rate: float):
    forward = sf_model.SFModel.forward

    def patched(self, batch):
        if self.training and rate > 0 and "exog" in batch:
            batch = {**batch, "exog": keyed_noise.dropout(batch["exog"], rate, True)}
        return forward(self, batch)

    return patched


def main() -> None:
    aux, drop = float(os.environ.get("LEVEL_AUX", 0)), float(os.environ.get("EXOG_DROP", 0))
    if aux:
        losses.Objective.loss_sum = with_level_term(aux)
    if drop:
        sf_model.SFModel.forward = with_exog_dropout(drop)
    c = float(os.environ.get("TARGET_C", 1))
    if c != 1:
        scale = fit.target_scale
        fit.target_scale = lambda inp: c * scale(inp)
    print(f"LEVEL_AUX={aux} EXOG_DROP={drop} TARGET_C={c}", flush=True)
    import tuning

    tuning.EXPERIMENT = {"script": "level_and_trends.py", "LEVEL_AUX": aux, "EXOG_DROP": drop, "TARGET_C": c}
    tuning.main()


if __name__ == "__main__":
    main()
