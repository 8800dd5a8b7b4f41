"""Model inputs: the cached features and the dataset's sales, joined by product and held in memory.

Everything a head, a baseline or a metric needs, as numpy arrays aligned row by row, built once per
run so no batch ever touches HDF5 or the filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from sf.cache.grid import SparseGrid, concat_grids
from sf.cache.reader import Features
from sf.data.contract import PERIOD_DAYS, Dataset, exog_window
from sf.forecast.freshness import check_fresh

CALENDAR_FEATURES = ("woy_sin", "woy_cos", "step_frac", "has_release_date")


@dataclass
class Inputs:
    product_ids: list[str]
    horizon: int
    image_grid: SparseGrid | np.ndarray  # (N, R, C) float16 (store rows by slot); R = 1 (pooled) for pooled-only stores
    image_pooled: np.ndarray  # (N, C) float16
    has_image: np.ndarray  # (N,) bool
    text_tokens: np.ndarray  # (N, L, D) float16; (N, 1, 1) zeros when the store has no text
    text_mask: np.ndarray  # (N, L) bool
    text_pooled: np.ndarray  # (N, D) float16
    has_text: np.ndarray  # (N,) bool
    exog: np.ndarray  # (N, lookback + H, K) float32 in [0, 1]; steps >= lookback are the horizon
    exog_names: list[str]
    calendar: np.ndarray  # (N, H, len(CALENDAR_FEATURES)) float32
    attributes: np.ndarray  # (N, A) int64 codes; 0 = unknown value
    attribute_names: list[str]
    attribute_vocab: dict[str, list[str]]  # name -> values; code k means vocab[k - 1]
    release: np.ndarray  # (N,) datetime64[D], NaT when unknown
    y: np.ndarray  # (N, H) float32 units, 0 where not observed
    y_mask: np.ndarray  # (N, H) bool, True where a sale figure exists
    split: np.ndarray | None  # (N,) str from the products table's split column, if any
    # (N, P) float32 popularity signals from earlier training products (sf.forecast.popularity); set by
    # training and prediction from the model's reference products, never by build_inputs
    popularity: np.ndarray | None = None
    period_days: int = 7  # days per sales step (the dataset's period)

    def __len__(self) -> int:
        return len(self.product_ids)

    def take(self, idx) -> "Inputs":
        """Rows `idx` (an index array or boolean mask) as a new Inputs; shared metadata is kept."""
        idx = np.asarray(idx, dtype=np.int64 if len(idx) == 0 else None)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = {name: getattr(self, name)[idx] for name in self.row_fields()}
        out["product_ids"] = [self.product_ids[i] for i in idx]
        return replace(self, **out)

    def row_fields(self) -> list[str]:
        """The array fields with one row per product (what take and concat select); the rest is shared metadata."""
        return [f.name for f in fields(self) if isinstance(v := getattr(self, f.name), (np.ndarray, SparseGrid))
                and v.ndim >= 1 and v.shape[0] == len(self)]

    @property
    def lookback(self) -> int:
        return self.exog.shape[1] - self.horizon


def concat(parts: list[Inputs]) -> Inputs:
    """The rows of several Inputs of the same store and data, one after the other (e.g. train + validation)."""
    first = parts[0]
    out = {name: (concat_grids if isinstance(getattr(first, name), SparseGrid) else np.concatenate)(
        [getattr(part, name) for part in parts]) for name in first.row_fields()}
    out["product_ids"] = [p for part in parts for p in part.product_ids]
    return replace(first, **out)


def with_training_vocab(inp: Inputs, train_rows) -> Inputs:
    """Attribute codes re-numbered over the values the training products have; any other value becomes
    0 (unknown), which is all a model can know about it: no embedding is ever trained for it, and a new
    product with that value is coded 0 by `sf predict` too. The saved vocabulary then never depends
    on validation or test products."""
    train_codes = inp.attributes[np.asarray(train_rows)]
    codes = np.zeros_like(inp.attributes)
    vocab: dict[str, list[str]] = {}
    for j, name in enumerate(inp.attribute_names):
        seen = sorted(set(train_codes[:, j].tolist()) - {0})
        renumber = np.zeros(len(inp.attribute_vocab[name]) + 1, dtype=np.int64)
        renumber[seen] = np.arange(1, len(seen) + 1)
        codes[:, j] = renumber[inp.attributes[:, j]]
        vocab[name] = [inp.attribute_vocab[name][k - 1] for k in seen]
    return replace(inp, attributes=codes, attribute_vocab=vocab)


def _attribute_codes(ds: Dataset, ids: list[str], vocab: dict[str, list[str]] | None):
    names = list(vocab) if vocab is not None else list(ds.attribute_columns)
    prod = ds.products.select(["product_id", *[n for n in names if n in ds.products.columns]])
    values = {r[0]: r[1:] for r in prod.iter_rows()}
    cols = [n for n in names if n in ds.products.columns]
    if vocab is None:
        vocab = {n: sorted({v for v in ds.products[n].to_list() if v}) for n in names}
    codes = np.zeros((len(ids), len(names)), dtype=np.int64)
    lookup = {n: {v: k + 1 for k, v in enumerate(vocab[n])} for n in names}
    for i, pid in enumerate(ids):
        row = dict(zip(cols, values.get(pid, ())))
        for j, n in enumerate(names):
            codes[i, j] = lookup[n].get(row.get(n, ""), 0)
    return codes, names, vocab


def _calendar(release: np.ndarray, horizon: int, period: str) -> np.ndarray:
    n = len(release)
    cal = np.zeros((n, horizon, len(CALENDAR_FEATURES)), dtype=np.float32)
    cal[:, :, 2] = np.arange(horizon, dtype=np.float32) / max(horizon - 1, 1)
    known = ~np.isnat(release)
    if known.any():
        days = (release[known] - np.datetime64("1970-01-01", "D")).astype(np.float64)
        t = days[:, None] + np.arange(horizon)[None, :] * PERIOD_DAYS[period]
        phase = 2 * np.pi * (t % 365.25) / 365.25
        cal[known, :, 0] = np.sin(phase)
        cal[known, :, 1] = np.cos(phase)
        cal[known, :, 3] = 1.0
    return cal


def build_inputs(
    ds: Dataset,
    feats: Features,
    horizon: int | None = None,
    product_ids: list[str] | None = None,
    attribute_vocab: dict[str, list[str]] | None = None,
    check_content: bool = True,
) -> Inputs:
    """Join the store and the dataset for `product_ids` (default: every product in the dataset).

    Pass the training run's `attribute_vocab` when building inputs for new products, so codes match.
    `check_content=False` skips refusing features whose image/text changed since extraction (sf.forecast.freshness).
    """
    ids = ds.product_ids if product_ids is None else list(product_ids)
    h = horizon if horizon is not None else ds.max_horizon()
    rows = feats.rows(ids)
    if check_content:
        check_fresh(feats, ds, ids, rows)
    n = len(ids)

    grid = feats.image_grid[rows] if feats.image_grid is not None else feats.image_pooled[rows][:, None, :]
    if feats.text_tokens is not None:
        tokens, mask, pooled = feats.text_tokens[rows], feats.text_mask[rows], feats.text_pooled[rows]
    else:
        tokens = np.zeros((n, 1, 1), np.float16)
        mask = np.zeros((n, 1), bool)
        pooled = np.zeros((n, 1), np.float16)

    _, y, y_mask = ds.sales_matrix(ids, h)
    exog, exog_names = exog_window(ds, ids, h)
    rel_map = dict(ds.products.select("product_id", "release_date").iter_rows())
    release = np.array([rel_map.get(p) or np.datetime64("NaT") for p in ids], dtype="datetime64[D]")
    codes, names, vocab = _attribute_codes(ds, ids, attribute_vocab)
    split = None
    if "split" in ds.products.columns:
        smap = dict(ds.products.select("product_id", "split").iter_rows())
        split = np.array([smap.get(p) for p in ids], dtype=object)

    return Inputs(
        product_ids=ids,
        horizon=h,
        image_grid=grid,
        image_pooled=feats.image_pooled[rows],
        has_image=feats.has_image[rows],
        text_tokens=tokens,
        text_mask=mask,
        text_pooled=pooled,
        has_text=mask.any(axis=1),
        exog=exog,
        exog_names=exog_names,
        calendar=_calendar(release, h, ds.meta.period),
        attributes=codes,
        attribute_names=names,
        attribute_vocab=vocab,
        release=release,
        y=y,
        y_mask=y_mask,
        split=split,
        period_days=PERIOD_DAYS[ds.meta.period],
    )
