"""One extraction run: rows in, feature store out — incremental, resumable, never dying on a bad image.

    plan      hash every row's image bytes + text; rows whose key and hash the store (or a part
              left by a killed run) already has are skipped
    decode    DataLoader workers open, check and preprocess images with Pillow (sf.extract.images), or
              (--decoder torchvision, the default on CUDA) only read bytes, and JPEGs are decoded,
              resized and letterboxed on the device in batches (sf.extract.decode)
    forward   the frozen backbone on the device, the text encoder beside it; the device-to-host copy
              of pass k is collected after pass k+1 is queued
    write     every ~30 s the finished rows become one atomic part file, written by a writer thread;
              at the end the parts are folded into the store in one atomic rename (sf.cache.writer)

Every forward pass has the same shape (see sf.extract.runtime), so a row's features depend only on
its image, not on the images it ran with: a rerun after a kill, a shard or an incremental update
gives bit-identical rows. Rows are written in input order, whole decoded batches at a time.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from sf.cache import schema as S
from sf.cache.writer import (COMPRESSIONS, BackgroundParts, RowBlock, StoreFiles, check_compatible, expected_bytes,
                             read_attrs_of)
from sf.checks import non_finite
from sf.device import resolve_device
from sf.errors import SfError
from sf.extract import backbones, prefetch, sources as I, text as T
from sf.extract.decode import DECODER_CHOICES, DeviceDecoder, ReadRows, collate_read, resolve_decoder
from sf.extract.images import DEFAULT_MAX_PIXELS, FITS, BadImage, ImagePrep, load_image
from sf.extract.runtime import F16_MAX, ImageFeaturizer, resolve_precision
from sf.outputs import writable_file
from sf.progress import bar

PART_BYTES = 256 * 1024 * 1024
ENGINES = ("local", "ray")


@dataclass
class ExtractConfig:
    backbone: str = "resnet101"
    weights: str = "imagenet"  # imagenet | random | PATH to a state dict
    seed: int = 0  # for random weights
    text_encoder: str = "minilm"  # a name in sf.extract.text.TEXT_ENCODERS, or "none"
    text_len: int = 32  # tokens kept per description (v_i^T)
    image_size: int | None = None  # None: the backbone's native size
    fit: str = "pad"  # pad | crop
    batch_size: int = 32
    workers: int | None = None  # None: chosen from the device and the job size
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    decoder: str = "auto"  # auto | pillow | torchvision (auto: torchvision/nvJPEG on CUDA, Pillow on CPU)
    shard: str | None = None  # "I/N" or "auto"
    strict: bool = False  # any unreadable image fails the run (after writing the store)
    pooled_only: bool = False  # no region grid: ~50x smaller stores for huge catalogues
    compression: str = "none"  # none | gzip | lzf
    max_pixels: int = DEFAULT_MAX_PIXELS
    checkpoint_seconds: float = 30.0
    expect: dict | None = None  # a store's attrs this run must reproduce exactly (sf predict)
    engine: str = "local"  # local | ray (sf.extract.ray_engine)
    concurrency: int | None = None  # Ray actors (None: one per GPU, or every CPU but one)

    def validate(self) -> None:
        for name, value in non_finite(self):
            raise SfError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if self.max_pixels < 1:
            raise SfError(f"--max-pixels must be >= 1, got {self.max_pixels}")
        if self.batch_size < 1:
            raise SfError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.image_size is not None and not 16 <= self.image_size <= 2048:
            raise SfError(f"--image-size must be between 16 and 2048, got {self.image_size}")
        if self.fit not in FITS:
            raise SfError(f"--fit {self.fit!r}: choose one of {', '.join(FITS)}")
        if self.compression not in COMPRESSIONS:
            raise SfError(f"--compression {self.compression!r}: choose one of {', '.join(COMPRESSIONS)}")
        if self.text_len < 1:
            raise SfError(f"--text-len must be >= 1, got {self.text_len}")
        if self.engine not in ENGINES:
            raise SfError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.decoder not in DECODER_CHOICES:
            raise SfError(f"--decoder {self.decoder!r}: choose one of {', '.join(DECODER_CHOICES)}")
        if self.workers is not None and self.workers < 0:
            raise SfError(f"--workers must be >= 0, got {self.workers}")


@dataclass
class Extractor:
    """The built models of one configuration and the store attributes they imply."""

    image: backbones.LoadedBackbone
    featurizer: ImageFeaturizer
    text: T.TextEncoder | None
    cfg: ExtractConfig
    device: torch.device
    precision: str
    decoder: str  # pillow | torchvision (resolved)

    def attrs(self, shard: tuple[int, int] | None = None, listing_sha256: str = "") -> dict:
        b, cfg = self.image, self.cfg
        prep = {"image": b.prep.to_dict()}
        if self.text is not None:
            prep["text"] = {"max_tokens": cfg.text_len, "empty_text": "all-zero mask and vectors"}
        return {
            "schema_version": S.SCHEMA_VERSION,
            "backbone": b.spec.name,
            "weights": b.weights,
            "weights_sha256": b.weights_sha256,
            "weights_source": b.weights_source,
            "weights_seed": b.weights_seed if b.weights_seed is not None else "",
            "weights_path": b.weights_path,
            "random_weights": b.random_weights,
            "preprocessing": json.dumps(prep, sort_keys=True),
            "image_size": b.prep.image_size,
            "grid_h": b.grid[0],
            "grid_w": b.grid[1],
            "channels": b.spec.channels,
            "text_encoder": self.text.name if self.text else "none",
            "text_encoder_sha256": self.text.sha256 if self.text else "",
            "text_encoder_source": self.text.source if self.text else "",
            "text_dim": self.text.dim if self.text else 0,
            "text_len": cfg.text_len if self.text else 0,
            "pooled_only": cfg.pooled_only,
            "precision": self.precision,
            "decoder": self.decoder,
            "decoder_codes": json.dumps(list(S.DECODERS)),
            "device": str(self.device),
            "shard": f"{shard[0]}/{shard[1]}" if shard else "",
            "input_sha256": listing_sha256,
            "compression": cfg.compression,
            "batch_size": cfg.batch_size,
            "torch_threads": torch.get_num_threads(),
            "versions": json.dumps(_versions(self.text), sort_keys=True),
            "extract_config": config_json(cfg),
        }


def build_extractor(cfg: ExtractConfig, with_text: bool = True) -> Extractor:
    cfg.validate()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, like=cfg.expect)
    image = backbones.load_backbone(cfg.backbone, cfg.weights, cfg.seed, cfg.image_size, cfg.fit)
    featurizer = ImageFeaturizer(image.trunk, image.prep, device, precision, grid=not cfg.pooled_only, batch_size=cfg.batch_size)
    text = T.build(cfg.text_encoder, str(device)) if with_text and cfg.text_encoder != "none" else None
    return Extractor(image=image, featurizer=featurizer, text=text, cfg=cfg, device=device, precision=precision,
                     decoder=resolve_decoder(cfg.decoder, device))


def _versions(text) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    names = ["sf", "torch", "torchvision", "h5py", "numpy", "pillow"]
    if text is not None and text.name == "minilm":
        names += ["sentence-transformers", "transformers"]
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------- decoding (runs in DataLoader workers)


class DecodeRows(torch.utils.data.Dataset):
    """Row j -> (j, Pillow-decoded (S, S, 3) uint8 or None, status, reason); a source is a path, the file's
    bytes, None (no image) or a BadImage the caller already knows (a file Ray could not list)."""

    def __init__(self, images: list, prep: ImagePrep, max_pixels: int):
        self.images, self.prep, self.max_pixels = images, prep, max_pixels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, j: int):
        path = self.images[j]
        if path is None:
            return j, None, S.STATUS_NO_IMAGE, ""
        try:
            if isinstance(path, BadImage):
                raise path
            return j, load_image(path, self.prep, self.max_pixels), S.STATUS_OK, ""
        except BadImage as e:
            return j, None, S.STATUS_UNREADABLE, str(e)
        except Exception as e:  # a decoder bug must cost one row, not the run
            return j, None, S.STATUS_UNREADABLE, f"unexpected {type(e).__name__}: {str(e)[:160]}"


def collate(rows):
    idx = [r[0] for r in rows]
    ok = [k for k, r in enumerate(rows) if r[1] is not None]
    images = torch.from_numpy(np.stack([rows[k][1] for k in ok])) if ok else None
    return {"idx": idx, "ok": ok, "images": images, "status": [r[2] for r in rows], "reason": [r[3] for r in rows],
            "decoder": ["pillow" if r[1] is not None else "" for r in rows]}


def decode_loader(ext: Extractor, sources: list, workers: int) -> torch.utils.data.DataLoader:
    """Decoded batches of `sources` in order, batch_size rows each (see DeviceDecoder for the device path)."""
    cfg = ext.cfg
    device_path = ext.decoder == "torchvision"
    rows = (ReadRows if device_path else DecodeRows)(sources, ext.image.prep, cfg.max_pixels)
    return torch.utils.data.DataLoader(
        rows,
        batch_sampler=[list(range(k, min(k + cfg.batch_size, len(rows)))) for k in range(0, len(rows), cfg.batch_size)],
        num_workers=workers,
        collate_fn=collate_read if device_path else collate,
        pin_memory=ext.device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


def decoded_batches(ext: Extractor, sources: list, workers: int, ahead: bool | None = None):
    """The batches the forward queue takes: Pillow's straight from the workers, the device path's after
    the batched device decode — on CUDA (or with `ahead=True`) one batch ahead on a thread (sf.extract.prefetch)."""
    loader = decode_loader(ext, sources, workers)
    if ext.decoder != "torchvision":
        yield from loader
        return
    device_decode = DeviceDecoder(ext.image.prep, ext.device, ext.cfg.max_pixels)
    on_thread = ext.device.type == "cuda" if ahead is None else ahead
    if on_thread:
        yield from prefetch.ahead(loader, device_decode, ext.device)
    else:
        for batch in loader:
            yield device_decode(batch)


def _workers(cfg: ExtractConfig, device: torch.device, n_todo: int) -> int:
    if cfg.workers is not None:
        return cfg.workers
    if n_todo <= cfg.batch_size:
        return 0  # a worker costs more to start than one batch takes to decode
    cpus = os.cpu_count() or 1
    # A GPU outruns JPEG decoding, so feed it from every core but the main process's own.
    return max(1, cpus - 1) if device.type == "cuda" else max(1, min(4, cpus // 2))


# ---------------------------------------------------------------- the run


@dataclass
class ExtractReport:
    out: Path
    rows: int  # rows of this input (after sharding)
    extracted: int  # rows computed by this run
    skipped: int  # rows already in the store with the same content hash
    counts: dict[str, int]  # status -> rows, over this input
    unreadable: list[tuple[str, str]]  # (key, reason), over this input
    notes: list[str]
    seconds: float  # decode -> forward -> write, incl. folding parts into the store
    random_weights: bool
    attrs: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0


def default_out(inputs: I.Sources, cfg: ExtractConfig) -> Path:
    shard = I.parse_shard(cfg.shard)
    suffix = f".shard{shard[0]}of{shard[1]}" if shard else ""
    return Path("cache") / f"{inputs.name}_{cfg.backbone}{suffix}.h5"


def run(inputs: I.Sources, out: str | Path | None, cfg: ExtractConfig, console: Console | None = None,
        extractor: Extractor | None = None) -> ExtractReport:
    """Extract `inputs` into the store `out` (created, resumed or extended); see the module docstring."""
    console = console or Console(stderr=True)
    shard = I.parse_shard(cfg.shard)
    if not inputs.items:  # a header-only table: no store at all beats an empty one
        raise SfError(f"{inputs.name}: no rows to extract (the products table or folder is empty); nothing written")
    out = writable_file(Path(out) if out else default_out(inputs, cfg))
    if out.exists():
        read_attrs_of(out)  # a file at --out that is not a store is refused before a lock file appears beside it
    inputs = I.take_shard(inputs, shard)
    ext = extractor or build_extractor(cfg, with_text=inputs.has_text)
    attrs = ext.attrs(shard, inputs.listing_sha256)
    if cfg.expect is not None:
        diff = S.fingerprint_diff(cfg.expect, attrs)
        if diff:
            raise SfError(f"cannot re-create the store's extractor here: {'; '.join(diff)}")
    if ext.image.random_weights:
        console.print(f"[bold yellow]warning:[/] {ext.image.spec.name} with RANDOM weights (seed {cfg.seed}) — "
                      f"image features carry no visual meaning; the store is marked random_weights=True")

    files = StoreFiles(out)
    with files.locked():
        check_compatible(attrs, files.existing_attrs())
        hashes = I.content_hashes(inputs.items)
        done = files.done()
        todo = [j for j, (it, h) in enumerate(zip(inputs.items, hashes)) if done.get(it.key) != h]
        t0 = time.perf_counter()
        if todo:
            new = expected_bytes(attrs, len(todo), sum(inputs.items[j].image is not None for j in todo))
            need = files.check_space(new)
            console.print(f"{len(todo):,} rows to extract: about {new / 1e9:.2f} GB of features "
                          f"({need / 1e9:.2f} GB of free disk needed while writing)", highlight=False)
            if cfg.engine == "ray":
                from sf.extract.ray_engine import extract_rows
            else:
                extract_rows = _extract_rows
            extract_rows(inputs, hashes, todo, ext, files, attrs, console)
        stored = read_attrs_of(out) if out.exists() else {}
        # A new listing (same rows, another order or subset) also rewrites the store: its row positions
        # and listing hash must describe the same listing, or `sf cache merge` cannot restore its order.
        if files.parts() or not stored.get("complete", False) or stored.get("input_sha256") != attrs["input_sha256"]:
            files.finalize(attrs, complete=True, compression=cfg.compression,
                           positions={it.key: int(i) for it, i in zip(inputs.items, inputs.index)})
        seconds = time.perf_counter() - t0
    return _report(out, inputs, len(todo), seconds, ext.image.random_weights, attrs)


def _extract_rows(inputs, hashes, todo, ext: Extractor, files: StoreFiles, attrs: dict, console: Console) -> None:
    cfg = ext.cfg
    items = [inputs.items[j] for j in todo]
    writer = BackgroundParts(files, attrs, cfg.compression)
    buffer: list[RowBlock] = []
    last = time.monotonic()

    def flush() -> None:
        nonlocal buffer, last
        writer.put(buffer)
        buffer, last = [], time.monotonic()

    progress = bar(console, "{task.fields[rate]:>6.1f} rows/s", eta=True)
    todo_hashes, todo_index = [hashes[j] for j in todo], [inputs.index[j] for j in todo]
    start = time.perf_counter()
    queue = ImageQueue(ext)
    try:
        with progress:
            task = progress.add_task(f"[bold]extract[/] {ext.image.spec.name} -> {files.out.name}", total=len(items),
                                     rate=0.0)
            buffered, done = 0, 0
            workers = _workers(cfg, ext.device, len(items))
            for blocks in featurize(ext, items, todo_hashes, todo_index, [it.image for it in items], workers, queue):
                for block in blocks:
                    buffer.append(block)
                    buffered += block.nbytes()
                    done += len(block)
                progress.update(task, completed=done, rate=done / max(time.perf_counter() - start, 1e-9))
                if time.monotonic() - last >= cfg.checkpoint_seconds or buffered >= PART_BYTES:
                    flush()
                    buffered = 0
            progress.update(task, completed=len(items), rate=len(items) / max(time.perf_counter() - start, 1e-9))
        flush()
        writer.close()
    except KeyboardInterrupt:
        # Keep every finished batch; the store is marked incomplete until a rerun finishes it.
        buffer += queue.drain()
        flush()
        writer.close()
        if not files.parts() and not files.out.exists():
            console.print("interrupted before any row was finished: nothing written")
            raise
        files.finalize(attrs, complete=False, compression=cfg.compression)
        console.print(f"interrupted: finished rows saved to {files.out} (incomplete); rerun the same command to finish")
        raise


def featurize(ext: Extractor, items: list[I.Item], hashes: list[str], index: list[int], sources: list, workers: int,
              queue: "ImageQueue"):
    """decode -> forward -> rows, the pieces every engine shares: yields the rows finished after each
    decoded batch, in order (the last yield runs the final partial pass). `sources[j]` is item j's
    image: a path, its bytes, None or a BadImage already known (see DecodeRows)."""
    for batch in decoded_batches(ext, sources, workers):
        queue.put(_row_block(batch, items, hashes, index, ext), batch)
        yield queue.ready()
    yield queue.ready(final=True)


def _row_block(batch, items, hashes, index, ext: Extractor) -> RowBlock:
    """The rows of one decoded batch, with text features; image features come from ImageQueue."""
    idx = batch["idx"]
    block = RowBlock(
        keys=[items[j].key for j in idx],
        content_hash=[hashes[j] for j in idx],
        status=list(batch["status"]),
        reason=list(batch["reason"]),
        input_index=np.array([index[j] for j in idx], dtype=np.int64),
        image_pooled=None,
        image_grid=None,
        image_decoder=np.array([S.decoder_code(d) for d in batch["decoder"]], dtype=np.uint8),
    )
    if ext.text is not None:
        tokens, mask, tpooled = ext.text.encode([items[j].text for j in idx], ext.cfg.text_len)
        block.text_tokens = np.clip(tokens, -F16_MAX, F16_MAX).astype(np.float16)
        block.text_mask = mask.astype(np.uint8)
        block.text_pooled = np.clip(tpooled, -F16_MAX, F16_MAX).astype(np.float16)
    return block


@dataclass
class _Waiting:
    block: RowBlock
    ok: list[int]  # rows of the block that have a decoded image, in order
    images: torch.Tensor | None  # (len(ok), S, S, 3) uint8
    left: int  # images not yet through the backbone


class ImageQueue:
    """Row batches wait here until their images fill whole forward passes; rows leave in order.

    Decoding works on fixed slices of the to-do list, but in a catalogue where few products have an
    image (VISUELLE: 1 in 10) one slice per forward pass would mostly run padding. Images of
    consecutive slices share forward passes instead. Every pass has the same shape (the featurizer
    pads the last one), so an image's features still do not depend on which images it ran with.
    """

    def __init__(self, ext: Extractor):
        self.ext, self.rows, self.images = ext, deque(), []  # images: (waiting, k-th of its images)
        self.in_flight = None  # (result function, groups) of the pass the device is running

    def put(self, block: RowBlock, batch) -> None:
        w = _Waiting(block, batch["ok"], batch["images"], len(batch["ok"]))
        self.rows.append(w)
        self.images += [(w, k) for k in range(w.left)]

    def ready(self, final: bool = False) -> list[RowBlock]:
        """Queue every full forward pass (and, if `final`, the last partial one); return finished rows.

        The pass before the newest is collected only once the newest is queued, so the device never
        idles while this process copies results and builds rows."""
        bs = self.ext.cfg.batch_size
        while len(self.images) >= bs or (final and self.images):
            take, self.images = self.images[:bs], self.images[bs:]
            groups = _consecutive(take)
            if len(groups) == 1 and groups[0][1] == 0 and groups[0][2] == len(groups[0][0].ok):
                x = groups[0][0].images  # one whole decoded batch: use it as is (pinned memory)
            else:
                x = torch.cat([w.images[k0:k1] for w, k0, k1 in groups])
            pending = (self.ext.featurizer.submit(x), groups)
            self._collect()
            self.in_flight = pending
        return self.drain() if final else self._finished()

    def drain(self) -> list[RowBlock]:
        """Collect the pass in flight; return the finished rows (an interrupted run keeps them)."""
        self._collect()
        return self._finished()

    def _finished(self) -> list[RowBlock]:
        out = []
        while self.rows and self.rows[0].left == 0:
            out.append(self._finish(self.rows.popleft()))
        return out

    def _collect(self) -> None:
        if self.in_flight is None:
            return
        result, groups = self.in_flight
        self.in_flight = None
        pooled, grid = result()
        at = 0
        for w, k0, k1 in groups:
            self._fill(w, k0, k1, pooled[at : at + k1 - k0], None if grid is None else grid[at : at + k1 - k0])
            at += k1 - k0
        for w, _, _ in groups:
            w.images = None if w.left == 0 else w.images  # free decoded pixels as soon as they ran

    def _fill(self, w: _Waiting, k0: int, k1: int, pooled, grid) -> None:
        b, n = w.block, len(w.block)
        if k1 - k0 == n:  # every row has an image and they ran together: keep the arrays, no copy
            b.image_pooled, b.image_grid = pooled, grid
        else:
            self._zeros(b)
            rows = w.ok[k0:k1]
            b.image_pooled[rows] = pooled
            if grid is not None:
                b.image_grid[rows] = grid
        w.left -= k1 - k0

    def _zeros(self, b: RowBlock) -> None:
        if b.image_pooled is None:
            n, c = len(b), self.ext.image.spec.channels
            b.image_pooled = np.zeros((n, c), np.float16)
            if not self.ext.cfg.pooled_only:
                b.image_grid = np.zeros((n, self.ext.image.grid[0] * self.ext.image.grid[1], c), np.float16)

    def _finish(self, w: _Waiting) -> RowBlock:
        self._zeros(w.block)  # rows without any readable image
        return w.block


def _consecutive(take: list[tuple[_Waiting, int]]) -> list[tuple[_Waiting, int, int]]:
    """[(waiting, k0, k1)]: runs of images from the same row batch."""
    groups: list[tuple[_Waiting, int, int]] = []
    for w, k in take:
        if groups and groups[-1][0] is w and groups[-1][2] == k:
            groups[-1] = (w, groups[-1][1], k + 1)
        else:
            groups.append((w, k, k + 1))
    return groups


def _report(out: Path, inputs: I.Sources, extracted: int, seconds: float, random_weights: bool, attrs: dict) -> ExtractReport:
    import h5py

    with h5py.File(out, "r") as f:
        keys = f[S.KEYS].asstr()[()]
        status = f[S.STATUS].asstr()[()]
        reason = f[S.REASON].asstr()[()]
    row = {k: i for i, k in enumerate(keys)}
    counts = {S.STATUS_OK: 0, S.STATUS_NO_IMAGE: 0, S.STATUS_UNREADABLE: 0}
    unreadable = []
    for it in inputs.items:
        i = row[it.key]
        counts[status[i]] = counts.get(status[i], 0) + 1
        if status[i] == S.STATUS_UNREADABLE:
            unreadable.append((it.key, reason[i]))
    return ExtractReport(
        out=out, rows=len(inputs.items), extracted=extracted, skipped=len(inputs.items) - extracted, counts=counts,
        unreadable=unreadable, notes=list(inputs.notes), seconds=seconds, random_weights=random_weights, attrs=attrs,
    )


def check_outcome(report: ExtractReport, strict: bool) -> None:
    """Exit policy: fail only when asked (--strict) or when no image at all could be read."""
    bad = report.unreadable
    if strict and bad:
        raise SfError(f"--strict: {len(bad)} unreadable image(s) (first: {bad[0][0]}: {bad[0][1]}); store written to {report.out}")
    with_images = report.counts.get(S.STATUS_OK, 0) + len(bad)
    if with_images and report.counts.get(S.STATUS_OK, 0) == 0:
        raise SfError(f"no image could be read ({len(bad)} unreadable; first: {bad[0][0]}: {bad[0][1]}); store written to {report.out}")


# ---------------------------------------------------------------- the API other stages use


def extract_dataset(data, out: str | Path | None = None, console: Console | None = None, like: dict | str | Path | None = None,
                    **options) -> Path:
    """Extract a contract dataset (folder or loaded Dataset) into a store; incremental; returns its path.

    `like`: a store path or its attrs — extract with exactly that store's backbone, weights,
    preprocessing and text encoder (refused with what differs if this machine cannot).
    Other keywords are ExtractConfig fields (backbone=, weights=, text_encoder=, batch_size=, ...).
    """
    cfg = config_from_attrs(like, **options) if like is not None else ExtractConfig(**options)
    report = run(I.from_dataset(data), out, cfg, console)
    check_outcome(report, cfg.strict)
    return report.out


def config_from_attrs(attrs: dict | str | Path, **overrides) -> ExtractConfig:
    """The ExtractConfig that re-creates a store's extractor (its fingerprint is checked on use)."""
    if not isinstance(attrs, dict):
        from sf.cache.reader import read_attrs

        attrs = read_attrs(attrs)
    a = {k: S._plain(v) for k, v in attrs.items()}
    prep = json.loads(a["preprocessing"])
    weights = a["weights"]
    if weights == "file":
        weights = overrides.pop("weights_path", None) or a.get("weights_path")
    seed = a.get("weights_seed")
    cfg = ExtractConfig(
        backbone=a["backbone"],
        weights=weights,
        seed=int(seed) if seed not in ("", None) else 0,
        text_encoder=a.get("text_encoder", "none") or "none",
        text_len=int(a.get("text_len") or 32),
        image_size=int(prep["image"]["image_size"]),
        fit=prep["image"].get("fit", "pad"),
        pooled_only=bool(a.get("pooled_only", False)),
        # The store's precision where this machine can run it (bf16 differs from fp32 in the last bits);
        # fp16 is CUDA-only, so a CPU re-creating an fp16 store picks its own.
        precision=a.get("precision") if a.get("precision") in ("fp32", "bf16") else "auto",
        expect=a,
    )
    overrides.pop("weights_path", None)
    return replace(cfg, **overrides)


def config_json(cfg: ExtractConfig) -> str:
    d = asdict(cfg)
    d.pop("expect", None)
    return json.dumps(d, indent=2, default=str)
