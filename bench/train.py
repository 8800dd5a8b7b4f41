"""Benchmark: one training epoch from the feature cache vs the same epoch with the frozen backbone in the loop.

The in-loop variant does what GTM-Transformer's training code does each batch: open and decode the
images, resize and normalise them, run the frozen CNN, then the trainable part. The cached variant reads
the same products' features from memory (sf's stage 2). Same products, same model (sf: biattn + BiLSTM, the
fusion its figures were measured with), same batch size, same device. The backbone has random weights (speed does not depend on the values).

    python bench/train.py                       # 64 products, resnet101, CPU
    python bench/train.py --products 128 --backbone resnet18 --images ../shared/data/visuelle/images

Prints both epoch times and their ratio (the goal is >= 50x), plus the one-time extraction cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sf.forecast.models import Dims, create_model  # noqa: E402
from sf.forecast.batching import TensorInputs  # noqa: E402
from sf.forecast.inputs import CALENDAR_FEATURES, Inputs  # noqa: E402
from sf.forecast.losses import Objective  # noqa: E402
from _common import VISUELLE_IMAGES  # noqa: E402

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def image_files(folder: Path | None, n: int, tmp: Path) -> list[Path]:
    """n image files: from `folder` (cycled if it has fewer), else generated 256x256 JPEGs."""
    if folder is not None and folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        if files:
            return [files[i % len(files)] for i in range(n)]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = tmp / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(p, quality=90)
        out.append(p)
    return out


def decode(paths: list[Path], size: int) -> torch.Tensor:
    """Open, convert, resize, normalise: the per-batch image work of an in-loop pipeline."""
    arrays = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            arrays.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0))
    x = torch.stack(arrays).permute(0, 3, 1, 2)
    return (x - MEAN[:, None, None]) / STD[:, None, None]


def trunk(name: str, device) -> torch.nn.Module:
    net = getattr(torchvision.models, name)(weights=None)
    return torch.nn.Sequential(*list(net.children())[:-2]).eval().to(device)


@torch.no_grad()
def features(backbone, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    g = backbone(x)  # (B, C, h, w)
    grid = g.flatten(2).transpose(1, 2)  # (B, R, C)
    grid = grid / grid.abs().amax().clamp(min=1.0)  # random weights blow activations past float16's range
    return grid, grid.mean(1)


def synthetic_inputs(grid: np.ndarray, horizon: int = 12, text_len: int = 16, text_dim: int = 384,
                     exog_terms: int = 3, lookback: int = 52) -> Inputs:
    n = grid.shape[0]
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((n, text_len, text_dim)).astype(np.float16)
    return Inputs(
        product_ids=[str(i) for i in range(n)], horizon=horizon, image_grid=grid.astype(np.float16),
        image_pooled=grid.mean(1).astype(np.float16), has_image=np.ones(n, bool), text_tokens=tokens,
        text_mask=np.ones((n, text_len), bool), text_pooled=tokens.mean(1), has_text=np.ones(n, bool),
        exog=rng.uniform(size=(n, lookback + horizon, exog_terms)).astype(np.float32), exog_names=["a", "b", "c"],
        calendar=rng.uniform(size=(n, horizon, len(CALENDAR_FEATURES))).astype(np.float32),
        attributes=rng.integers(1, 4, (n, 2)), attribute_names=["x", "y"], attribute_vocab={"x": list("abc"), "y": list("abc")},
        release=np.full(n, np.datetime64("2020-01-01"), dtype="datetime64[D]"),
        y=rng.uniform(0, 50, (n, horizon)).astype(np.float32), y_mask=np.ones((n, horizon), bool), split=None)


def epoch(model, opt, data: TensorInputs, batch_size: int, paths=None, backbone=None, size=224, device="cpu") -> float:
    """One pass over the products; with `backbone`, the features are recomputed from the image files."""
    objective = Objective()
    model.train()
    t0 = time.perf_counter()
    for idx in torch.arange(data.n).split(batch_size):
        b = data.batch(idx)
        if backbone is not None:
            grid, pooled = features(backbone, decode([paths[i] for i in idx.tolist()], size).to(device))
            b["image_grid"], b["image_pooled"] = grid, pooled
        loss = objective.loss_sum(model(b), b["y"], b["y_mask"]) / b["y_mask"].sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--products", type=int, default=64)
    ap.add_argument("--backbone", default="resnet101", help="torchvision resnet18|resnet50|resnet101 (random weights)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--images", type=Path, default=VISUELLE_IMAGES, help="folder of images (default: VISUELLE's, "
                    "else generated)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads for the backbone (0: torch's default)")
    ap.add_argument("--cache-threads", type=int, default=1, help="threads for the cached epoch (sf train's default: 1)")
    ap.add_argument("--repeats", type=int, default=3, help="cached epochs to time (the median is reported)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        paths = image_files(args.images, args.products, Path(tmp))
        backbone = trunk(args.backbone, device)
        t0 = time.perf_counter()
        grids = [features(backbone, decode(paths[i:i + args.batch_size], args.image_size).to(device))[0].cpu()
                 for i in range(0, len(paths), args.batch_size)]
        extract_s = time.perf_counter() - t0
        inp = synthetic_inputs(torch.cat(grids).numpy())
        dims = Dims.from_inputs(inp)
        model = create_model("sf", dims, fusion="biattn").to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        data = TensorInputs(inp, y_scale=25.0, device=device, reads=None)

        backbone_threads = torch.get_num_threads()
        torch.set_num_threads(args.cache_threads)
        epoch(model, opt, data, args.batch_size, device=device)  # warm-up
        cached = float(np.median([epoch(model, opt, data, args.batch_size, device=device) for _ in range(args.repeats)]))
        torch.set_num_threads(backbone_threads)
        in_loop = epoch(model, opt, data, args.batch_size, paths, backbone, args.image_size, device)

    src = "VISUELLE images" if args.images and args.images.is_dir() else "generated 256px JPEGs"
    print(f"products {args.products} ({src}), backbone {args.backbone} (random weights), grid {dims.regions}x"
          f"{dims.image_channels}, batch {args.batch_size}, device {device}, torch threads: cache {args.cache_threads}, "
          f"backbone {torch.get_num_threads()}")
    print(f"one-time extraction of these products:        {extract_s:8.3f} s")
    print(f"epoch from the cache (sf train):              {cached:8.3f} s  (median of {args.repeats})")
    print(f"epoch with decode + frozen backbone in loop:  {in_loop:8.3f} s")
    print(f"ratio: {in_loop / cached:.0f}x faster from the cache (goal >= 50x)")


if __name__ == "__main__":
    main()
