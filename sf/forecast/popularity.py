"""Popularity signals from earlier products' sales (POP / MuQAR style), known at a new product's release.

For a product released on day r, only reference products (the model's training products) whose sales over
the horizon were all in by r count (released at least H steps before r), so a product's signals never
contain its own sales, nor a single week sold after its release, and a new product's signals are computed
exactly the same way:

    level(q)        = log(1 + mean units per observed week of q / ū)            (ū: the reference's mean)
    same value a    mean level and log(1 + count) of the products with p's value of attribute a whose sales
                    came in during the year before r (the value's recent popularity; its long-run one is the
                    embedding's job)
    last year       mean level of all products released within `window` days of r − 365 days (the same
                    time of the previous year: seasonality and the year-on-year drift of the sales level)
    past year       mean level of all products whose sales came in during the year before r
    recent sales    per window w of the weeks before r (the last 4, 5–13, 14–26, 27–52) and per attribute a
                    (and over all products): log(1 + units per product-week / ū) sold in w by the products with
                    p's value of a, and log(1 + product-weeks). Weeks sold by then count, even of products still
                    on sale: what is selling now, and the level of the season p belongs to, as a buyer sees it
                    the day p comes out. Needs no complete horizon, so it is the most current signal.
                    Only with TrainConfig.recent_sales, off by default since docs/tuning-log.md row 78: they
                    carried a stale level into a season forecast after a gap.

A missing signal (no such product, unknown date or value) is the reference's overall mean level with
count 0, so the model can tell "no evidence" from "average". The reference is a few arrays (release day,
attribute codes, level and weekly units per product) that travel in every checkpoint, so `sf predict` needs no
training data. It holds every product whose sales the run trains or validates on: a validation product's
signals may then count earlier validation products' weeks, exactly what a retailer knows on its release day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sf.forecast.inputs import Inputs

YEAR = 365
WINDOW = 42  # days either side of "the same day last year"
RECENT_WEEKS = (0, 4, 13, 26, 52)  # window edges, in whole weeks before the release


@dataclass(frozen=True)
class PopularityReference:
    release_day: np.ndarray  # (R,) int days since 1970, products without a date dropped
    known_day: np.ndarray  # (R,) int: the day its last horizon step's sales were in (release + H steps)
    attributes: np.ndarray  # (R, A) int codes (the training vocabulary; 0 = unknown)
    level: np.ndarray  # (R,) float
    overall: float  # mean level, the "no evidence" value
    # (R, H + 1) cumulative units / ū and observed steps over each product's horizon; None when the run has no
    # recent-sales signals (TrainConfig.recent_sales, and checkpoints from before them): a checkpoint keeps
    # computing the signals it was trained on
    units_cum: np.ndarray | None = None
    weeks_cum: np.ndarray | None = None
    period_days: int = 7

    @classmethod
    def from_inputs(cls, inp: Inputs, y_scale: float, recent: bool = True) -> "PopularityReference":
        """The reference of `inp`'s products; without the weekly units (`recent=False`) it yields no recent-sales signals."""
        known = ~np.isnat(inp.release)
        obs = inp.y_mask.sum(1)
        mean_units = np.where(obs > 0, (inp.y * inp.y_mask).sum(1) / np.maximum(obs, 1), np.nan)
        level = np.log1p(mean_units / y_scale)
        keep = known & np.isfinite(level)
        lv = level[keep].astype(np.float32)
        released = _days(inp.release[keep])
        units = np.where(inp.y_mask[keep], inp.y[keep], 0.0) / y_scale
        zero = np.zeros((len(lv), 1), np.float32)
        return cls(release_day=released, known_day=released + inp.horizon * inp.period_days,
                   attributes=inp.attributes[keep].astype(np.int64), level=lv,
                   overall=float(lv.mean()) if lv.size else 0.0,
                   units_cum=np.concatenate([zero, np.cumsum(units, 1)], 1).astype(np.float32) if recent else None,
                   weeks_cum=np.concatenate([zero, np.cumsum(inp.y_mask[keep], 1)], 1).astype(np.float32) if recent else None,
                   period_days=inp.period_days)

    @property
    def recent(self) -> bool:
        return self.units_cum is not None

    def to_dict(self) -> dict:
        out = {"release_day": self.release_day.tolist(), "known_day": self.known_day.tolist(),
               "attributes": self.attributes.tolist(), "level": self.level.tolist(), "overall": self.overall}
        if self.recent:
            out.update(units_cum=self.units_cum.tolist(), weeks_cum=self.weeks_cum.tolist(), period_days=self.period_days)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "PopularityReference":
        a = np.asarray(d["attributes"], dtype=np.int64)
        released = np.asarray(d["release_day"], dtype=np.int64)
        # Checkpoints from before known_day counted products from their release (a look at later weeks' sales);
        # they keep computing what they were trained on.
        return cls(release_day=released, known_day=np.asarray(d.get("known_day", released), dtype=np.int64),
                   attributes=a.reshape(len(d["release_day"]), -1), level=np.asarray(d["level"], dtype=np.float32),
                   overall=float(d["overall"]),
                   units_cum=np.asarray(d["units_cum"], dtype=np.float32) if "units_cum" in d else None,
                   weeks_cum=np.asarray(d["weeks_cum"], dtype=np.float32) if "weeks_cum" in d else None,
                   period_days=int(d.get("period_days", 7)))


