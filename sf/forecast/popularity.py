"""Popularity signals from earlier products' sales (POP / MuQAR style), known at a new product's release.

For a product released on day r, only reference products (the model's training products) released
strictly before r count, so a training product's signals never contain its own sales or later ones, and
a new product's signals are computed exactly the same way:

    level(q)        = log(1 + mean units per observed week of q / ū)            (ū: the reference's mean)
    same value a    mean level and log(1 + count) of the products with p's value of attribute a released in
                    the year before r (the value's recent popularity; its long-run one is the embedding's job)
    last year       mean level of all products released within `window` days of r − 365 days (the same
                    time of the previous year: seasonality and the year-on-year drift of the sales level)
    past year       mean level of all products released in the year before r

A missing signal (no such product, unknown date or value) is the reference's overall mean level with
count 0, so the model can tell "no evidence" from "average". The reference is a few arrays (release day,
attribute codes, level per product) that travel in every checkpoint, so `sf predict` needs no training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sf.forecast.inputs import Inputs

YEAR = 365
WINDOW = 42  # days either side of "the same day last year"


@dataclass(frozen=True)
class PopularityReference:
    release_day: np.ndarray  # (R,) int days since 1970, products without a date dropped
    attributes: np.ndarray  # (R, A) int codes (the training vocabulary; 0 = unknown)
    level: np.ndarray  # (R,) float
    overall: float  # mean level, the "no evidence" value

    @classmethod
    def from_inputs(cls, inp: Inputs, y_scale: float) -> "PopularityReference":
        known = ~np.isnat(inp.release)
        obs = inp.y_mask.sum(1)
        mean_units = np.where(obs > 0, (inp.y * inp.y_mask).sum(1) / np.maximum(obs, 1), np.nan)
        level = np.log1p(mean_units / y_scale)
        keep = known & np.isfinite(level)
        lv = level[keep].astype(np.float32)
        return cls(release_day=_days(inp.release[keep]), attributes=inp.attributes[keep].astype(np.int64),
                   level=lv, overall=float(lv.mean()) if lv.size else 0.0)

    def to_dict(self) -> dict:
        return {"release_day": self.release_day.tolist(), "attributes": self.attributes.tolist(),
                "level": self.level.tolist(), "overall": self.overall}

    @classmethod
    def from_dict(cls, d: dict) -> "PopularityReference":
        a = np.asarray(d["attributes"], dtype=np.int64)
        return cls(release_day=np.asarray(d["release_day"], dtype=np.int64),
                   attributes=a.reshape(len(d["release_day"]), -1), level=np.asarray(d["level"], dtype=np.float32),
                   overall=float(d["overall"]))


def n_features(n_attributes: int) -> int:
    return 2 * n_attributes + 2


def _days(release: np.ndarray) -> np.ndarray:
    return (release - np.datetime64("1970-01-01", "D")).astype(np.int64)


def popularity_features(inp: Inputs, ref: PopularityReference, chunk: int = 512) -> np.ndarray:
    """(N, 2A + 2) float32 signals for the products of `inp` (see the module docstring)."""
    n, a = len(inp), inp.attributes.shape[1]
    out = np.full((n, n_features(a)), ref.overall, dtype=np.float32)  # "no evidence" levels...
    out[:, 1 : 2 * a : 2] = 0.0  # ...and counts
    known = ~np.isnat(inp.release)
    days = np.where(known, _days(np.where(known, inp.release, np.datetime64("1970-01-01"))), 0)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        rows = rows[known[rows]]
        if not len(rows) or not len(ref.level):
            continue
        age = days[rows, None] - ref.release_day[None, :]  # (n, R) days since each reference release
        past_year = (age > 0) & (age <= YEAR)
        for j in range(a):
            codes = inp.attributes[rows, j]
            same = past_year & (ref.attributes[None, :, j] == codes[:, None]) & (codes[:, None] > 0)
            out[rows, 2 * j], out[rows, 2 * j + 1] = _mean(same, ref), np.log1p(same.sum(1))
        out[rows, 2 * a] = _mean((age > 0) & (np.abs(age - YEAR) <= WINDOW), ref)
        out[rows, 2 * a + 1] = _mean(past_year, ref)
    return out


def _mean(mask: np.ndarray, ref: PopularityReference) -> np.ndarray:
    count = mask.sum(1)
    total = mask.astype(np.float32) @ ref.level
    return np.where(count > 0, total / np.maximum(count, 1), ref.overall).astype(np.float32)


def with_popularity(inp: Inputs, ref: PopularityReference) -> Inputs:
    from dataclasses import replace

    return replace(inp, popularity=popularity_features(inp, ref))
