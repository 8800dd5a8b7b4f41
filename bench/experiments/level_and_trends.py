"""Tuning-log round 12: a loss term on each product's level, dropout on the trends' input and on the head's input, the
log target's scale; tried for sf, none kept (rows 93-95, 102).

    LEVEL_AUX=0.5 EXOG_DROP=0.2 nice -n 10 python bench/experiments/level_and_trends.py --variants default \
        --seeds 5 --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle

LEVEL_AUX = w adds w × |mean_t ŷ_t − mean_t y_t| per product (over its scored cells, in the target's units,
weighted by its cell count so it is on the per-cell scale of the loss) to the training and validation loss:
row 86 found the whole error in the products' level, which the per-cell L1 reaches only through the cells.
EXOG_DROP = p zeroes each of the 52 × K pre-release trend values that sf's trends encoder reads with
probability p while dropout is on (training and the MC passes), drawn per product through sf.keyed_noise:
that encoder is one linear map from 156 values, the largest input sf has. Both patch sf in this process
only, then run bench/tuning.py with the remaining arguments.
STATIC_DROP = p zeroes each element of the static vector [F; z; p; a] with probability p (inverted dropout) while
dropout is on, one mask per product shared by every step (variational input dropout, as AWD-LSTM's on its inputs);
sf drops inside the fusion and between the BiLSTM's layers but not the head's input. `--demo` runs
bench/demo_models.py with the remaining arguments instead of bench/tuning.py (the demo trains in this process).
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


def with_static_dropout(rate: float):
    static_vector = sf_model.SFModel.static_vector

    def patched(self, batch):
        return keyed_noise.dropout(static_vector(self, batch), rate, self.training)

    return patched


def apply_patches() -> dict:
    """Patch sf as the environment says; returns what was patched (for the JSON lines)."""
    aux, drop = float(os.environ.get("LEVEL_AUX", 0)), float(os.environ.get("EXOG_DROP", 0))
    static, c = float(os.environ.get("STATIC_DROP", 0)), float(os.environ.get("TARGET_C", 1))
    if aux:
        losses.Objective.loss_sum = with_level_term(aux)
    if static:
        sf_model.SFModel.static_vector = with_static_dropout(static)
    if drop:
        sf_model.SFModel.forward = with_exog_dropout(drop)
    if c != 1:
        scale = fit.target_scale
        fit.target_scale = lambda inp: c * scale(inp)
    return {"script": "level_and_trends.py", "LEVEL_AUX": aux, "EXOG_DROP": drop, "STATIC_DROP": static, "TARGET_C": c}


def main() -> None:
    patched = apply_patches()
    print(" ".join(f"{k}={v}" for k, v in patched.items() if k != "script"), flush=True)
    if "--demo" in sys.argv:
        sys.argv.remove("--demo")
        import demo_models

        demo_models.main()
        return
    import tuning

    tuning.main(experiment=patched)


if __name__ == "__main__":
    main()
