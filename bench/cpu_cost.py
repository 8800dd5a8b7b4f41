"""CPU seconds per image of a whole extraction run (`--workers 0`, one torch thread): what an A/B of two
checkouts on a shared, loaded machine can still compare (wall-clock rates there swing with other load).

    python bench/cpu_cost.py -n 128            # run in each checkout, interleaved, a few times
    python bench/cpu_cost.py -n 128 --pooled-only
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.extract import sources as I  # noqa: E402
from sf.extract import job  # noqa: E402
from _common import VISUELLE_IMAGES  # noqa: E402



def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=VISUELLE_IMAGES)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--pooled-only", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = I.from_images_dir(a.images)
    cfg = job.ExtractConfig(backbone=a.backbone, weights="random", text_encoder="none", batch_size=32, workers=0,
                            device="cpu", precision="fp32", pooled_only=a.pooled_only)
    ext = job.build_extractor(cfg, with_text=False)
    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        warm = I.Sources(name="warm", items=rows.items[:32], has_text=False)
        job.run(warm, Path(tmp) / "warm.h5", cfg, quiet, extractor=ext)  # oneDNN primitives, first-call costs
        todo = I.Sources(name="cost", items=rows.items[: a.n], has_text=False)
        c0, t0 = cpu_seconds(), time.perf_counter()
        job.run(todo, Path(tmp) / "s.h5", cfg, quiet, extractor=ext)
        cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    print(json.dumps({"backbone": a.backbone, "pooled_only": a.pooled_only, "images": len(todo.items),
                      "cpu_s": round(cpu, 2), "cpu_ms_per_img": round(1000 * cpu / len(todo.items), 1),
                      "wall_s": round(wall, 2)}))


if __name__ == "__main__":
    main()
