"""`sf demo`'s held-out comparison over several catalogue seeds: does sf beat every baseline far outside noise?

For each demo seed, runs `sf demo --seed S --no-ablation --no-compare` (the held-out scoring is the same as in
the full demo) into a temporary folder and reads `evaluate_heldout/metrics.json`: sf's pooled WAPE on the held-out
new products (mean over its training seeds, and that mean's std over them) beside the training mean curve and the
baselines fitted on the same training products. Prints, per model, the mean ± std over demo seeds, and sf's margin
over the best reference of each seed (goal: >= 10 WAPE points on every seed).

    python bench/demo_heldout.py                        # demo seeds 0..4
    python bench/demo_heldout.py --seeds 0,1 --json runs/bench/demo_heldout.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import run_sf_demo, write_json  # noqa: E402

GOAL_POINTS = 10.0


def run_seed(seed: int, out: Path, extra: list[str]) -> dict:
    run_sf_demo(out, seed, extra)
    m = json.loads((out / "evaluate_heldout" / "metrics.json").read_text())
    refs = {"mean curve": m["mean_curve"]["WAPE"], **{k: v["WAPE"] for k, v in m["baselines"].items()}}
    return {"seed": seed, "products": m["products"], "sf": m["mean"]["WAPE"], "sf_seed_std": m["std"]["WAPE"],
            "sf_ensemble": m["ensemble"]["WAPE"], **refs, "margin": min(refs.values()) - m["mean"]["WAPE"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="demo (catalogue) seeds, comma-separated")
    ap.add_argument("--json", type=Path, help="Also write the per-seed results here")
    ap.add_argument("--products", type=int, help="Catalogue size (sf demo --products; default the demo's)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            rows.append(run_seed(s, Path(tmp) / f"demo_{s}", ["--products", str(args.products)] if args.products else []))
    models = [k for k in rows[0] if k not in ("seed", "products", "sf_seed_std", "margin")]
    table = Table(title=f"sf demo held-out pooled WAPE over {len(rows)} demo seed(s) "
                        f"({rows[0]['products']} new products each)")
    table.add_column("model")
    table.add_column("mean ± std over demo seeds", justify="right")
    table.add_column("per seed", justify="right")
    for k in [*models, "margin"]:
        v = np.array([r[k] for r in rows])
        table.add_row(k if k != "margin" else f"sf's margin over the best reference (goal >= {GOAL_POINTS:g})",
                      f"{v.mean():.1f} ± {v.std():.1f}", " ".join(f"{x:.1f}" for x in v))
    sd = [r["sf_seed_std"] for r in rows]
    table.caption = f"sf's std over its own training seeds, per demo seed: {' '.join(f'{x:.1f}' for x in sd)}"
    Console().print(table)
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
