"""sf's main model, or a variant or peer of it, trained on `sf demo`'s catalogues: validation, test and held-out WAPE.

For each demo (catalogue) seed, `sf demo --seed S --no-ablation --no-compare` builds the catalogue, its feature
store and its held-out new products once (kept under --work, reused by later calls); then the model is trained
exactly as the demo trains its main model (its epochs, seeds, patience, batches and quantile loss, training seeds
S, S+1 unless --train-seed) with the --set overrides, and scored on the catalogue's validation and test split and on
the held-out products, beside the best baseline there. Prints mean ± std over the catalogues; the tuning log's
demo table (docs/tuning-log.md, seventh round) was measured this way.

    python bench/demo_models.py --work runs/bench/demo_catalogues                        # sf's defaults
    python bench/demo_models.py --work runs/bench/demo_catalogues --set model='"ekambaram"'
    python bench/demo_models.py --work runs/bench/demo_catalogues --set hparams.skip=true --train-seed 7
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import overrides, run_sf_demo, write_json  # noqa: E402
from sf.apply.evaluate import EvaluateConfig, evaluate_run  # noqa: E402
from sf.demo import HELDOUT_BASELINES, DemoSettings, main_model_config  # noqa: E402
from sf.forecast.engine import train_run  # noqa: E402

COLUMNS = ("val", "test", "held_out", "best_baseline", "margin")


def catalogue(seed: int, work: Path, products: int | None = None) -> Path:
    """The demo's folder for catalogue `seed` (data, store, held-out products), built once."""
    out = work / (f"demo_{seed}" if products is None else f"demo_{seed}_n{products}")
    if not (out / "evaluate_heldout" / "metrics.json").is_file():
        run_sf_demo(out, seed, [] if products is None else ["--products", str(products)])
    return out


def score(demo: Path, seed: int, over: dict) -> dict:
    store = next((demo / "cache").glob("*.h5"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = main_model_config(DemoSettings(seed=seed), store, demo / "data", Path(tmp) / "model")
        run = train_run(replace(cfg, **over), force=True, progress=False, make_plots=False, console=None)
        with contextlib.redirect_stdout(io.StringIO()):
            held = evaluate_run(EvaluateConfig(model=Path(tmp) / "model", data=demo / "heldout",
                                               store=demo / "model" / "features_new.h5", out=Path(tmp) / "evaluate",
                                               baselines=HELDOUT_BASELINES)).metrics
    best = min([held["mean_curve"]["WAPE"]] + [v["WAPE"] for v in held["baselines"].values()])
    return {"val": run.metrics["val"]["mean"]["WAPE"], "test": run.metrics["test"]["mean"]["WAPE"],
            "held_out": held["mean"]["WAPE"], "best_baseline": best, "margin": best - held["mean"]["WAPE"],
            "epochs": [f.best_epoch for f in run.fits], "choice": [(f.choice or {}).get("chosen") for f in run.fits]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="demo (catalogue) seeds, comma-separated")
    ap.add_argument("--work", type=Path, required=True, help="where the catalogues are built once and reused")
    ap.add_argument("--products", type=int, help="catalogue size (default: sf demo's)")
    ap.add_argument("--train-seed", type=int, help="first training seed for every catalogue (default: its own seed)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a TrainConfig override (TOML value; hparams.X for a model argument)")
    ap.add_argument("--json", type=Path, help="Also write the per-catalogue results here")
    args = ap.parse_args()
    over = overrides(args.set)
    rows = []
    for s in (int(x) for x in args.seeds.split(",") if x.strip()):
        demo = catalogue(s, args.work, args.products)
        rows.append({"catalogue": s, **score(demo, s if args.train_seed is None else args.train_seed, over)})
    table = Table(title=f"sf demo catalogues, {over or 'defaults'}: pooled WAPE")
    table.add_column("")
    table.add_column("mean ± std over catalogues", justify="right")
    table.add_column("per catalogue", justify="right")
    for k in COLUMNS:
        v = np.array([r[k] for r in rows])
        table.add_row(k, f"{v.mean():.1f} ± {v.std():.1f}", " ".join(f"{x:.1f}" for x in v))
    Console().print(table)
    write_json(args.json, {"overrides": over, "rows": rows})


if __name__ == "__main__":
    main()
