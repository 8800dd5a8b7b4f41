"""Where stage 1's time goes: the extract pipeline cut after each stage, on the same images and device.

    read      the DataLoader workers alone (on the device path: file bytes; with Pillow: decoded pixels)
    inline    + the device decode and letterbox in the main process (nvJPEG; device path only)
    decode    + the same decode as the job runs it (on CUDA one batch ahead on a thread, sf.extract.prefetch)
    forward   + the backbone forward passes and their device-to-host copies (sf's ImageQueue), no store
    run       the whole `sf extract` job into a temporary store (writer thread, parts, finalize)
    bare      the backbone alone on tensors already on the device (bench/extract.py's reference)

Each is timed from the first call, and again from the first batch out ("steady"), so the fixed start-up
(spawning workers, opening the store) is told apart from the rate a big catalogue sees.

    python bench/stages.py --backbone resnet101 --weights random -n 32768 --batch-size 256 --device cuda
    python bench/stages.py --backbone resnet18 -n 64 --batch-size 16 --device cpu     # the plumbing, on CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.extract import job  # noqa: E402
from sf.extract import sources as I  # noqa: E402
from _common import write_json  # noqa: E402
from extract import bare_forward, bench_images  # noqa: E402


def _sync(ext: job.Extractor) -> None:
    if ext.device.type == "cuda":
        torch.cuda.synchronize(ext.device)


def timed(batches, ext: job.Extractor, n: int) -> dict:
    """Drain an iterator of batches; seconds in all and the rate after its first batch."""
    t0 = time.perf_counter()
    first_at, first_rows = None, 0
    for rows in batches:
        if first_at is None:
            _sync(ext)
            first_at, first_rows = time.perf_counter(), rows
    _sync(ext)
    end = time.perf_counter()
    steady = (n - first_rows) / max(end - first_at, 1e-9) if first_at is not None and n > first_rows else float("nan")
    return {"seconds": round(end - t0, 3), "img_s": round(n / (end - t0), 1), "first_batch_s": round(first_at - t0, 3),
            "steady_img_s": round(steady, 1)}


def same_batches(ext: job.Extractor, sources: list, workers: int, batches: int = 8) -> bool:
    """The first batches decoded inline and ahead on the thread (its own CUDA stream) hold the same pixels."""
    n = min(len(sources), batches * ext.cfg.batch_size)
    pairs = zip(job.decoded_batches(ext, sources[:n], workers, ahead=False), job.decoded_batches(ext, sources[:n], workers, ahead=True))
    return all(a["ok"] == b["ok"] and (a["images"] is None and b["images"] is None or torch.equal(a["images"], b["images"]))
               for a, b in pairs)


def stages(ext: job.Extractor, rows: I.Sources, cfg: job.ExtractConfig, workdir: Path) -> dict:
    items, n = rows.items, len(rows.items)
    sources = [it.image for it in items]
    workers = job._workers(cfg, ext.device, n)
    out = {"workers": workers}
    out["read"] = timed((len(b["idx"]) for b in job.decode_loader(ext, sources, workers)), ext, n)
    if ext.decoder == "torchvision":
        out["inline"] = timed((len(b["idx"]) for b in job.decoded_batches(ext, sources, workers, ahead=False)), ext, n)
        out["ahead_identical"] = same_batches(ext, sources, workers)
    out["decode"] = timed((len(b["idx"]) for b in job.decoded_batches(ext, sources, workers)), ext, n)
    hashes, index = [""] * n, list(range(n))
    queue = job.ImageQueue(ext)
    out["forward"] = timed((sum(len(b) for b in blocks)
                            for blocks in job.featurize(ext, items, hashes, index, sources, workers, queue)), ext, n)
    store = workdir / "stages.h5"
    t = time.perf_counter()
    report = job.run(rows, store, cfg, Console(stderr=True, quiet=True), extractor=ext)
    out["run"] = {"seconds": round(time.perf_counter() - t, 3), "img_s": round(report.rows_per_s, 1)}
    store.unlink()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet101")
    ap.add_argument("--weights", default="random")
    ap.add_argument("-n", "--images-count", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--images", type=Path, default=None, help="image folder (default: VISUELLE's if present, else generated)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--decoder", default="auto")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--pooled-only", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, rows = bench_images(a.images, a.images_count, tmp)
        cfg = job.ExtractConfig(backbone=a.backbone, weights=a.weights, text_encoder="none", batch_size=a.batch_size,
                                device=a.device, precision=a.precision, workers=a.workers, pooled_only=a.pooled_only,
                                decoder=a.decoder, checkpoint_seconds=30.0)
        ext = job.build_extractor(cfg, with_text=False)
        bare = bare_forward(ext, a.images_count, a.batch_size)
        result = {"backbone": a.backbone, "device": str(ext.device), "precision": ext.precision, "decoder": ext.decoder,
                  "gpu": torch.cuda.get_device_name(ext.device) if ext.device.type == "cuda" else "",
                  "batch_size": a.batch_size, "pooled_only": a.pooled_only, "images": len(rows.items),
                  "folder": str(folder), "bare_img_s": round(bare, 1), **stages(ext, rows, cfg, tmp)}

    table = Table(title=f"stage 1, cut after each stage ({result['backbone']} {result['precision']}, {result['decoder']}, "
                        f"{result['workers']} workers, {result['gpu'] or result['device']})")
    for col in ("stage", "seconds", "img/s", "first batch s", "steady img/s", "x bare"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name in ("read", "inline", "decode", "forward", "run"):
        if name not in result:
            continue
        r = result[name]
        table.add_row(name, f"{r['seconds']:.2f}", f"{r['img_s']:.0f}", f"{r.get('first_batch_s', float('nan')):.2f}",
                      f"{r.get('steady_img_s', float('nan')):.0f}", f"{r['img_s'] / bare:.2f}")
    table.add_row("bare", "", f"{bare:.0f}", "", "", "1.00")
    Console().print(table)
    if "ahead_identical" in result:
        print(f"decoded ahead on a thread == inline: {result['ahead_identical']}")
    write_json(a.json, result)


if __name__ == "__main__":
    main()
