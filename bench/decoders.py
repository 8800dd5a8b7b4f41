"""Device decoding (torchvision decode_jpeg: nvJPEG on CUDA, libjpeg on CPU) vs Pillow on real images: the
pooled vectors of the same images, same weights, same device, compared by cosine; which decoder made each row.

    python bench/decoders.py --device cuda --json runs/bench/gpu/decoders.json
    python bench/decoders.py --device cpu --backbone efficientnet_lite0 --weights imagenet -n 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.cache import schema as S  # noqa: E402
from sf.cache.reader import load_features  # noqa: E402
from sf.extract import sources as I  # noqa: E402
from sf.extract import job  # noqa: E402
from _common import VISUELLE_IMAGES, write_json  # noqa: E402



def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=VISUELLE_IMAGES)
    ap.add_argument("-n", type=int, default=400, help="first N images of the folder")
    ap.add_argument("--backbone", default="resnet101")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if not a.images.is_dir():
        raise SystemExit(f"error: {a.images}: no image folder (pass --images DIR of real photos)")
    rows = I.from_images_dir(a.images)
    rows = I.Sources(name="decoders", items=rows.items[: a.n], has_text=False)
    cfg = dict(backbone=a.backbone, weights=a.weights, text_encoder="none", batch_size=a.batch_size, device=a.device,
               precision=a.precision, pooled_only=True)
    stores, decoders = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for dec in ("pillow", "torchvision"):
            out = Path(tmp) / f"{dec}.h5"
            report = job.run(rows, out, job.ExtractConfig(**cfg, decoder=dec), Console(stderr=True, quiet=True))
            stores[dec] = load_features(out)
            with h5py.File(out, "r") as f:
                decoders[dec] = dict(Counter(S.DECODERS[c] or "-" for c in f[S.IMAGE_DECODER][()]))
                device = str(f.attrs["device"])
    p, t = stores["pillow"], stores["torchvision"]
    assert p.keys == t.keys and list(p.status) == list(t.status)
    ok = p.has_image
    x, y = p.image_pooled[ok].astype(np.float64), t.image_pooled[ok].astype(np.float64)
    cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12)
    result = {
        "images": int(ok.sum()), "folder": str(a.images), "backbone": a.backbone, "weights": report.attrs["weights"],
        "device": device, "precision": report.attrs["precision"], "decoders": decoders,
        "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "cosine_p01": float(np.quantile(cos, 0.01)),
        "same_status": True,
    }
    tab = Table(title="device decoding vs Pillow (pooled vectors)", show_header=False)
    for k, v in result.items():
        tab.add_row(k, f"{v:.5f}" if isinstance(v, float) else str(v))
    Console().print(tab)
    write_json(a.json, result)


if __name__ == "__main__":
    main()
