"""Time `sf backtest` (goal: at least 4 folds of sf's defaults in at most 15 minutes on 2 cores).

    python bench/backtest.py --features /work/stores/visuelle_efficientnet_lite0.h5 --data /work/data/visuelle \
        --folds 4 --seeds 5 [--models sf,gtm,lightgbm,...  (= sf compare --backtest)] [--json bench/results/x.json]

Runs the command in this process and prints its wall time, this process's CPU time (its workers included),
the load average before and after (the machine may be shared), and every fold's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import print_pairs, write_json  # noqa: E402


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--models", default=None, help="comma-separated: run `sf compare --backtest` with these")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from sf.cli import main as sf_main

    out = args.out or f"/tmp/bench_backtest_{os.getpid()}"
    common = ["--features", args.features, "--data", args.data, "--seeds", str(args.seeds), "--workers",
              str(args.workers), "--out", out, "--force"]
    argv = (["compare", "--backtest", str(args.folds), "--models", args.models, *common] if args.models
            else ["backtest", "--folds", str(args.folds), *common])
    load0, cpu0, t0 = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    try:
        sf_main(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    wall, cpu, load1 = time.perf_counter() - t0, cpu_seconds() - cpu0, os.getloadavg()[0]
    payload = json.loads((Path(out) / "backtest.json").read_text())
    result = {"command": "sf " + " ".join(argv), "folds": len(payload["folds"]), "seeds": args.seeds,
              "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "workers": payload["workers"],
              "load_before": round(load0, 2), "load_after": round(load1, 2), "goal": "<= 900 s for >= 4 folds",
              "met": bool(wall <= 900 and len(payload["folds"]) >= 4),
              "mean": {r: payload["summary"][r]["mean"] for r in payload["rows"]},
              "std": {r: payload["summary"][r]["std"] for r in payload["rows"]}, "folds_detail": payload["folds"],
              "scores": payload["scores"]}
    print_pairs({k: v for k, v in result.items() if k not in ("folds_detail", "scores", "mean", "std")})
    write_json(args.json, result)


if __name__ == "__main__":
    main()
