"""Stage 1 scaling: the local engine (1 and 2 decoding workers) vs the Ray engine (1 and 2 actors) on the same
images, end to end (plan -> decode -> forward -> parts -> store), and what a million images cost in time and bytes.

    python bench/scaling.py --backbone resnet18 --weights random -n 256 --json runs/bench/scaling.json

The Ray instance is started once (its start-up is reported apart); each Ray run includes its actors' start-up.
Cost per million images = 1e6 / img/s of the run, and the store's bytes per row (grid and pooled-only).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.cache.writer import row_shapes  # noqa: E402
from sf.extract import sources as I  # noqa: E402
from sf.extract import job  # noqa: E402
from _common import VISUELLE_IMAGES, write_json  # noqa: E402



def store_bytes_per_row(attrs: dict) -> int:
    import numpy as np

    return sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize for shape, dt in row_shapes(attrs).values())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=VISUELLE_IMAGES)
    ap.add_argument("-n", type=int, default=256)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--engines", default="local:1,local:2,ray:1,ray:2", help="engine:workers list")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    rows = I.from_images_dir(a.images)
    rows = I.Sources(name="scaling", items=rows.items[: a.n], has_text=False)
    base = dict(backbone=a.backbone, weights=a.weights, text_encoder="none", batch_size=a.batch_size, device="cpu",
                image_size=a.image_size)
    results, ray_start = [], None
    console = Console(stderr=True, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in a.engines.split(","):
            engine, k = spec.split(":")
            k = int(k)
            if engine == "ray" and ray_start is None:
                import ray

                t = time.perf_counter()
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="warning")
                ray_start = time.perf_counter() - t
            cfg = job.ExtractConfig(**base, engine=engine, **({"workers": k} if engine == "local" else {"concurrency": k}))
            out = Path(tmp) / f"{engine}{k}.h5"
            t = time.perf_counter()
            report = job.run(rows, out, cfg, console)
            wall = time.perf_counter() - t
            rate = len(rows.items) / wall
            results.append({"engine": engine, "workers": k, "images": len(rows.items), "seconds": round(wall, 2),
                            "img_s": round(rate, 2), "hours_per_million": round(1e6 / rate / 3600, 2),
                            "store_bytes": out.stat().st_size, "torch_threads": torch.get_num_threads()})
            attrs = report.attrs
    grid_row = store_bytes_per_row({**attrs, "pooled_only": False})
    pooled_row = store_bytes_per_row({**attrs, "pooled_only": True})
    summary = {
        "backbone": a.backbone, "image_size": attrs["image_size"], "cpus": os.cpu_count(), "ray_start_s": ray_start,
        "runs": results, "bytes_per_row_grid": grid_row, "bytes_per_row_pooled_only": pooled_row,
        "gb_per_million_grid": round(grid_row * 1e6 / 1e9, 1), "gb_per_million_pooled_only": round(pooled_row * 1e6 / 1e9, 2),
    }
    t = Table(title=f"stage 1 scaling: {a.backbone} {attrs['image_size']}px, {len(rows.items)} images, {os.cpu_count()} CPUs")
    for col in ("engine", "workers", "seconds", "img/s", "x local:1", "hours per 1M images"):
        t.add_column(col)
    ref = results[0]["img_s"]
    for r in results:
        t.add_row(r["engine"], str(r["workers"]), f"{r['seconds']:.1f}", f"{r['img_s']:.1f}", f"{r['img_s'] / ref:.2f}",
                  f"{r['hours_per_million']:.1f}")
    Console().print(t)
    Console().print(f"store per 1M images: {summary['gb_per_million_grid']} GB with grids, "
                    f"{summary['gb_per_million_pooled_only']} GB pooled-only (C={attrs['channels']}, float16)"
                    + (f"; Ray start-up {ray_start:.1f} s (once per cluster)" if ray_start else ""))
    write_json(a.json, summary)


if __name__ == "__main__":
    main()
