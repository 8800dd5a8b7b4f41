"""Small stand-ins for the stages' outputs, so stage-2 tests need no backbone run.

`write_store` writes a schema-conforming feature store directly with h5py; `make_dataset` writes a
contract-conforming dataset folder whose sales depend on the fake features (so a model can learn).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import polars as pl

from sf.cache import schema as S
from sf.cache.content import content_hashes
from sf.cache.grid import from_dense


def write_store(path: Path, keys: list[str], image: np.ndarray, text: np.ndarray, has_image=None,
                backbone: str = "fake", grid: int = 4, text_len: int = 5, precision: str = "fp32",
                content_hashes: list[str] | None = None, schema: int = S.SCHEMA_VERSION) -> Path:
    """image: (N, C) latent per product; text: (N, D). The grid/tokens are noisy copies of them.
    `precision`: what the store says it was extracted in (not part of the fingerprint).
    `content_hashes`: what each row was "made from" (default: the key, which matches no dataset).
    `schema`: 1 writes the old dense grid layout (a grid row per store row)."""
    rng = np.random.default_rng(0)
    n, c = image.shape
    d = text.shape[1]
    has_image = np.ones(n, bool) if has_image is None else np.asarray(has_image)
    grid_arr = image[:, None, :] + 0.1 * rng.standard_normal((n, grid, c))
    grid_arr[~has_image] = 0
    tokens = text[:, None, :] + 0.1 * rng.standard_normal((n, text_len, d))
    mask = np.ones((n, text_len), np.uint8)
    mask[:, text_len - 1] = 0
    tokens[mask == 0] = 0
    attrs = {
        "schema_version": schema, "backbone": backbone, "weights": "random", "weights_sha256": "0",
        "preprocessing": json.dumps({"image": {"image_size": 8}}), "text_encoder": "fake", "text_encoder_sha256": "0",
        "grid_h": 1, "grid_w": grid, "channels": c, "text_dim": d, "text_len": text_len,
        "pooled_only": False, "complete": True, "random_weights": True,
    }
    attrs["fingerprint"] = S.fingerprint(attrs)
    attrs |= {"precision": precision, "device": "cpu"}
    with h5py.File(path, "w") as f:
        str_dt = h5py.string_dtype()
        f.create_dataset(S.KEYS, data=np.array(keys, dtype=object), dtype=str_dt)
        f.create_dataset(S.CONTENT_HASH, data=np.array(content_hashes or keys, dtype=object), dtype=str_dt)
        f.create_dataset(S.STATUS, data=np.array(["ok" if h else "no_image" for h in has_image], dtype=object), dtype=str_dt)
        f.create_dataset(S.REASON, data=np.array([""] * n, dtype=object), dtype=str_dt)
        f.create_dataset(S.IMAGE_POOLED, data=(grid_arr.mean(1)).astype(np.float16))
        if schema >= 2:
            sparse = from_dense(grid_arr.astype(np.float16), has_image)
            f.create_dataset(S.IMAGE_GRID, data=sparse.data)
            f.create_dataset(S.IMAGE_GRID_SLOT, data=sparse.slot)
        else:
            f.create_dataset(S.IMAGE_GRID, data=grid_arr.astype(np.float16))
        f.create_dataset(S.TEXT_TOKENS, data=tokens.astype(np.float16))
        f.create_dataset(S.TEXT_MASK, data=mask)
        f.create_dataset(S.TEXT_POOLED, data=text.astype(np.float16))
        f.attrs.update(attrs)
    return path


def dataset_hashes(ds) -> list[str]:
    """The content hash `sf extract` would store for each product of a loaded Dataset, in product order."""
    images = Path(ds.root) / "images"
    rows = ds.products.select("image", "text").iter_rows()
    return content_hashes([((images / img) if img else None, text or "") for img, text in rows])


def refresh_hashes(root: Path, store: Path) -> None:
    """After a test changes a dataset's files: record what the store's rows are now "made from"."""
    from sf.data.contract import load_dataset

    with h5py.File(store, "r+") as f:
        f[S.CONTENT_HASH][...] = np.array(dataset_hashes(load_dataset(root)), dtype=object)


def make_dataset(root: Path, n: int = 120, horizon: int = 8, seed: int = 0, c: int = 16, d: int = 12):
    """A dataset folder plus a store at root/'store.h5' whose features drive sales. Returns (root, store)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    keys = [f"p{i:04d}" for i in range(n)]
    image = rng.standard_normal((n, c)).astype(np.float32)
    text = rng.standard_normal((n, d)).astype(np.float32)
    level = np.exp(1.0 + 0.6 * image[:, 0] + 0.6 * text[:, 0])
    shape = np.exp(-np.arange(horizon) / 4.0)
    units = level[:, None] * shape[None, :] * 10 * rng.uniform(0.8, 1.2, (n, horizon))
    release = np.datetime64("2020-01-06") + 7 * rng.integers(0, 100, n)
    cat = rng.choice(["a", "b", "c"], n)
    pl.DataFrame({
        "product_id": keys, "image": [f"{k}.png" for k in keys], "text": [f"item {k}" for k in keys],
        "release_date": [str(r) for r in release], "category": cat,
    }).write_csv(root / "products.csv")
    pl.DataFrame({
        "product_id": np.repeat(keys, horizon), "step": np.tile(np.arange(horizon), n),
        "units": units.reshape(-1).round(3),
    }).write_csv(root / "sales.csv")
    dates = np.datetime64("2018-12-31") + 7 * np.arange(220)
    pl.DataFrame({"date": [str(x) for x in dates], "a": rng.uniform(0, 100, 220), "b": rng.uniform(0, 100, 220),
                  "c": rng.uniform(0, 100, 220)}).write_csv(root / "exog.csv")
    (root / "dataset.toml").write_text('name = "fake"\nperiod = "week"\nexog_link = ["category"]\nexog_lookback = 8\n')
    # The rows' content hashes are those of this dataset's (absent) image files and texts, as `sf extract` would store.
    hashes = content_hashes([(root / "images" / f"{k}.png", f"item {k}") for k in keys])
    store = write_store(root / "store.h5", keys, image, text, content_hashes=hashes)
    return root, store
