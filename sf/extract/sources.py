"""What to extract: an ordered list of rows (key, image file, description) and the notes made listing it.

Three sources: an image folder (keys = relative path without extension), a products table
(keys = product_id), or a dataset folder that follows the data contract. Row order is the input
order, which is also the store's row order; `--shard I/N` keeps the rows whose key hashes to I.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sf.cache.content import content_hashes as _content_hashes
from sf.data.headers import check_csv_header, check_names, clip, columns_list
from sf.errors import SfError, where
from sf.extract.images import image_extensions


@dataclass(frozen=True)
class Item:
    key: str
    image: Path | None  # None: the product has no image (status no_image)
    text: str = ""


@dataclass
class Sources:
    name: str  # names the default store: cache/<name>_<backbone>.h5
    items: list[Item]
    has_text: bool
    notes: list[str] = field(default_factory=list)  # skipped files, duplicate keys, unreadable folders
    index: list[int] | None = None  # position of each item in the unsharded listing
    listing_sha256: str = ""  # hash of the unsharded key order (shards of one listing share it)

    def __post_init__(self):
        if self.index is None:
            self.index = list(range(len(self.items)))
        if not self.listing_sha256:
            self.listing_sha256 = keys_sha256([it.key for it in self.items])


def keys_sha256(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


# ---------------------------------------------------------------- sources


def from_images_dir(root: str | Path) -> Sources:
    """Every image file under `root` (recursively, sorted), keyed by relative path without extension."""
    root = Path(root)
    if not root.is_dir():
        raise SfError(f"{root}: image folder not found")
    try:
        os.listdir(root)
    except OSError as e:
        raise SfError(f"{root}: cannot read the image folder ({e.strerror or e})") from None
    exts = image_extensions()
    notes: list[str] = []
    files: dict[str, Path] = {}
    skipped = 0

    def onerror(e: OSError) -> None:
        notes.append(f"cannot read folder {e.filename}: {e.strerror or e}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            path = Path(dirpath) / fn
            if path.suffix.lower() not in exts:
                skipped += 1
                continue
            key = path.relative_to(root).with_suffix("").as_posix()
            if key in files:
                notes.append(f"duplicate key {key!r}: kept {files[key].name}, skipped {fn}")
                continue
            files[key] = path
    if skipped:
        notes.append(f"{skipped} file(s) without an image extension skipped")
    items = [Item(k, p) for k, p in files.items()]
    if not items:
        raise SfError(f"{root}: no image files found (extensions like .jpg, .png, .webp)" + (f"; {notes[0]}" if notes else ""))
    return Sources(name=root.resolve().name, items=items, has_text=False, notes=notes)


def from_products_table(table: str | Path, images_dir: str | Path | None = None) -> Sources:
    """Rows of a products table: product_id, optional image (relative to images_dir) and text."""
    table = Path(table)
    if not table.is_file():
        raise SfError(f"{table}: products table not found")
    if table.suffix.lower() == ".csv":
        check_csv_header(table)
    try:
        df = pl.read_csv(table, infer_schema=False) if table.suffix.lower() == ".csv" else pl.read_parquet(table)
    except Exception as e:
        raise SfError(f"{table}: cannot be read as a table ({type(e).__name__}: {clip((str(e).splitlines() or [''])[0])})") from None
    check_names(df.columns, table)
    df = df.rename({c: c.strip() for c in df.columns})
    if "product_id" not in df.columns:
        raise SfError(f"{where(table, column='product_id')}: required column is missing (columns: {columns_list(df.columns)})")
    if df.height == 0:
        raise SfError(f"{table}: no product rows (only a header); nothing to extract")
    base = Path(images_dir) if images_dir else table.parent
    ids = [("" if v is None else str(v).strip()) for v in df["product_id"].to_list()]
    images = [("" if v is None else str(v).strip()) for v in df["image"].to_list()] if "image" in df.columns else [""] * len(ids)
    texts = [("" if v is None else str(v)) for v in df["text"].to_list()] if "text" in df.columns else [""] * len(ids)
    seen: set[str] = set()
    items = []
    for row, (pid, img, txt) in enumerate(zip(ids, images, texts), start=1):
        if not pid:
            raise SfError(f"{where(table, row, 'product_id')}: empty product_id")
        if pid in seen:
            raise SfError(f"{where(table, row, 'product_id')}: duplicate product_id {pid!r}")
        seen.add(pid)
        items.append(Item(pid, (base / img) if img else None, txt))
    return Sources(name=table.stem, items=items, has_text="text" in df.columns)


def from_dataset(data) -> Sources:
    """Rows of a contract dataset (a folder or an already loaded sf.data.contract.Dataset)."""
    from sf.data.contract import Dataset, load_dataset

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    paths = ds.image_paths()
    texts = dict(ds.products.select("product_id", "text").iter_rows())
    items = [Item(pid, paths[pid], texts.get(pid) or "") for pid in ds.product_ids]
    return Sources(name=ds.meta.name, items=items, has_text=True)


# ---------------------------------------------------------------- sharding


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' (0 <= I < N), or 'auto' for torchrun/SLURM's RANK/WORLD_SIZE; None when not sharding."""
    if text is None or text == "":
        return None
    if text == "auto":
        rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID"))
        world = os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS"))
        if rank is None or world is None:
            raise SfError("--shard auto needs RANK and WORLD_SIZE (torchrun) or SLURM_PROCID and SLURM_NTASKS")
        text = f"{rank}/{world}"
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SfError(f"--shard {text!r}: expected I/N, e.g. 0/4 (I counts from 0)") from None
    if n < 1 or not 0 <= i < n:
        raise SfError(f"--shard {text!r}: need 0 <= I < N (I counts from 0, like torchrun's RANK)")
    return i, n


def shard_of(key: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") % n


def take_shard(inputs: Sources, shard: tuple[int, int] | None) -> Sources:
    if shard is None:
        return inputs
    i, n = shard
    keep = [j for j, it in enumerate(inputs.items) if shard_of(it.key, n) == i]
    return Sources(
        name=inputs.name,
        items=[inputs.items[j] for j in keep],
        has_text=inputs.has_text,
        notes=inputs.notes,
        index=[inputs.index[j] for j in keep],
        listing_sha256=inputs.listing_sha256,
    )


# ---------------------------------------------------------------- content hashes


def content_hashes(items: list[Item]) -> list[str]:
    """One sha256 per item over its image bytes and text (sf.cache.content: stage 2 recomputes the same)."""
    return _content_hashes([(it.image, it.text) for it in items])
