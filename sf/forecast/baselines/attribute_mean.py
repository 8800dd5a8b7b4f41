"""Mean curve of the training products that share a new product's attribute values, with back-off.

Back-off (hierarchical, in column order): the columns are used as a prefix — for VISUELLE
(category, color, fabric), then (category, color), then (category), then the global mean curve.
A level is skipped when the product's value is unknown (code 0) in that prefix, or when fewer than
`min_count` training products share the prefix. Pass `columns` to choose the attributes and their order;
the first column is the one dropped last, so put the broadest, most telling one first.

`min_count` trades specificity for noise (a combination held by one product is that product's curve).
Fixed when given; by default chosen from MIN_COUNTS by leave-one-out on the training products only
(each training product predicted from the others), never on validation or test data.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sf.forecast.baselines.base import register_baseline
from sf.forecast.baselines.common import masked_mean_curve, resolve_columns
from sf.forecast.inputs import Inputs

MIN_COUNTS = (1, 2, 3, 5, 10, 20, 50)


def _groups(prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id per row (-1 where a code in the prefix is unknown) and the groups' distinct prefixes."""
    known = (prefix > 0).all(axis=1)
    gid = np.full(len(prefix), -1, dtype=np.int64)
    if not known.any():
        return gid, np.zeros((0, prefix.shape[1]), dtype=prefix.dtype)
    keys, inverse = np.unique(prefix[known], axis=0, return_inverse=True)
    gid[known] = inverse.reshape(-1)
    return gid, keys


@register_baseline("attribute_mean", "mean curve of training products with the same attribute values; "
                   "backs off by dropping the last attribute, then to the global mean")
class AttributeMean:
    def __init__(self, columns: Sequence[str] | None = None, min_count: int | None = None) -> None:
        self.columns = None if columns is None else list(columns)
        self.min_count = min_count
        self.global_: np.ndarray | None = None
        # tables_[k]: prefix of k+1 codes -> mean curve of the training products sharing it
        self.tables_: list[dict[tuple[int, ...], np.ndarray]] = []
        self.levels_: np.ndarray | None = None  # per predicted row: attributes matched (0 = global mean)

    def fit(self, train: Inputs) -> "AttributeMean":
        self.cols_ = resolve_columns(train, self.columns)
        self.global_ = masked_mean_curve(train.y, train.y_mask)
        codes = train.attributes[:, self.cols_]
        y = np.where(train.y_mask, train.y, 0.0).astype(np.float64)
        m = train.y_mask.astype(np.float64)
        # Per level: each group's summed curve, observed-cell counts and product count.
        levels = []
        for k in range(1, len(self.cols_) + 1):
            gid, keys = _groups(codes[:, :k])
            sums, cells = np.zeros((len(keys), y.shape[1])), np.zeros((len(keys), y.shape[1]))
            known = gid >= 0
            np.add.at(sums, gid[known], y[known])
            np.add.at(cells, gid[known], m[known])
            levels.append((gid, keys, sums, cells, np.bincount(gid[known], minlength=len(keys))))
        self.min_count_ = self.min_count if self.min_count is not None else self._leave_one_out(levels, y, m)
        self.tables_ = []
        for gid, keys, sums, cells, n in levels:
            table = {}
            for g, key in enumerate(keys):
                if n[g] >= self.min_count_:
                    curve = np.divide(sums[g], cells[g], out=self.global_.astype(np.float64), where=cells[g] > 0)
                    table[tuple(int(c) for c in key)] = curve.astype(np.float32)
            self.tables_.append(table)
        return self

    def _leave_one_out(self, levels, y: np.ndarray, m: np.ndarray) -> int:
        """The MIN_COUNTS value whose back-off predicts the training products best from the others (pooled WAPE)."""
        best, best_err = MIN_COUNTS[0], np.inf
        for mc in MIN_COUNTS:
            pred = np.tile(self.global_.astype(np.float64), (len(y), 1))
            done = np.zeros(len(y), dtype=bool)
            for gid, _, sums, cells, n in reversed(levels):  # deepest level first
                g = np.maximum(gid, 0)
                others = np.where(gid >= 0, n[g] - 1, 0)
                use = ~done & (others >= mc)
                s, c = sums[g[use]] - y[use], cells[g[use]] - m[use]
                pred[use] = np.divide(s, c, out=pred[use], where=c > 0)
                done |= use
            err = (np.abs(pred - y) * m).sum()
            if err < best_err:
                best, best_err = mc, err
        return best

    def predict(self, inp: Inputs) -> np.ndarray:
        codes = inp.attributes[:, self.cols_]
        out = np.tile(self.global_, (len(inp), 1))
        levels = np.zeros(len(inp), dtype=np.int64)
        for i, row in enumerate(codes):
            for k in range(len(self.cols_), 0, -1):
                curve = self.tables_[k - 1].get(tuple(int(c) for c in row[:k]))
                if curve is not None:  # unknown codes (0) are never keys, so they back off too
                    out[i], levels[i] = curve, k
                    break
        self.levels_ = levels
        return out[:, : inp.horizon]
