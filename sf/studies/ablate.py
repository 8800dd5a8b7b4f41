"""`sf ablate`: the paper's Table 4 from the cache — backbone × fusion × head, every row over the seeds.

    grid    backbone {the store's, --backbone}  ×  fusion {biattn, concat}  ×  head {lstm, bilstm}  = 8 rows
    extras  (--extras) on the main store with biattn + bilstm, one change each: text only, image only, no exogenous
            series, one-way attention (words → regions, regions → words)
    ref     the mean training curve, for scale

"Attention removed" is the `concat` fusion: pooled image ⊕ pooled text, no attention between them
(`none` would drop both modalities, which is a different question: the extras' text/image-only rows
ask it one modality at a time). Every row uses the same split, made once from the main store and
applied by product to the other store; the same seeds; metrics in units on validation and test.
No backbone runs: both stores are read once into memory and shared by every run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sf.cache.reader import load_features, read_attrs
from sf.data.atomic import atomic_write_text
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast import engine
from sf.forecast.config import PRESETS, TrainConfig, inputs_label
from sf.plain import plain
from sf.studies import pool
from sf.studies import tables as T

GRID_FUSIONS = {"biattn": "bidirectional attention", "concat": "attention removed (pooled image ⊕ pooled text)"}
GRID_HEADS = ("lstm", "bilstm")
EXTRAS = (  # (label, changes to the main row: biattn + bilstm on the main store)
    ("the paper's exact config (hidden 30, MSE on units / ū)", {"settings": tuple(sorted(PRESETS["paper"].items()))}),
    ("text only", {"fusion": "text"}),
    ("image only", {"fusion": "image"}),
    ("no exogenous series", {"exog": False}),
    ("one-way attention, words → regions", {"fusion": "t2i"}),
    ("one-way attention, regions → words", {"fusion": "i2t"}),
)
OUTPUTS = ("config.json", "ablation.csv", "ablation.json", "ablation.png")


@dataclass(frozen=True)
class AblateConfig:
    features: Path  # the main store (the paper: ResNet-101)
    data: Path
    backbone: str = "resnet18"  # the other backbone of the grid
    features_alt: Path | None = None  # default: the main store's path with its backbone name swapped
    extras: bool = False  # the paper's 8 rows; the one-change extras only when asked (they more than double the cost)
    workers: int = 0  # 0: one process per core
    engine: str = "local"  # local (a pool of processes here) | ray (one Ray task per row and seed)
    out: Path | None = None  # default runs/ablate_<main store name>
    train: TrainConfig = field(default_factory=TrainConfig)
    allow_stale_features: bool = False  # use features whose image/text changed since extraction

    def to_dict(self) -> dict:
        return plain(self)


@dataclass(frozen=True)
class Variant:
    label: str
    store: str  # backbone name: key of the shared data
    fusion: str = "biattn"
    head: str = "bilstm"
    exog: bool = True
    group: str = "grid"  # grid | extra | reference
    settings: tuple = ()  # other TrainConfig changes, as sorted (key, value) pairs (e.g. a preset's)


@dataclass
class AblationResult:
    out: Path
    summary: list[dict]
    variants: list[Variant]
    split: dict
    notes: list[str]
    seconds: float
    workers: int
    exog_future: bool = False  # known-future covariates (cfg.train.exog_future), said in the table


def alt_store_path(features: Path, main_backbone: str, alt_backbone: str) -> Path:
    """cache/NAME_resnet101.h5 -> cache/NAME_resnet18.h5 (the naming `sf extract` uses)."""
    stem = features.stem
    if main_backbone and stem.endswith(f"_{main_backbone}"):
        stem = stem[: -len(main_backbone)] + alt_backbone
    else:
        stem = f"{stem}_{alt_backbone}"
    return features.with_name(stem + features.suffix)


def extract_command(data: Path, backbone: str, out: Path, main_attrs: dict) -> str:
    """The `sf extract` call that makes a store comparable to the main one (same weights kind and text encoder)."""
    parts = ["sf extract", f"--data {data}", f"--backbone {backbone}", f"--out {out}"]
    weights = str(main_attrs.get("weights") or "imagenet")
    if weights != "imagenet":
        parts.append(f"--weights {weights}")
    enc = str(main_attrs.get("text_encoder") or "")
    if enc and enc != "minilm":
        parts.append(f"--text-encoder {enc}")
    if main_attrs.get("text_len"):
        parts.append(f"--text-len {int(main_attrs['text_len'])}")
    if main_attrs.get("pooled_only"):
        parts.append("--pooled-only")
    return " ".join(parts)


def plan(main: str, alt: str | None, extras: bool) -> list[Variant]:
    """The rows, in table order: the grid (main backbone first), the extras, the reference."""
    rows = []
    for backbone in [main] + ([alt] if alt else []):
        for fusion in GRID_FUSIONS:
            for head in GRID_HEADS:
                rows.append(Variant(f"{backbone} · {fusion} · {head}", backbone, fusion, head))
    if extras:
        for label, change in EXTRAS:
            rows.append(replace(Variant(f"{main} · {label}", main, group="extra"), **change))
    rows.append(Variant("mean training curve (reference)", main, group="reference"))
    return rows


def _cost(v: Variant) -> float:
    """Relative run time, for scheduling only: attention over the regions and words costs about twice a
    pooled fusion per epoch, and a BiLSTM a little more than an LSTM (measured on VISUELLE)."""
    return (2.0 if v.fusion in ("biattn", "t2i", "i2t") else 1.0) * (1.3 if v.head == "bilstm" else 1.0)


def _store_info(attrs: dict, path: Path) -> dict:
    keep = ("backbone", "weights", "text_encoder", "channels", "grid_h", "grid_w", "fingerprint")
    return {"path": str(path), **{k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items() if k in keep}}


def _alt_store(cfg: AblateConfig, main: str, main_attrs: dict, notes: list[str]) -> Path | None:
    """The other backbone's store, or None (with a note saying how to make it) when it is not there."""
    alt_path = Path(cfg.features_alt) if cfg.features_alt else alt_store_path(Path(cfg.features), main, cfg.backbone)
    if not alt_path.exists():
        cmd = extract_command(cfg.data, cfg.backbone, alt_path, main_attrs)
        notes.append(f"{alt_path} not found: the {cfg.backbone} rows are skipped. Make that store with: {cmd}")
        return None
    if str(read_attrs(alt_path).get("backbone")) == main:
        raise SfError(f"{alt_path}: has backbone {main}, the same as {cfg.features}; give a {cfg.backbone} store")
    return alt_path


