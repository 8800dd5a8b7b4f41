"""Tuning-log rows 24–26, 43, 72 and 87: extra popularity signals tried for sf and not kept (none beat the defaults on validation).

    nice -n 10 python bench/experiments/extra_signals.py --signal knn --variants default --seeds 5 \
        --features /work/cache/visuelle_efficientnet_lite0.h5 --data /work/cache/data/visuelle

Appends columns to what `sf.forecast.popularity.popularity_features` computes (the model's popularity input),
then runs bench/tuning.py with the remaining arguments. Every signal is known at the product's release: it
reads only reference products whose sales over the horizon were in by then (`known_day <= release`), except
`nowcast`, which reads the complete weeks sold before the release, as sf's recent-sales signals do. Rows 24–72
ran with the recent-sales signals on, sf's default then: add `--set recent_sales=true` to rerun them as they were.

    knn        "similar products": among those reference products, the 20 nearest by the cosine of the pooled
               description embedding (all of them, and those sold during the last year): their mean level,
               mean similarity and log(1 + count)
    knn_shape  knn + the 20 nearest products' mean weekly share of their horizon's units (the curve's shape)
    seasonal   per attribute: mean level and log(1 + count) of the products with the same value released
               within 42 days of the same day a year before (each attribute's season a year ago)
    launch     the launch the product is part of: log(1 + number of products of the dataset released the same
               day), and per attribute log(1 + those with the product's value). The retailer's own launch plan
               for that day, known on it; no sales are read
    pairs      per pair of attributes: mean level and log(1 + count) of the products sharing both of the
               product's values (all sold by the release, and those sold in the last year): interactions
               such as category x colour, which the per-attribute signals average away
    nowcast    how the products launched in the last 6 / 13 weeks are selling so far: per window, overall and per
               attribute value, log(units sold in their complete weeks before the release / units expected at
               their age) and log(1 + their count); the expectation is the reference's mean cumulative share of a
               horizon's units at that age (a fixed shape of the run) times its mean total, so a product in its
               second week is not read as a slow seller (recent sales mix ages)

Kept out of sf: they are patches for an experiment, not a feature (docs/tuning-log.md, fourth and fifth rounds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from sf.forecast import fit as F  # noqa: E402
from sf.forecast import popularity as P  # noqa: E402

K = 20
WINDOW = 42
_plain_reference = P.PopularityReference.from_inputs.__func__
_plain_features = P.popularity_features


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


def _reference_with_embeddings(cls, inp, y_scale, **kw):
    ref = _plain_reference(cls, inp, y_scale, **kw)
    obs = inp.y_mask.sum(1)
    mean_units = np.where(obs > 0, (inp.y * inp.y_mask).sum(1) / np.maximum(obs, 1), np.nan)
    keep = ~np.isnat(inp.release) & np.isfinite(np.log1p(mean_units / y_scale))  # the rows from_inputs keeps
    units = np.where(inp.y_mask[keep], inp.y[keep], 0.0)
    object.__setattr__(ref, "emb", _unit_rows(inp.text_pooled)[keep])
    object.__setattr__(ref, "shape", (units / np.maximum(units.sum(1, keepdims=True), 1e-6)).astype(np.float32))
    return ref


def _days(inp) -> np.ndarray:
    known = ~np.isnat(inp.release)
    return np.where(known, P._days(np.where(known, inp.release, np.datetime64("1970-01-01"))), 0)


def knn_columns(inp, ref, shape: bool, chunk: int = 512) -> np.ndarray:
    emb, days, cols_all = _unit_rows(inp.text_pooled), _days(inp), []
    for lo in range(0, len(inp), chunk):
        rows = slice(lo, min(lo + chunk, len(inp)))
        sim = emb[rows] @ ref.emb.T
        sold = days[rows, None] >= ref.known_day[None, :]
        cols = []
        for window in (None, P.YEAR):
            ok = sold if window is None else sold & (days[rows, None] - ref.known_day[None, :] < window)
            s = np.where(ok, sim, -np.inf)
            k = min(K, s.shape[1])
            idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(s, idx, 1)
            valid = np.isfinite(top)
            n = np.maximum(valid.sum(1), 1)
            cols += [np.where(valid.any(1), np.where(valid, ref.level[idx], 0).sum(1) / n, ref.overall),
                     np.where(valid, top, 0).sum(1) / n, np.log1p(valid.sum(1))]
            if shape and window is None:
                cols += list((np.where(valid[..., None], ref.shape[idx], 0).sum(1) / n[:, None] * ref.shape.shape[1]).T)
        cols_all.append(np.stack(cols, 1))
    return np.concatenate(cols_all).astype(np.float32)


def _no_evidence(n: int, width: int, ref) -> np.ndarray:
    """(n, width) signals as (level, log(1 + count)) column pairs, all "no evidence": the overall level, count 0."""
    out = np.zeros((n, width), np.float32)
    out[:, 0::2] = ref.overall
    return out


def _dated_chunks(inp, chunk: int):
    """(rows, their release days) over the products with a known release date, `chunk` rows of `inp` at a time."""
    known, days = ~np.isnat(inp.release), _days(inp)
    for lo in range(0, len(inp), chunk):
        rows = np.arange(lo, min(lo + chunk, len(inp)))
        rows = rows[known[rows]]
        if len(rows):
            yield rows, days[rows]


def seasonal_columns(inp, ref, chunk: int = 512) -> np.ndarray:
    a = inp.attributes.shape[1]
    out = _no_evidence(len(inp), 2 * a, ref)
    for rows, days in _dated_chunks(inp, chunk):
        age = days[:, None] - ref.release_day[None, :]
        near = (days[:, None] >= ref.known_day[None, :]) & (np.abs(age - P.YEAR) <= WINDOW)
        for j in range(a):
            codes = inp.attributes[rows, j]
            same = near & (ref.attributes[None, :, j] == codes[:, None]) & (codes[:, None] > 0)
            out[rows, 2 * j], out[rows, 2 * j + 1] = P._mean(same, ref), np.log1p(same.sum(1))
    return out


def pairs_columns(inp, ref, chunk: int = 512) -> np.ndarray:
    """Per pair of attributes (a, b): mean level and log(1 + count) of the reference products sold by the
    release (all of them / those whose sales came in during the last year) that share both of p's values."""
    a = inp.attributes.shape[1]
    pairs = [(j, k) for j in range(a) for k in range(j + 1, a)]
    out = _no_evidence(len(inp), 4 * len(pairs), ref)
    for rows, days in _dated_chunks(inp, chunk):
        sold = days[:, None] >= ref.known_day[None, :]
        year = sold & (days[:, None] - ref.known_day[None, :] < P.YEAR)
        same = [(ref.attributes[None, :, j] == inp.attributes[rows, j][:, None]) & (inp.attributes[rows, j][:, None] > 0)
                for j in range(a)]
        for i, (j, k) in enumerate(pairs):
            for w, window in enumerate((sold, year)):
                m = same[j] & same[k] & window
                out[rows, 4 * i + 2 * w], out[rows, 4 * i + 2 * w + 1] = P._mean(m, ref), np.log1p(m.sum(1))
    return out


