"""`sf explain`: why the model forecasts what it does for one product, as one PNG (+ the numbers as JSON).

    image regions  α^{T→I} averaged over the description's real words: how much attention each region of
                   the backbone's grid (7×7 for a ResNet at 224) receives; drawn over the image exactly as
                   the store's preprocessing framed it (padded or cropped square)
    words          α^{I→T} averaged over the regions: how much attention each word receives (the strings
                   come from re-tokenising the description with the store's text encoder)
    forecast       the seed-averaged curve with its outer quantile band, the actual sales when known, and
                   the training mean curve for reference
    analogs        the training products closest to this one in the model's fused representation F
                   (cosine similarity averaged over the seeds), with their real sales curves — what the
                   model "thinks" this product resembles. Models or fusion variants without F fall back
                   to the store's pooled image ⊕ text vectors.

Attention maps are averaged over the run's seeds. Variants without one direction (t2i, i2t, concat, ...)
show what they have and say what they lack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import torch

from sf.apply.explain_figure import draw
from sf.apply.new_products import (Extract, TrainingSide, load_new_dataset, resolve_features, run_folder,
                                      training_inputs)
from sf.cache.reader import Features, load_features
from sf.data.atomic import atomic_write_text
from sf.data.contract import Dataset
from sf.errors import SfError
from sf.forecast.batching import TensorInputs
from sf.forecast.checkpoints import LoadedRun, check_fingerprint, load_run
from sf.forecast.inputs import Inputs, build_inputs
from sf.forecast.metrics import point_forecast
from sf.forecast.run_folder import read_split
from sf.plain import plain

# (descriptions, store attributes) -> per description, the string of each stored token ("" = special token)
WordsFor = Callable[[list[str], dict], list[list[str]]]
BATCH = 512


@dataclass(frozen=True)
class ExplainConfig:
    model: Path
    product: str
    data: Path | None = None  # folder holding the product; default: the model's training data
    store: Path | None = None  # its features; default: the training store, or <run>/features_new.h5 with --data
    out: Path | None = None  # PNG; default <run>/explain/<product>.png
    analogs: int = 5
    top_words: int = 8
    device: str = "cpu"
    allow_stale_features: bool = False  # use features whose image/text changed since extraction


@dataclass
class Analog:
    product_id: str
    similarity: float
    y: np.ndarray  # (H,) units, 0 where not observed
    mask: np.ndarray  # (H,) bool
    image: Path | None


@dataclass
class Explanation:
    product_id: str
    text: str
    image: Path | None
    has_image: bool
    has_text: bool
    regions: np.ndarray | None  # (grid_h, grid_w) share of attention per region (sums to 1)
    words: list[tuple[str, float]]  # most attended first: (token, share of attention)
    forecast: np.ndarray  # (H,) point forecast, units
    band: np.ndarray | None  # (H, 2) lowest / highest quantile
    quantiles: tuple[float, ...]
    actual: np.ndarray | None  # (H,) units where known
    actual_mask: np.ndarray | None
    reference: np.ndarray | None  # (H,) training mean curve
    analogs: list[Analog]
    similarity: str  # what the analogs' similarity is measured on
    png: Path | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        def arr(a):
            return None if a is None else np.asarray(a, np.float64).round(6).tolist()

        return {
            "product_id": self.product_id, "text": self.text, "image": str(self.image) if self.image else None,
            "has_image": self.has_image, "has_text": self.has_text, "region_attention": arr(self.regions),
            "words": [[w, round(float(s), 6)] for w, s in self.words], "forecast": arr(self.forecast),
            "band": arr(self.band), "quantiles": list(self.quantiles),
            "actual": arr(np.where(self.actual_mask, self.actual, np.nan)) if self.actual is not None else None,
            "training_mean_curve": arr(self.reference), "similarity": self.similarity,
            "analogs": [{"product_id": a.product_id, "similarity": round(a.similarity, 6),
                         "sales": arr(np.where(a.mask, a.y, np.nan))} for a in self.analogs],
            "notes": self.notes,
        }


# ---------------------------------------------------------------- the model's view of products


@torch.no_grad()
def fused_and_attention(run: LoadedRun, inp: Inputs) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Per seed: F (N, d) and the attention maps {"t2i": (N, L, R), "i2t": (N, R, L)} the variant has;
    empty lists for a model without a fused representation (ForecastModel.representation)."""
    fused, attention = [], []
    for m in run.models:
        data = TensorInputs.for_model(inp, m.model, m.y_scale, m.target)
        m.model.eval()
        fs, att = [], {}
        for idx in torch.arange(len(inp)).split(BATCH):
            out = m.model.representation(data.batch(idx))
            if out is None:
                return [], []
            fs.append(out.fused.float().cpu().numpy())
            for k, v in out.attention.items():
                att.setdefault(k, []).append(v.float().cpu().numpy())
        fused.append(np.concatenate(fs))
        attention.append({k: np.concatenate(v) for k, v in att.items()})
    return fused, attention


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def pooled_vectors(inp: Inputs) -> np.ndarray:
    """Store features as one vector per product: unit image pooled ⊕ unit text pooled (zeros when absent)."""
    return np.concatenate([_unit(inp.image_pooled) * inp.has_image[:, None],
                           _unit(inp.text_pooled) * inp.has_text[:, None]], axis=1)


