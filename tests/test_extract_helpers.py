"""Shared helpers for the stage-1 tests: tiny images, tiny datasets, a tiny extractor, store comparison.

(No tests here; imported by test_extract_*.py, test_cache_*.py and test_backbones.py.)
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from PIL import Image

from sf.cache import schema as S
from sf.extract.job import ExtractConfig

TINY = dict(backbone="resnet18", weights="random", image_size=32, text_encoder="hash", batch_size=4, workers=0,
            device="cpu", precision="fp32")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**kw) -> ExtractConfig:
    return ExtractConfig(**{**TINY, **kw})


def random_image(seed: int, w: int = 40, h: int = 30) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def make_images(folder: Path, n: int, seed: int = 0, ext: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img{i:03d}.{ext}"
        random_image(seed * 1000 + i).save(p)
        paths.append(p)
    return paths


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (a decompression-bomb look-alike, a few bytes long)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def make_dataset(root: Path, n: int = 12, seed: int = 0, no_image: tuple[int, ...] = (), missing: tuple[int, ...] = (),
                 empty_text: tuple[int, ...] = ()) -> Path:
    """A data-contract folder: products.csv (product_id, image, text), sales.csv, images/."""
    make_images(root / "images", n, seed)
    words = ["red", "blue", "cotton", "linen", "dress", "shirt", "long", "short", "sleeve", "skirt"]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        image = "" if i in no_image else (f"gone{i}.png" if i in missing else f"img{i:03d}.png")
        text = "" if i in empty_text else " ".join(rng.choice(words, 4))
        rows.append({"product_id": f"p{i:03d}", "image": image, "text": text, "release_date": "2020-01-06"})
    pl.DataFrame(rows).write_csv(root / "products.csv")
    pl.DataFrame({"product_id": [r["product_id"] for r in rows for _ in range(3)],
                  "step": [s for _ in rows for s in range(3)], "units": [1.0] * (3 * n)}).write_csv(root / "sales.csv")
    return root


def store_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a store (strings decoded), for exact comparisons; image/grid one row per store row
    (zeros without an image) whatever the layout, since which grid slot a row got is no feature."""
    from sf.cache.writer import dense_grid

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name != S.IMAGE_GRID_SLOT:
                out[name] = obj.asstr()[()] if obj.dtype.kind == "O" else obj[()]
        f.visititems(visit)
        if S.IMAGE_GRID in f:
            out[S.IMAGE_GRID] = dense_grid(f)
    return out


def assert_same_store(a: Path, b: Path) -> None:
    x, y = store_arrays(a), store_arrays(b)
    assert sorted(x) == sorted(y)
    for name in x:
        assert x[name].shape == y[name].shape, name
        assert x[name].dtype == y[name].dtype, name
        if x[name].dtype.kind in "fiu":
            assert x[name].tobytes() == y[name].tobytes(), f"{name} differs"
        else:
            assert list(x[name]) == list(y[name]), f"{name} differs"