NOWCAST_WEEKS = (6, 13)


def nowcast_columns(inp, ref) -> np.ndarray:
    """Per window w, overall and per attribute: log(units sold so far / units expected at their age) of the
    products released in the w weeks before the release (partly sold: their complete weeks before it only), and
    log(1 + their count). The expectation is each product's age on the reference's mean cumulative share."""
    if ref.units_cum is None:
        sys.exit("--signal nowcast reads the reference's weekly units: add --set recent_sales=true (as row 72 ran)")
    h = ref.units_cum.shape[1] - 1
    total = ref.units_cum[:, h]
    share = (ref.units_cum / np.maximum(total[:, None], 1e-9))[total > 0].mean(0)  # (H + 1,) a shape, scale-free
    expected_full = float(total.mean())
    days = _days(inp)
    unique, at = np.unique(days, return_inverse=True)
    age_weeks = (unique[:, None] - ref.release_day[None, :]) // ref.period_days  # complete weeks sold by then
    k = np.clip(age_weeks, 0, h)
    cols = []
    for w in NOWCAST_WEEKS:
        on = (age_weeks >= 1) & (age_weeks <= w)
        units = np.where(on, ref.units_cum[np.arange(len(total))[None, :], k], 0.0)
        expect = np.where(on, share[k] * expected_full, 0.0)
        groups = [(units.sum(1)[at], expect.sum(1)[at], on.sum(1)[at])]
        for j in range(inp.attributes.shape[1]):
            codes = inp.attributes[:, j]
            by_value = P._groups(ref.attributes[:, j], int(max(codes.max(initial=0), ref.attributes[:, j].max(initial=0))))
            u, e, n = (by_value(x)[at, codes] for x in (units, expect, on.astype(np.float32)))
            groups.append((u, e, np.where(codes > 0, n, 0)))
        for u, e, n in groups:
            cols += [np.where(n > 0, np.log((u + 1e-3) / (e + 1e-3)), 0.0), np.log1p(n)]
    known = ~np.isnat(inp.release)
    return np.where(known[:, None], np.stack(cols, 1), 0.0).astype(np.float32)


