"""Train / validation / test splits by product. Early stopping and every choice use validation only.

    random  7:2:1 by product, shuffled with `seed` (the paper)
    time    by release date: the latest releases are test, the ones before them validation, the rest
            train — how a retailer forecasts next season. Products released on the same day stay together;
            products without a release date are always train.
    column  the products table's `split` column (train / val / test)
    auto    time when release dates exist, else random
"""

from __future__ import annotations

import numpy as np

from sf.data.contract import SPLITS
from sf.errors import SfError
from sf.forecast.inputs import Inputs

EVAL_SPLITS = SPLITS[1:]  # what is scored: validation (where choices are made) and test (reported beside)


def make_split(inp: Inputs, kind: str = "auto", seed: int = 0,
               fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)) -> dict[str, np.ndarray]:
    """Row indices of `inp` for train / val / test (sorted, disjoint, covering every row)."""
    kind = resolve_kind(inp, kind)
    makers = {"random": _random, "time": _time, "column": _column}
    if kind not in makers:
        raise SfError(f"unknown split {kind!r}; choose from auto, {', '.join(makers)}")
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise SfError(f"split fractions must be three shares summing to 1, got {list(fractions)}")
    out = makers[kind](inp, seed, fractions)
    out = {k: np.sort(np.asarray(out[k], dtype=np.int64)) for k in SPLITS}
    if len(out["train"]) == 0:
        raise SfError(f"{kind} split left no training products ({len(inp)} products in all)")
    return out


def resolve_kind(inp: Inputs, kind: str) -> str:
    """'auto' becomes 'time' when any product has a release date, else 'random'; others stay."""
    if kind == "auto":
        return "time" if (~np.isnat(inp.release)).any() else "random"
    return kind


def _random(inp: Inputs, seed: int, fractions) -> dict[str, np.ndarray]:
    n = len(inp)
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(fractions[2] * n), round(fractions[1] * n)
    return {"test": perm[:n_test], "val": perm[n_test:n_test + n_val], "train": perm[n_test + n_val:]}


def _time(inp: Inputs, seed: int, fractions) -> dict[str, np.ndarray]:
    dated = np.flatnonzero(~np.isnat(inp.release))
    if dated.size == 0:
        raise SfError("time split needs release dates, but no product has one (use --split random)")
    days = inp.release[dated].astype(np.int64)
    # Walk back from the latest release day, one whole day at a time, until each share is filled.
    order = np.unique(days)[::-1]
    count = {d: c for d, c in zip(*np.unique(days, return_counts=True))}
    n = len(dated)
    want_test, want_val = fractions[2] * n, (fractions[1] + fractions[2]) * n
    test_days, val_days, taken = set(), set(), 0
    for d in order:
        if taken < want_test and fractions[2] > 0:
            test_days.add(d)
        elif taken < want_val and fractions[1] > 0:
            val_days.add(d)
        else:
            break
        taken += count[d]
    is_test = np.isin(days, list(test_days))
    is_val = np.isin(days, list(val_days))
    undated = np.flatnonzero(np.isnat(inp.release))
    return {
        "test": dated[is_test],
        "val": dated[is_val],
        "train": np.concatenate([dated[~is_test & ~is_val], undated]),
    }


def _column(inp: Inputs, seed: int, fractions) -> dict[str, np.ndarray]:
    if inp.split is None:
        raise SfError("--split column needs a 'split' column (train/val/test) in the products table")
    return {k: np.flatnonzero(inp.split == k) for k in SPLITS}


def describe(inp: Inputs, split: dict[str, np.ndarray]) -> dict:
    """Sizes, release-date ranges and the share of products without image / text, per split."""
    out = {}
    for k, idx in split.items():
        rel = inp.release[idx]
        rel = rel[~np.isnat(rel)]
        out[k] = {
            "products": int(len(idx)),
            "first_release": str(rel.min()) if rel.size else None,
            "last_release": str(rel.max()) if rel.size else None,
            "no_image_share": float(1 - inp.has_image[idx].mean()) if len(idx) else 0.0,
            "no_text_share": float(1 - inp.has_text[idx].mean()) if len(idx) else 0.0,
        }
    return out
