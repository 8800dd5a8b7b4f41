"""Rolling-origin folds by release date: what a retailer knows at each cutoff, and what it then forecasts.

Fold k has a cutoff day. It trains on the products released before the cutoff, its early-stopping validation
carved from the latest of them the way `sf train`'s time split carves it (splits._time, the config's train : val
shares), and forecasts the products released from the cutoff on:

    seasons   (default when the products table has a `season` column) the last K seasons by first release:
              the cutoff is a season's first release day, the forecast products are that season's
    windows   K equal windows of release days over the latest half of the release range, or with
              `window_weeks` the last K windows of that many weeks; the forecast products are those released
              in the window

What the fold's models get (`fold_inputs`) holds only what is known at the cutoff: a training or validation
product's sales are kept for the weeks that ended by the cutoff (the later ones are masked as unobserved), the
forecast products' sales are blanked (zeros, all masked: scoring reads them from the unblinded inputs, never
from what a model is given), and without known-future covariates every product's exogenous values after its
release are zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sf.errors import SfError
from sf.forecast.inputs import Inputs
from sf.forecast.splits import make_split

KINDS = ("auto", "seasons", "windows")


@dataclass(frozen=True)
class Fold:
    index: int  # 1-based, oldest cutoff first
    label: str  # the season's name, or the window's first day
    cutoff: np.datetime64  # first day not known to the fold's models
    end: np.datetime64  # the last forecast product's release day
    split: dict[str, list[str]]  # train / val / test product ids (test: the forecast products)

    def to_dict(self) -> dict:
        return {"fold": self.index, "label": self.label, "cutoff": str(self.cutoff), "last_release": str(self.end),
                **{f"{k}_products": len(v) for k, v in self.split.items()}}


def make_folds(inp: Inputs, folds: int = 4, kind: str = "auto", seasons: dict[str, str] | None = None,
               window_weeks: int | None = None, fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
               ) -> tuple[list[Fold], str]:
    """The folds and one line saying how their cutoffs were chosen. `seasons` maps product id -> season."""
    if kind not in KINDS:
        raise SfError(f"--cutoffs {kind!r}: choose one of {', '.join(KINDS)}")
    if folds < 1:
        raise SfError(f"--folds {folds}: need at least 1")
    dated = ~np.isnat(inp.release)
    if not dated.any():
        raise SfError("a backtest needs release dates, but no product has one")
    if kind == "auto":
        kind = "seasons" if seasons and window_weeks is None else "windows"
    if kind == "seasons":
        if not seasons:
            raise SfError("--cutoffs seasons: the products table has no `season` column")
        windows, how = _season_windows(inp, seasons, folds)
    else:
        windows, how = _date_windows(inp, folds, window_weeks)
    train_share = fractions[0] / max(fractions[0] + fractions[1], 1e-9)
    out = []
    for i, (label, cutoff, test_rows) in enumerate(windows, start=1):
        before = np.flatnonzero(dated & (inp.release < cutoff))
        if len(before) < 2 or not len(test_rows):
            raise SfError(f"fold {i} ({label}, cutoff {cutoff}): {len(before)} products released before it and "
                          f"{len(test_rows)} to forecast; use fewer --folds")
        inner = make_split(inp.take(before), "time", fractions=(train_share, 1 - train_share, 0.0))
        ids = {k: [inp.product_ids[before[j]] for j in inner[k]] for k in ("train", "val")}
        ids["test"] = [inp.product_ids[j] for j in test_rows]
        out.append(Fold(i, label, cutoff, inp.release[test_rows].max(), ids))
    return out, how


def _season_windows(inp: Inputs, seasons: dict[str, str], folds: int):
    names = np.array([seasons.get(p) or "" for p in inp.product_ids], dtype=object)
    dated = ~np.isnat(inp.release)
    starts = {}
    for s in set(names[dated]) - {""}:
        starts[s] = inp.release[dated & (names == s)].min()
    order = sorted(starts, key=lambda s: starts[s])
    if len(order) < folds + 1:
        raise SfError(f"--folds {folds}: the data has {len(order)} seasons ({', '.join(order)}); a backtest over "
                      f"seasons needs one more than its folds to train the first on")
    windows = [(s, starts[s], np.flatnonzero(dated & (names == s))) for s in order[-folds:]]
    return windows, (f"the last {folds} seasons (the products table's season column): each fold's cutoff is its "
                     "season's first release day, and it forecasts that season's products")


def _date_windows(inp: Inputs, folds: int, window_weeks: int | None):
    dated = ~np.isnat(inp.release)
    first, last = inp.release[dated].min(), inp.release[dated].max()
    end = last + np.timedelta64(1, "D")
    if window_weeks is not None:
        if window_weeks < 1:
            raise SfError(f"--window {window_weeks}: need at least 1 week")
        step = np.timedelta64(7 * window_weeks, "D")
        how = f"the last {folds} windows of {window_weeks} weeks of release dates"
    else:
        span = (end - first).astype(np.int64)
        step = np.timedelta64(max(1, span // (2 * folds)), "D")
        how = f"{folds} equal windows of release dates ({step.astype(int)} days each) over the latest half of them"
    windows = []
    for k in range(folds, 0, -1):
        lo, hi = end - k * step, end - (k - 1) * step
        windows.append((str(lo), lo, np.flatnonzero(dated & (inp.release >= lo) & (inp.release < hi))))
    return windows, how


def known_at(inp: Inputs, cutoff: np.datetime64) -> np.ndarray:
    """(N, H) bool: the sales weeks that had ended by the cutoff day (a product's step s covers the days
    [release + s·P, release + (s+1)·P))."""
    steps = np.arange(1, inp.horizon + 1) * inp.period_days
    known = ~np.isnat(inp.release)
    ends = np.where(known, inp.release, np.datetime64("1970-01-01"))[:, None] + steps.astype("timedelta64[D]")
    return known[:, None] & (ends <= cutoff)


def fold_inputs(inp: Inputs, fold: Fold, exog_future: bool = False) -> Inputs:
    """What the fold's models read: the module docstring's rules applied to every product of `inp`."""
    index = {p: i for i, p in enumerate(inp.product_ids)}
    test = np.asarray([index[p] for p in fold.split["test"]], dtype=np.int64)
    y_mask = inp.y_mask & known_at(inp, fold.cutoff)
    y_mask[test] = False
    y = np.where(y_mask, inp.y, 0.0).astype(inp.y.dtype)
    exog = inp.exog
    if not exog_future and inp.horizon:
        exog = exog.copy()
        exog[:, inp.lookback:] = 0.0
    return replace(inp, y=y, y_mask=y_mask, exog=exog)
