"""Same seeds, same numbers: `sf train`, `sf ablate` and `sf compare` here against a reference commit.

    python bench/same_numbers.py                      # against 6e82782, the last commit before the one engine
    python bench/same_numbers.py --base <commit> --products 60 --seeds 2 --epochs 5

Exports the reference commit with `git archive` into a temporary folder, makes one small demo catalogue and two
random-weight stores (resnet18 and resnet34, hash text encoder) with the reference code, runs the three
commands with each code base on them (CPU, one worker), and compares every per-seed metrics block (validation
and test, every row) for exact equality. Prints each block that differs, the count, and both wall times.
Exit code 1 when any block differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sf(code: Path, *args) -> None:
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run([sys.executable, "-m", "sf", *map(str, args)], env=env, check=True, cwd=code,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_all(code: Path, data: Path, out: Path, seeds: int, epochs: int) -> float:
    t0 = time.perf_counter()
    common = ["--seeds", seeds, "--epochs", epochs, "--device", "cpu"]
    sf(code, "train", "--features", data / "r18.h5", "--data", data / "demo", *common, "--out", out / "train")
    sf(code, "ablate", "--features", data / "r18.h5", "--features-alt", data / "r34.h5", "--backbone", "resnet34",
       "--data", data / "demo", *common, "--workers", 1, "--no-extras", "--out", out / "ablate")
    sf(code, "compare", "--features", data / "r18.h5", "--data", data / "demo", *common, "--workers", 1,
       "--out", out / "compare")
    return time.perf_counter() - t0


def blocks(out: Path) -> dict[str, list]:
    """Every per-seed metrics block of the three commands' outputs, by a readable key."""
    found = {}
    m = json.loads((out / "train" / "metrics.json").read_text())
    for s in ("val", "test"):
        if s in m:
            found[f"train {s} per seed"] = m[s]["per_seed"]
            found[f"train {s} ensemble"] = m[s]["ensemble"]
    for r in json.loads((out / "ablate" / "ablation.json").read_text())["rows"]:
        found.update({f"ablate {r['row']} {s}": r[s]["per_seed"] for s in ("val", "test") if s in r})
    for label, table in json.loads((out / "compare" / "compare.json").read_text())["tables"].items():
        for r in table:
            found.update({f"compare {label} {r['row']} {s}": r[s]["per_seed"] for s in ("val", "test") if s in r})
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="6e82782")
    ap.add_argument("--products", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", a.base], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        data = tmp / "data"
        sf(base, "demo-data", data / "demo", "--products", a.products, "--seed", 0)
        for net in ("resnet18", "resnet34"):
            sf(base, "extract", "--data", data / "demo", "--backbone", net, "--weights", "random", "--text-encoder",
               "hash", "--device", "cpu", "--out", data / f"r{net[6:]}.h5")
        t_base = run_all(base, data, tmp / "out_base", a.seeds, a.epochs)
        t_here = run_all(ROOT, data, tmp / "out_here", a.seeds, a.epochs)
        ref, new = blocks(tmp / "out_base"), blocks(tmp / "out_here")
    differ = [k for k in sorted(set(ref) | set(new)) if json.dumps(ref.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True)]
    for k in differ:
        print(f"differs: {k}")
    print(f"{len(ref)} per-seed metric blocks from {a.base}, {len(new)} here; {len(differ)} differ "
          f"({a.products} products, {a.seeds} seeds, {a.epochs} epochs)")
    print(f"wall time: {a.base} {t_base:.1f} s, here {t_here:.1f} s (ratio {t_here / t_base:.2f})")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
