"""Benchmark stage 1: whole pipeline (decode -> forward -> store write) vs the bare backbone forward.

Both on the same device, batch size and precision; the goal is a ratio >= 0.9 (the pipeline keeps
the model busy). Prints a table and writes JSON with --json.

    python bench/extract.py --backbone resnet101 --weights random -n 256 --batch-size 32
    python bench/extract.py --backbone efficientnet_lite0 --images ../shared/data/visuelle/images
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.extract import sources as I  # noqa: E402
from sf.extract import job  # noqa: E402
from sf.extract.runtime import autocast  # noqa: E402
from _common import VISUELLE_IMAGES, write_json  # noqa: E402



def generated_images(folder: Path, n: int, side: int = 256, seed: int = 0) -> Path:
    """n JPEGs of coloured shapes on white, like product cut-outs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        img = np.full((side, side, 3), 255, np.uint8)
        cx, cy, r = rng.integers(side // 4, 3 * side // 4, 2).tolist() + [int(rng.integers(side // 8, side // 3))]
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def bench_images(images: Path | None, n: int, tmp: Path) -> tuple[Path, I.Sources]:
    """The folder measured (`images`, else VISUELLE's photos if present, else generated ones) and n rows of it,
    the folder repeated when it has fewer images than asked for (keys made unique)."""
    folder = images or (VISUELLE_IMAGES if VISUELLE_IMAGES.is_dir() else generated_images(tmp / "images", min(n, 512)))
    listing = I.from_images_dir(folder).items
    reps = -(-n // len(listing))
    items = [I.Item(f"{r}/{it.key}", it.image) for r in range(reps) for it in listing][:n]
    return folder, I.Sources(name="bench", items=items, has_text=False)


def bare_forward(ext: job.Extractor, n: int, batch: int) -> float:
    """img/s of the trunk alone on normalised channels_last tensors already on the device."""
    s = ext.image.prep.image_size
    x = torch.randn(batch, 3, s, s, device=ext.device).contiguous(memory_format=torch.channels_last)
    trunk = ext.featurizer.trunk

    def step():
        with torch.inference_mode(), autocast(ext.device, ext.precision):
            trunk(x)
        if ext.device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (cudnn autotune, oneDNN primitive cache)
    steps = max(1, n // batch)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def pipeline(ext: job.Extractor, rows: I.Sources, cfg: job.ExtractConfig, workdir: Path) -> float:
    out = workdir / f"bench_{time.time_ns()}.h5"
    report = job.run(rows, out, cfg, Console(stderr=True, quiet=True), extractor=ext)
    out.unlink()
    return report.rows_per_s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet101")
    ap.add_argument("--weights", default="random", help="imagenet, random or a state-dict file")
    ap.add_argument("-n", "--images-count", type=int, default=256, help="images per measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--images", type=Path, default=None, help="image folder (default: VISUELLE's if present, else generated)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--pooled-only", action="store_true", help="store pooled vectors only (no 7x7 grid to write)")
    ap.add_argument("--decoder", default="auto", help="auto (nvJPEG on CUDA, Pillow on CPU), pillow or torchvision")
    ap.add_argument("--repeats", type=int, default=1, help="alternate bare/pipeline this many times; medians reported")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, rows = bench_images(a.images, a.images_count, tmp)
        cfg = job.ExtractConfig(
            backbone=a.backbone, weights=a.weights, text_encoder="none", batch_size=a.batch_size, device=a.device,
            precision=a.precision, workers=a.workers, image_size=a.image_size, checkpoint_seconds=30.0,
            pooled_only=a.pooled_only, decoder=a.decoder,
        )
        ext = job.build_extractor(cfg, with_text=False)
        bare, pipe = [], []
        for _ in range(a.repeats):
            bare.append(bare_forward(ext, a.images_count, a.batch_size))
            pipe.append(pipeline(ext, rows, cfg, tmp))
        b, p = statistics.median(bare), statistics.median(pipe)
        result = {
            "backbone": a.backbone, "weights": ext.image.weights, "device": str(ext.device), "precision": ext.precision,
            "batch_size": a.batch_size, "pooled_only": a.pooled_only, "decoder": ext.decoder,
            "gpu": torch.cuda.get_device_name(ext.device) if ext.device.type == "cuda" else "", "images": len(rows.items), "image_size": ext.image.prep.image_size,
            "workers": job._workers(cfg, ext.device, len(rows.items)), "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "folder": str(folder), "bare_forward_img_s": round(b, 2),
            "pipeline_img_s": round(p, 2), "ratio": round(p / b, 3), "bare_runs": bare, "pipeline_runs": pipe,
        }
    t = Table(title="sf extract benchmark", show_header=False)
    for k in ("backbone", "weights", "device", "gpu", "precision", "decoder", "batch_size", "pooled_only", "image_size", "images", "workers",
              "torch_threads", "bare_forward_img_s", "pipeline_img_s", "ratio"):
        t.add_row(k, str(result[k]))
    console.print(t)
    write_json(a.json, result)


if __name__ == "__main__":
    main()
