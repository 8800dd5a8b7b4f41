"""`sf cache info`: what a store holds and how it was made."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import h5py
from rich.console import Console
from rich.table import Table

from sf.cache import schema as S
from sf.cache.damage import reading
from sf.cache.reader import read_attrs
from sf.cache.writer import StoreFiles

SHOWN = (
    "backbone", "weights", "weights_source", "weights_sha256", "random_weights", "image_size", "grid_h", "grid_w",
    "channels", "text_encoder", "text_encoder_sha256", "text_dim", "text_len", "pooled_only", "precision", "device",
    "decoder", "shard", "compression", "complete", "fingerprint", "schema_version", "created", "updated",
)


def store_info(path: str | Path) -> dict:
    path = Path(path)
    attrs = read_attrs(path)
    with reading(path), h5py.File(path, "r") as f:
        status = f[S.STATUS].asstr()[()]
        datasets = {}
        f.visititems(lambda name, obj: datasets.__setitem__(name, [list(obj.shape), str(obj.dtype), obj.id.get_storage_size()])
                     if isinstance(obj, h5py.Dataset) else None)
        has_text = int(f[S.TEXT_MASK][()].any(axis=1).sum()) if S.TEXT_MASK in f else 0
        decoders = Counter(S.DECODERS[c] for c in f[S.IMAGE_DECODER][()]) if S.IMAGE_DECODER in f else Counter()
    counts = Counter(status)
    pending = StoreFiles(path).parts()
    size, rows = path.stat().st_size, int(len(status))
    grid_bytes = datasets.get(S.IMAGE_GRID, [None, None, 0])[2]
    grid_rows = datasets.get(S.IMAGE_GRID, [[0]])[0][0]
    return {
        "path": str(path),
        "bytes": size,
        "rows": rows,
        # what a row costs on disk: all of the file over its rows, and the grid over the rows that hold one
        "bytes_per_row": size // max(rows, 1),
        "grid_bytes_per_image_row": grid_bytes // max(grid_rows, 1) if grid_rows else 0,
        "layout": "sparse grids" if S.sparse_grid(attrs) else ("pooled only" if attrs.get("pooled_only") else "dense grids"),
        "status": {k: int(counts.get(k, 0)) for k in (S.STATUS_OK, S.STATUS_NO_IMAGE, S.STATUS_UNREADABLE)},
        "rows_with_text": has_text,
        "decoder": {k: int(v) for k, v in decoders.items() if k},  # ok rows by decoder (absent in older stores)
        "datasets": datasets,
        "pending_parts": len(pending),
        "attrs": attrs,
    }


def print_info(info: dict, console: Console) -> None:
    a = info["attrs"]
    t = Table(title=f"{info['path']} ({info['bytes'] / 2**20:.1f} MiB)", show_header=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k in SHOWN:
        if k in a and a[k] not in ("", None):
            t.add_row(k, str(a[k]))
    prep = json.loads(a["preprocessing"]) if a.get("preprocessing") else {}
    for part, d in prep.items():
        t.add_row(f"preprocessing.{part}", ", ".join(f"{k}={v}" for k, v in d.items()))
    if a.get("versions"):
        t.add_row("versions", ", ".join(f"{k} {v}" for k, v in json.loads(a["versions"]).items()))
    console.print(t)
    c = Table(title="rows", header_style="bold")
    c.add_column("what")
    c.add_column("count", justify="right")
    c.add_row("rows", str(info["rows"]))
    c.add_row("bytes per row (file / rows)", f"{info['bytes_per_row']:,}")
    if info["grid_bytes_per_image_row"]:
        c.add_row("grid bytes per row with one", f"{info['grid_bytes_per_image_row']:,}")
    c.add_row("layout", f"{info['layout']} (schema {S.version(a)})")
    for k, v in info["status"].items():
        c.add_row(f"status {k}", str(v))
    for k, v in info["decoder"].items():
        c.add_row(f"decoded by {k}", str(v))
    c.add_row("with text", str(info["rows_with_text"]))
    console.print(c)
    d = Table(title="datasets", header_style="bold")
    d.add_column("name")
    d.add_column("shape")
    d.add_column("dtype")
    d.add_column("MiB on disk", justify="right")
    for name, (shape, dtype, stored) in sorted(info["datasets"].items()):
        d.add_row(name, " x ".join(map(str, shape)), dtype, f"{stored / 2**20:.1f}")
    console.print(d)
    if a.get("random_weights"):
        console.print("[bold yellow]warning:[/] made with RANDOM backbone weights")
    if not a.get("complete", False):
        console.print("[bold yellow]incomplete:[/] extraction was interrupted; rerun the same `sf extract` to finish")
    if info["pending_parts"]:
        console.print(f"[yellow]{info['pending_parts']} part file(s) of an unfinished run are waiting in {info['path']}.parts[/]")


def write_json(info: dict, path: str | Path) -> None:
    from sf.data.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(info, indent=2, default=str))