_LAUNCH: dict = {}


def launch_columns(inp) -> np.ndarray:
    """Counts over every product of the dataset (--data), so a product's launch is the same in any split."""
    from collections import Counter

    if not _LAUNCH:  # read and counted once: every fit calls this for its train and validation products
        import polars as pl

        data = Path(sys.argv[sys.argv.index("--data") + 1])
        products = pl.read_csv(data / "products.csv", infer_schema_length=0)
        _LAUNCH["per_day"] = Counter(P._days(products["release_date"].to_numpy().astype("datetime64[D]")).tolist())
    days = _days(inp)
    cols = [np.log1p([_LAUNCH["per_day"][int(d)] for d in days])]
    # Per attribute, counted among the rows given: a time split keeps each release day in one split.
    for j in range(inp.attributes.shape[1]):
        key = list(zip(days.tolist(), inp.attributes[:, j].tolist()))
        c = Counter(key)
        cols.append(np.log1p([c[k] if k[1] > 0 else 0 for k in key]))
    known = ~np.isnat(inp.release)
    return np.where(known[:, None], np.stack(cols, 1), 0.0).astype(np.float32)


# --signal NAME -> the columns appended to the model's popularity input
COLUMNS = {
    "knn": lambda inp, ref: knn_columns(inp, ref, shape=False),
    "knn_shape": lambda inp, ref: knn_columns(inp, ref, shape=True),
    "seasonal": seasonal_columns,
    "launch": lambda inp, ref: launch_columns(inp),
    "nowcast": nowcast_columns,
    "pairs": pairs_columns,
}


def main() -> None:
    if "--signal" not in sys.argv:
        sys.exit(f"--signal {'|'.join(COLUMNS)} is required (then bench/tuning.py's arguments)")
    at = sys.argv.index("--signal")
    signal = sys.argv[at + 1]
    del sys.argv[at : at + 2]
    if signal not in COLUMNS:
        sys.exit(f"--signal {signal!r}: one of {', '.join(COLUMNS)}")

    def features(inp, ref, chunk=512):
        return np.concatenate([_plain_features(inp, ref, chunk), COLUMNS[signal](inp, ref)], 1)

    if signal in ("knn", "knn_shape"):
        P.PopularityReference.from_inputs = classmethod(_reference_with_embeddings)
    P.popularity_features = F.popularity_features = features
    import tuning

    tuning.main(experiment={"script": "extra_signals.py", "signal": signal})


if __name__ == "__main__":
    main()
