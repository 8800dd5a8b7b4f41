"""Time `sf tune`: a 50-trial study on VISUELLE from the cache, against the goal of 15 minutes on 2 cores.

    nice -n 10 python bench/tune.py --features cache/visuelle_efficientnet_lite0.h5 --data data/visuelle

Runs `sf tune` (sf's search space, 2 seeds per trial, median pruning, --workers processes) in a fresh study
folder with the training budget below, then prints the wall time, trials finished / pruned, seconds per
trial, the best validation WAPE and its settings, and the ratio to the goal. Every figure is measured here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sf.forecast.config import TrainConfig  # noqa: E402
from sf.studies.tune import TuneConfig, run_tune  # noqa: E402

GOAL_S = 15 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", default="sf")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=30, help="Most epochs per fit (early stopping decides).")
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="sf_bench_tune_"))
    cfg = TuneConfig(features=args.features, data=args.data, model=args.model, trials=args.trials, seeds=args.seeds,
                     workers=args.workers, out=out, train=TrainConfig(epochs=args.epochs, patience=args.patience))
    t = time.perf_counter()
    result = run_tune(cfg)
    wall = time.perf_counter() - t
    states = [x["state"] for x in result.trials]
    print(f"sf tune {args.model}: {len(states)} trials ({states.count('COMPLETE')} finished, {states.count('PRUNED')} "
          f"pruned, {states.count('FAIL')} failed) x {args.seeds} seeds, {args.workers} worker(s), epochs <= "
          f"{args.epochs}, patience {args.patience}")
    print(f"wall {wall:.0f} s ({wall / max(len(states), 1):.1f} s per trial); goal <= {GOAL_S} s on 2 cores -> "
          f"ratio {wall / GOAL_S:.2f} ({'met' if wall <= GOAL_S else 'NOT met'})")
    print(f"best validation WAPE {result.best_value:.2f}: " + ", ".join(f"{k}={v}" for k, v in result.best_params.items()))
    print(f"study folder: {out} (best.toml, trials.csv, study.png)")


if __name__ == "__main__":
    main()
