"""The tuning log's experiments: named variants of sf (and its peers) on one split, seeds mean ± std.

    nice -n 10 python bench/tuning.py --variants default,paper,l1_scaled --seeds 5 \
        --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle

Loads the store once, carves the time split (the one `sf train` uses), trains every variant on train with
early stopping on validation, and prints validation WAPE (where choices are made) with test beside it, per
seed mean ± std and the seed ensemble (mean forecast). Each result is appended as one JSON line to --log,
so docs/tuning-log.md can be rebuilt from it. Variants are named below (VARIANTS): change, not copy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sf.cache.reader import load_features  # noqa: E402
from sf.data.contract import load_dataset  # noqa: E402
from sf.forecast import engine  # noqa: E402
from sf.forecast.config import TrainConfig  # noqa: E402
from sf.forecast.metrics import compute_metrics, point_forecast  # noqa: E402
from bench._common import overrides  # noqa: E402

# name -> TrainConfig overrides (model, loss, target, hparams, ...): what each tuning-log row changed.
VARIANTS: dict[str, dict] = {
    "paper": {"target": "scaled", "loss": "mse", "hidden": 30},
    "default": {},
    "refit": {"refit": True},
    "mse_log": {"target": "log", "loss": "mse"},
    "l1_scaled": {"target": "scaled", "loss": "l1"},
    "l1_log": {"target": "log", "loss": "l1"},
    "pop": {"popularity": True},
    "l1_pop": {"target": "scaled", "loss": "l1", "popularity": True},
    "l1_log_pop": {"target": "log", "loss": "l1", "popularity": True},
    "ema": {"ema": 0.995},
    "l1_ema": {"target": "scaled", "loss": "l1", "ema": 0.995},
    "l1_pop_ema": {"target": "scaled", "loss": "l1", "popularity": True, "ema": 0.995},
    "gtm": {"model": "gtm"},
    "gtm_l1_scaled": {"model": "gtm", "target": "scaled", "loss": "l1"},
    "ekambaram": {"model": "ekambaram"},
    "ekambaram_l1_scaled": {"model": "ekambaram", "target": "scaled", "loss": "l1"},
}


# The held-back test is scored over the first 6 weeks too (GTM's horizon): the same pooled WAPE on those weeks.
FIRST_WEEKS = 6


def first_weeks_wape(part, forecast: np.ndarray, hit_threshold: float, quantiles) -> float:
    """Pooled WAPE of `forecast` over `part`'s first FIRST_WEEKS weeks (sf's metrics on those weeks' cells)."""
    w = FIRST_WEEKS
    return compute_metrics(part.y[:, :w], forecast[:, :w], part.y_mask[:, :w], hit_threshold, quantiles)["WAPE"]


def nested_split(prepared, gap: bool = False) -> dict[str, list[str]]:
    """The time split repeated inside the training products: train -> (train, val), and val becomes test.

    With `gap`, the inner split is 70 / 20 / 10 and its last 10% are left out, so the real validation products
    are forecast as the season after a gap (tuning-log row 76's "next season")."""
    from sf.forecast.splits import make_split

    train = prepared.parts["train"]
    inner = make_split(train, "time", fractions=(0.7, 0.2, 0.1) if gap else (0.78, 0.22, 0.0))
    ids = np.asarray(train.product_ids, dtype=object)
    return {"train": list(ids[inner["train"]]), "val": list(ids[inner["val"]]),
            "test": list(prepared.parts["val"].product_ids)}


def main(experiment: dict | None = None) -> None:
    """`experiment`: what a bench/experiments script patched into sf for this process before calling main; written
    into every JSON line, since such a change is no config override."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--variants", default="default")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--log", type=Path, default=ROOT / "bench" / "results" / "tuning.jsonl")
    ap.add_argument("--nested", action="store_true",
                    help="carve validation out of the training products by time and report the real validation "
                    "products as 'test': how choices about the final fit itself (e.g. refit) are made honestly")
    ap.add_argument("--gap", action="store_true",
                    help="with --nested: leave the inner split's latest 10%% out (70 / 20 / 10), so 'test' is the "
                    "season after a gap, as a retailer forecasts the next season (tuning-log row 76)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra override for every variant (TOML value; hparams.X for a model argument)")
    args = ap.parse_args()

    t = time.perf_counter()
    base = TrainConfig(seeds=args.seeds, threads=1, refit=False, features=args.features, data=args.data)
    inputs, attrs = engine.load_inputs(base, load_features(args.features), load_dataset(args.data))
    # Prepared with the refit's parts too, so a variant may set refit = true.
    prepared = engine.prepare(replace(base, refit=True), inputs=inputs, store_attrs=attrs, label=args.data.name)
    if args.nested:
        prepared = engine.prepare(replace(base, refit=True), inputs=inputs, store_attrs=attrs, label=args.data.name,
                                  split=nested_split(prepared, args.gap))
    parts = prepared.parts
    print(f"loaded + split in {time.perf_counter() - t:.0f} s: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    for name in args.variants.split(","):
        over = {**VARIANTS[name], **overrides(args.set)}
        cfg = replace(base, **over)
        t = time.perf_counter()
        seeds = [engine.train_seed(cfg, prepared, seed) for seed in cfg.seed_list]
        epochs = [r.best_epoch for r in seeds]
        row = {"variant": name, "overrides": over, "data": args.data.name, "split_id": prepared.split_id,
               "nested": args.nested, "gap": args.gap,
               "seeds": cfg.seed_list, "best_epoch": epochs, "seconds": time.perf_counter() - t}
        if experiment:
            row["experiment"] = experiment
        if any(r.fitted.choice for r in seeds):  # the validated choice each seed made (engine.train_seed)
            row["choice"] = [r.fitted.choice for r in seeds]
        for split in ("val", "test"):
            p = parts[split]
            wape = [r.metrics[split]["WAPE"] for r in seeds]
            ensemble = np.mean([r.forecasts[split] for r in seeds], axis=0)
            q = seeds[0].quantiles or None
            ens = compute_metrics(p.y, ensemble, p.y_mask, prepared.hit_threshold, q)["WAPE"]
            point = point_forecast(ensemble, q or ())
            bias = float((point * p.y_mask).sum() / max((p.y * p.y_mask).sum(), 1e-9))
            first = [first_weeks_wape(p, r.forecasts[split], prepared.hit_threshold, q) for r in seeds]
            row[split] = {"mean": float(np.mean(wape)), "std": float(np.std(wape, ddof=1)) if len(wape) > 1 else 0.0,
                          "per_seed": wape, "ensemble": ens, "bias": bias,
                          f"wape{FIRST_WEEKS}": {"mean": float(np.mean(first)), "per_seed": first,
                                                 "ensemble": first_weeks_wape(p, ensemble, prepared.hit_threshold, q)}}
        weeks = {s: row[s][f"wape{FIRST_WEEKS}"] for s in ("val", "test")}
        print(f"{name:28s} val {row['val']['mean']:5.1f} ± {row['val']['std']:.1f} (ens {row['val']['ensemble']:.1f})  "
              f"test {row['test']['mean']:5.1f} ± {row['test']['std']:.1f} (ens {row['test']['ensemble']:.1f})  "
              f"@{FIRST_WEEKS} weeks val {weeks['val']['mean']:.1f} test {weeks['test']['mean']:.1f} "
              f"(ens {weeks['val']['ensemble']:.1f} / {weeks['test']['ensemble']:.1f})  "
              f"forecast/actual val {row['val']['bias']:.2f} test {row['test']['bias']:.2f}  "
              f"epochs {epochs}  {row['seconds']:.0f} s", flush=True)
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with args.log.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
