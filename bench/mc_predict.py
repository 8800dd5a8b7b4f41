"""What sf's MC-dropout forecast costs against one pass, and that it keeps its promises on this device.

sf reads its forecast as the mean of `mc_passes` passes with dropout on, each product's draws seeded by the fit's
seed and the product's id (sf.forecast.fit._mc_dropout; the passes of several products per forward call since
2026-12-01, sf.keyed_noise). This fits sf for a few epochs on a synthetic catalogue (the tests' generator) or on
a real store's time split (--features, --data), then times `predict` on every product with 0 and 20 passes, and
checks that the MC forecast is reproducible and that a product's forecast is the same when it is predicted
alone or among the others.

    python bench/mc_predict.py --products 2000 --device cpu
    python bench/mc_predict.py --products 5000 --device cuda --json runs/bench/mc_predict.json
    python bench/mc_predict.py --features cache/visuelle_efficientnet_lite0.h5 --data data/visuelle
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from _common import write_json  # noqa: E402
from sf.cache.reader import load_features  # noqa: E402
from sf.data.contract import load_dataset  # noqa: E402
from sf.forecast.config import TrainConfig  # noqa: E402
from sf.forecast.fit import fit, predict  # noqa: E402
from sf.forecast.inputs import build_inputs  # noqa: E402
from sf.forecast.splits import make_split  # noqa: E402
from tests.fakes import make_dataset  # noqa: E402


def timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--features", type=Path, help="a real store (with --data): time its validation products")
    ap.add_argument("--data", type=Path)
    a = ap.parse_args(argv)

    if a.features:
        inp = build_inputs(load_dataset(a.data), load_features(a.features))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            root, store = make_dataset(Path(tmp) / "d", n=a.products, horizon=12, c=64, d=32)
            inp = build_inputs(load_dataset(root), load_features(store))
    split = make_split(inp, "time")
    tr, va = inp.take(split["train"]), inp.take(split["val"])
    inp = va if a.features else inp  # a real store: the products sf train would score (validation)
    cfg = TrainConfig(epochs=2, patience=2, device=a.device, threads=1)
    fitted = fit("sf", tr, va, replace(cfg, hparams={"mc_passes": a.passes}), seed=0)

    fitted.model.mc_passes = 0
    predict(fitted, inp.take(np.arange(min(64, len(inp)))))  # warm-up (cuDNN, allocator)
    one, s_one = timed(lambda: predict(fitted, inp))
    fitted.model.mc_passes = a.passes
    mc, s_mc = timed(lambda: predict(fitted, inp))
    again = predict(fitted, inp)
    rows = np.random.default_rng(0).choice(len(inp), size=min(50, len(inp)), replace=False)
    alone = predict(fitted, inp.take(rows))
    result = {
        "device": str(next(fitted.model.parameters()).device),
        "gpu": torch.cuda.get_device_name() if a.device == "cuda" else "",
        "products": len(inp), "passes": a.passes,
        "one_pass_s": round(s_one, 3), "mc_s": round(s_mc, 3), "mc_ms_per_product": round(1000 * s_mc / len(inp), 3),
        "ratio": round(s_mc / s_one, 1),
        "reproducible": bool(np.array_equal(mc, again)),
        "independent_of_other_rows": bool(np.allclose(alone, mc[rows], rtol=1e-5, atol=1e-5)),
        "mean_abs_change_vs_one_pass": float(np.abs(mc - one).mean() / max(np.abs(one).mean(), 1e-9)),
    }
    table = Table(title=f"sf's MC-dropout forecast ({result['gpu'] or result['device']})", show_header=False)
    for k, v in result.items():
        table.add_row(k, str(v))
    Console().print(table)
    write_json(a.json, result)


if __name__ == "__main__":
    main()