def n_features(n_attributes: int, recent: bool = True) -> int:
    return 2 * n_attributes + 2 + (2 * (n_attributes + 1) * (len(RECENT_WEEKS) - 1) if recent else 0)


def _days(release: np.ndarray) -> np.ndarray:
    return (release - np.datetime64("1970-01-01", "D")).astype(np.int64)


def popularity_features(inp: Inputs, ref: PopularityReference, chunk: int = 512) -> np.ndarray:
    """(N, 2A + 2) float32 signals for the products of `inp` (see the module docstring)."""
    n, a = len(inp), inp.attributes.shape[1]
    out = np.full((n, n_features(a, ref.recent)), ref.overall, dtype=np.float32)  # "no evidence" levels...
    out[:, 1 : 2 * a : 2] = 0.0  # ...and counts
    out[:, 2 * a + 3 :: 2] = 0.0
    known = ~np.isnat(inp.release)
    days = np.where(known, _days(np.where(known, inp.release, np.datetime64("1970-01-01"))), 0)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        rows = rows[known[rows]]
        if not len(rows) or not len(ref.level):
            continue
        age = days[rows, None] - ref.release_day[None, :]  # (n, R) days since each reference release
        sold = days[rows, None] >= ref.known_day[None, :]  # its sales over the horizon were in by the release
        past_year = sold & (days[rows, None] - ref.known_day[None, :] < YEAR)
        for j in range(a):
            codes = inp.attributes[rows, j]
            same = past_year & (ref.attributes[None, :, j] == codes[:, None]) & (codes[:, None] > 0)
            out[rows, 2 * j], out[rows, 2 * j + 1] = _mean(same, ref), np.log1p(same.sum(1))
        out[rows, 2 * a] = _mean(sold & (np.abs(age - YEAR) <= WINDOW), ref)
        out[rows, 2 * a + 1] = _mean(past_year, ref)
    if ref.recent and known.any() and len(ref.level):  # once for all rows: it works per release day, not per row
        out[known, 2 * a + 2 :] = _recent(days[known], inp.attributes[known], ref)
    return out


def _recent(days: np.ndarray, codes: np.ndarray, ref: PopularityReference) -> np.ndarray:
    """(n, 2 (A + 1) W) recent-sales signals (module docstring) for products released on `days`."""
    h, r = ref.units_cum.shape[1] - 1, len(ref.level)
    # Computed once per release day (a catalogue launches many products a day), then looked up per product.
    unique, at = np.unique(days, return_inverse=True)
    columns = np.arange(r)[None, :]
    # Steps of q whose whole week was over `edge` weeks before the release: floor((d - 7 edge - release_q) / 7).
    sold = [np.clip((unique[:, None] - ref.period_days * e - ref.release_day[None, :]) // ref.period_days, 0, h)
            for e in RECENT_WEEKS]
    # Per attribute, the reference sorted by value: the sums over the products sharing each value are then one
    # reduceat per window (no BLAS call: a threaded matrix product slowed 20x on a busy machine).
    groups = [_groups(ref.attributes[:, j], int(max(codes[:, j].max(initial=0), ref.attributes[:, j].max(initial=0))))
              for j in range(codes.shape[1])]
    cols = []
    for newer, older in zip(sold, sold[1:]):  # the window between the `older` and `newer` edges
        units = ref.units_cum[columns, newer] - ref.units_cum[columns, older]  # (days, R)
        weeks = ref.weeks_cum[columns, newer] - ref.weeks_cum[columns, older]
        pairs = []
        for j, by_value in enumerate(groups):
            u, w = by_value(units)[at, codes[:, j]], by_value(weeks)[at, codes[:, j]]
            pairs.append((u, np.where(codes[:, j] > 0, w, 0)))
        pairs.append((units.sum(1)[at], weeks.sum(1)[at]))
        for u, w in pairs:
            cols += [np.where(w > 0, np.log1p(u / np.maximum(w, 1)), ref.overall), np.log1p(w)]
    return np.stack(cols, 1).astype(np.float32)


def _groups(values: np.ndarray, top: int):
    """A function (n, R) -> (n, top + 1): the row sums over the reference products of each value 0..top."""
    order = np.argsort(values, kind="stable")
    present, starts = np.unique(values[order], return_index=True)

    def by_value(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], top + 1), dtype=np.float32)
        if len(order):
            out[:, present] = np.add.reduceat(x[:, order], starts, axis=1)
        return out

    return by_value


def _mean(mask: np.ndarray, ref: PopularityReference) -> np.ndarray:
    count = mask.sum(1)
    total = np.where(mask, ref.level[None, :], np.float32(0)).sum(1)
    return np.where(count > 0, total / np.maximum(count, 1), ref.overall).astype(np.float32)


def with_popularity(inp: Inputs, ref: PopularityReference) -> Inputs:
    from dataclasses import replace

    return replace(inp, popularity=popularity_features(inp, ref))