def nearest(query: list[np.ndarray], pool: list[np.ndarray], k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities (averaged over the spaces given, e.g. seeds) of the `k` most similar."""
    sims = np.mean([_unit(p) @ _unit(np.ravel(q)) for q, p in zip(query, pool)], axis=0)
    sims = np.where(exclude, -np.inf, sims)
    order = np.argsort(-sims, kind="stable")[:k]
    order = order[np.isfinite(sims[order])]
    return order, sims[order]


def region_weights(t2i: np.ndarray, mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(L, R) word-over-region attention of one product -> (grid_h, grid_w) mean over its real words."""
    words = t2i[mask] if mask.any() else t2i[:1]
    w = words.mean(axis=0)
    return (w / max(w.sum(), 1e-12)).reshape(grid)


def word_weights(i2t: np.ndarray, mask: np.ndarray, tokens: list[str]) -> list[tuple[str, float]]:
    """(R, L) region-over-word attention of one product -> words ranked by their share of the attention
    (repeats summed). Word pieces ("cash", "##mere") are joined into their word ("cashmere") with their shares
    summed. Special tokens ("") and punctuation keep their share but are not listed."""
    w = i2t.mean(axis=0)
    total = float(w[mask[: len(w)]].sum()) or 1.0
    words: list[list] = []  # [text, share] in reading order
    joinable = False  # whether the last listed word may take a following "##" piece
    for i, tok in enumerate(tokens[: len(w)]):
        if not mask[i]:
            joinable = False
            continue
        if tok.startswith("##") and joinable:
            words[-1][0] += tok[2:]
            words[-1][1] += float(w[i])
        elif any(c.isalnum() for c in tok):
            words.append([tok.removeprefix("##"), float(w[i])])
            joinable = True
        else:
            joinable = False
    share: dict[str, float] = {}
    for word, s in words:
        share[word] = share.get(word, 0.0) + s
    return sorted(((t, s / total) for t, s in share.items()), key=lambda x: -x[1])


# ---------------------------------------------------------------- assembling one explanation


def _one_product(ds: Dataset, product: str) -> Dataset:
    if product not in set(ds.product_ids):
        raise SfError(f"product {product!r} is not in {ds.root} (products table); check the id or pass --data DIR")
    return replace(ds, products=ds.products.filter(pl.col("product_id") == product))


def _reference_curve(run: LoadedRun, notes: list[str]) -> np.ndarray | None:
    """The training products' mean curve, exactly as `sf train` and `sf evaluate` use it."""
    from sf.apply.evaluate import training_reference  # evaluate imports from this module's neighbours

    try:
        return training_reference(run).mean_curve
    except SfError as e:
        notes.append(f"no training mean curve: {e}")
        return None


def explain_product(cfg: ExplainConfig, extract: Extract | None = None, words_for: WordsFor | None = None,
                    console=None, run: LoadedRun | None = None) -> Explanation:
    """Attention, forecast and analogs of `cfg.product`; writes the PNG and its JSON."""
    run = run or load_run(cfg.model, cfg.device)
    notes: list[str] = []
    check = not cfg.allow_stale_features
    train_side = training_inputs(run, notes, check)
    ds, feats = _product_source(run, cfg.data, cfg.store, train_side, extract, console, notes)
    ds = _one_product(ds, cfg.product)
    exp = explain_products(run, ds, feats, train_side, words_for, analogs=cfg.analogs, top_words=cfg.top_words,
                           check_content=check)[0]
    exp.notes[:0] = notes
    out = Path(cfg.out) if cfg.out is not None else run_folder(run) / "explain" / f"{_safe(cfg.product)}.png"
    exp.png = draw(exp, out, _preprocessing(feats.attrs), title=f"{cfg.product} — {run_folder(run).name}")
    atomic_write_text(out.with_suffix(".json"), json.dumps({"config": plain(cfg), **exp.to_json()}, indent=2))
    return exp


def _product_source(run: LoadedRun, data: Path | None, store: Path | None, train_side: TrainingSide,
                    extract: Extract | None, console, notes: list[str]) -> tuple[Dataset, Features]:
    """The dataset holding the products to explain and their features: `data` (new products, features found
    or extracted as `sf predict` does) or, without it, the model's own training data and store."""
    train_ds, train_feats, _ = train_side
    if data is not None:
        ds, more = load_new_dataset(data, run)
        notes += more
        return ds, resolve_features(run, ds, store, extract, console)
    if train_ds is None:
        raise SfError(f"{run_folder(run)}: the training data is not at hand; pass --data DIR (and --store)")
    if store is not None:
        feats = load_features(store)
        check_fingerprint(run, feats.attrs)
        return train_ds, feats
    return train_ds, train_feats


def explain_products(run: LoadedRun, ds: Dataset, feats: Features, train_side: TrainingSide,
                     words_for: WordsFor | None = None, analogs: int = 5, top_words: int = 8,
                     check_content: bool = True) -> list[Explanation]:
    """Attention, forecast and analogs of every product in `ds` (in its order), computed in batches: what
    `sf explain` shows for one product and `sf report` for all of them. Nothing is written."""
    train_ds, _, train_inp = train_side
    inp = build_inputs(ds, feats, horizon=run.horizon, attribute_vocab=run.attribute_vocab,
                       check_content=check_content)
    texts = [t or "" for t in ds.products["text"].to_list()]
    image_paths = ds.image_paths()
    q = tuple(run.quantiles)
    yhat = run.predict(inp)
    point = point_forecast(yhat, q)
    band = np.stack([yhat[..., 0], yhat[..., -1]], axis=-1) if yhat.ndim == 3 else None
    reference_notes: list[str] = []
    reference = _reference_curve(run, reference_notes)

    fused, attention = fused_and_attention(run, inp)
    grid = (int(run.store.get("grid_h", 0) or 0), int(run.store.get("grid_w", 0) or 0))
    t2i = i2t = None
    common: list[str] = list(reference_notes)
    if not attention:
        common.append(f"model {run.models[0].model_name!r} has no fusion attention to show")
    else:
        t2i = np.mean([a["t2i"] for a in attention], axis=0) if "t2i" in attention[0] else None
        i2t = np.mean([a["i2t"] for a in attention], axis=0) if "i2t" in attention[0] else None
        if t2i is None and i2t is None:
            common.append(f"fusion {run.config.fusion!r} has no attention maps (no image↔text attention)")
    token_notes: list[str] = []
    tokens = (_tokens(texts, feats.attrs, words_for, inp.text_mask.shape[1], token_notes)
              if i2t is not None else [[] for _ in texts])

    near, similarity = _analogs(run, inp, fused, train_inp, analogs)
    train_paths = train_ds.image_paths() if train_ds is not None else {}

    out = []
    for i, pid in enumerate(inp.product_ids):
        has_image, has_text = bool(inp.has_image[i]), bool(inp.has_text[i])
        notes = list(common)
        regions, words = None, []
        if t2i is not None and has_image and grid[0] * grid[1] == t2i.shape[-1] > 1:
            regions = region_weights(t2i[i], inp.text_mask[i], grid)
        elif attention and not has_image:
            notes.append("the product has no image: the model used its learned 'missing image' embedding")
        elif i2t is not None and t2i is None:
            notes.append(f"fusion {run.config.fusion!r} has the regions' attention over the words, none of the words "
                         "over the regions: no region map")
        if i2t is not None and has_text:
            notes += token_notes
            words = word_weights(i2t[i], inp.text_mask[i], tokens[i])[:top_words]
        elif attention and not has_text:
            notes.append("the product has no description: the model used its learned 'missing text' embedding")
        idx, sims = near[i]
        known = bool(inp.y_mask[i].any())
        out.append(Explanation(
            product_id=pid, text=texts[i], image=image_paths.get(pid), has_image=has_image, has_text=has_text,
            regions=regions, words=words, forecast=point[i], band=None if band is None else band[i], quantiles=q,
            actual=inp.y[i] if known else None, actual_mask=inp.y_mask[i] if known else None, reference=reference,
            analogs=[Analog(train_inp.product_ids[j], float(s), train_inp.y[j], train_inp.y_mask[j],
                            train_paths.get(train_inp.product_ids[j])) for j, s in zip(idx, sims)],
            similarity=similarity, notes=notes,
        ))
    return out


def _analogs(run: LoadedRun, inp: Inputs, fused: list[np.ndarray], train_inp: Inputs | None, k: int):
    """Per product, the indices and similarities of its `k` nearest training products, and what the similarity
    is measured on: the model's fused vector F where it has one, else the store's pooled vectors."""
    if train_inp is None or k <= 0:
        return [(np.zeros(0, int), np.zeros(0))] * len(inp), "none"
    # Analogs come from the products the model trained on, never from its validation or test products.
    train_ids = set(read_split(run_folder(run))["train"])  # as `sf train` split them, not re-derived
    in_train = np.array([p in train_ids for p in train_inp.product_ids])
    excluded = ~train_inp.y_mask.any(axis=1) | ~in_train
    ids = np.asarray(train_inp.product_ids)
    if fused and run.config.fusion not in ("none",):
        train_fused, _ = fused_and_attention(run, train_inp)
        query, pool = (lambda i: [f[i] for f in fused]), train_fused
        similarity = f"cosine similarity of the model's fused vector F (mean over {len(fused)} seed(s))"
    else:
        vectors = pooled_vectors(inp)
        query, pool = (lambda i: [vectors[i]]), [pooled_vectors(train_inp)]
        similarity = "cosine similarity of the store's pooled image ⊕ text vectors"
    return [nearest(query(i), pool, k, excluded | (ids == pid)) for i, pid in enumerate(inp.product_ids)], similarity


def _tokens(texts: list[str], attrs: dict, words_for: WordsFor | None, length: int, notes: list[str]) -> list[list[str]]:
    if words_for is not None:
        try:
            return words_for(texts, attrs)
        except SfError as e:
            notes.append(f"cannot re-tokenise the description ({e}); words are shown by position")
    else:
        notes.append("no tokenizer wired in: words are shown by position")
    return [[f"#{i + 1}" for i in range(length)] for _ in texts]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "product"


def _preprocessing(attrs: dict) -> dict:
    try:
        prep = json.loads(attrs.get("preprocessing") or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return prep.get("image", prep) if isinstance(prep, dict) else {}