def _prepare_stores(cfg: AblateConfig, train_cfg: TrainConfig, main: str, alt_path: Path | None):
    """Both stores read once and split once: the split is made on the main store and applied by product to
    the other, so every row sees the same products in the same parts."""
    ds = load_dataset(cfg.data)
    check = not cfg.allow_stale_features
    first = engine.prepare(train_cfg, load_features(cfg.features), ds, label=main, check_content=check)
    shared = {main: first}
    stores = {main: _store_info(read_attrs(cfg.features), cfg.features)}
    alt = None
    if alt_path is not None:
        feats = load_features(alt_path)
        alt = str(feats.attrs.get("backbone") or cfg.backbone)
        shared[alt] = engine.prepare(train_cfg, feats, ds, split=first.product_split, label=alt, check_content=check)
        stores[alt] = _store_info(feats.attrs, alt_path)
    return shared, stores, alt


def run_ablation(cfg: AblateConfig, console: Console | None = None, progress: bool = True) -> AblationResult:
    console = console or Console()
    t0 = time.perf_counter()
    # One fit per row and seed: the grid isolates backbone x fusion x head, and sf train's per-seed choice of fused
    # dropout on validation (engine.choice_candidates) would double its cost and add a second difference between rows.
    train_cfg = replace(cfg.train, features=cfg.features, data=cfg.data, model="sf", choose_on_validation=False)
    train_cfg.validate()
    main_attrs = read_attrs(cfg.features)
    main = str(main_attrs.get("backbone") or Path(cfg.features).stem)
    if cfg.backbone == main:
        raise SfError(f"--backbone {cfg.backbone}: that is the main store's backbone already ({cfg.features}); "
                      f"name the other one, e.g. --backbone resnet18")
    notes: list[str] = []
    alt_path = _alt_store(cfg, main, main_attrs, notes)
    shared, stores, alt = _prepare_stores(cfg, train_cfg, main, alt_path)
    variants = plan(main, alt, cfg.extras)
    workers = pool.study_workers(cfg.workers, cfg.engine)
    results = pool.run_jobs(_jobs(variants, train_cfg, workers), shared, workers, console, "ablation", progress,
                            engine=cfg.engine)
    summary = T.summarise(results, [v.label for v in variants], shared=shared)
    by_label = {v.label: v for v in variants}
    for s in summary:
        v = by_label[s["row"]]
        s.update(group=v.group, backbone=v.store, fusion=v.fusion if v.group != "reference" else None,
                 head=v.head if v.group != "reference" else None, exog=v.exog)
    ids = {i for s in summary for i in s["split_ids"]}
    if len(ids) != 1:  # a bug, not a user error: say it loudly rather than print an unfair table
        raise RuntimeError(f"ablation rows were computed on different splits: {sorted(ids)}")
    first = shared[main]
    split_info = {"kind": first.kind, "split_id": ids.pop(), **first.info}
    out = Path(cfg.out) if cfg.out else Path("runs") / f"ablate_{Path(cfg.features).stem}"
    result = AblationResult(out=out, summary=summary, variants=variants, split=split_info, notes=notes,
                            seconds=time.perf_counter() - t0, workers=workers, exog_future=cfg.train.exog_future)
    _write(result, cfg, stores, train_cfg)
    return result


def _jobs(variants: list[Variant], train_cfg: TrainConfig, workers: int) -> list[pool.Job]:
    threads = 1 if workers > 1 else train_cfg.threads
    jobs = []
    for v in variants:
        if v.group == "reference":
            jobs.append(pool.Job(v.label, v.store, "baseline", "mean_curve", train_cfg, train_cfg.seed))
            continue
        run_cfg = replace(replace(train_cfg, fusion=v.fusion, head=v.head, exog=v.exog, threads=threads),
                          **dict(v.settings))
        jobs += [pool.Job(v.label, v.store, "neural", "sf", run_cfg, s, cost=_cost(v)) for s in train_cfg.seed_list]
    return jobs


def _write(result: AblationResult, cfg: AblateConfig, stores: dict, train_cfg: TrainConfig) -> None:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    split = T.report_split(result.summary)
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    extra = {k: [s.get(k) for s in result.summary] for k in ("group", "backbone", "fusion", "head", "exog")}
    T.write_csv(T.table_frame(result.summary, extra), out / "ablation.csv")
    payload = {"config": cfg.to_dict(), "train": train_cfg.to_dict(), "split": result.split, "stores": stores,
               "reported_split": split,
               "fusion_meaning": GRID_FUSIONS, "rows": result.summary, "notes": result.notes,
               "seconds": result.seconds, "workers": result.workers}
    atomic_write_text(out / "ablation.json", json.dumps(payload, indent=2, default=str))
    n = len(cfg.train.seed_list)
    T.bar_chart(result.summary, split, out / "ablation.png",
                f"sf ablation — {split} split, {n} seed(s) per row, {result.split['kind']} split of {cfg.data}")


def ablation_table(result: AblationResult) -> Table:
    split = T.report_split(result.summary)
    best = min((s for s in result.summary if s["group"] != "reference" and "val" in s),
               key=lambda s: s["val"]["mean"].get("WAPE", float("inf")), default=None)
    n = max(len(s["seeds"]) for s in result.summary)
    table = T.study_table(f"Ablation — {split} metrics in units, mean ± std over {n} seed(s); "
                            f"{result.split['kind']} split (same for every row); {inputs_label(result.exog_future)}",
                            split, [("row", {})], ensemble := T.shows_ensemble(result.summary))
    group = None
    for s in result.summary:
        if group is not None and s["group"] != group:
            table.add_section()
        group = s["group"]
        label = s["row"] + (" ★" if best is not None and s is best else "")
        cells = T.study_cells(s, split, ensemble)
        table.add_row(label, *cells, f"{s['seconds']:.1f}", style="dim" if group == "reference" else None)
    sp = result.split
    table.caption = (f"★ best validation WAPE (chosen on validation only). concat = attention removed. "
                     f"train {sp['train']['products']}, val {sp['val']['products']}, test {sp['test']['products']} "
                     f"products; {result.seconds:.0f} s with {result.workers} worker(s)")
    return table
