"""k-nearest-neighbour analog forecasting: a new product's curve is the distance-weighted mean of the
curves of the k most similar training products (Giri & Chen 2022; the attention-RNN paper's KNN baselines).

Similarity is the cosine of unit feature vectors, distance d = 1 - cosine, weight 1 / (d + eps); products
tied with the k-th nearest are kept as well, so ties never depend on table order:
- image:      the store's pooled image vector, L2-normalised (cosine similarity);
- attributes: one-hot codes scaled to unit length, so cosine = share of matching attributes and
              d = Hamming distance / number of attributes; an unknown value (code 0) matches nothing;
- both:       the two unit blocks concatenated, each scaled by 1/sqrt(2): cosine = the mean of the two.
Missing images: a product without an image cannot be compared by image, so image/both queries with an
image search only the training products that have one, and queries without an image fall back to the
attribute distance over every training product (the same fallback when no training product has an image).
k is fixed (default 10) or, with `select_k=True`, chosen by leave-one-out WAPE on the training products
only — never on validation or test data.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sf.forecast.baselines.base import register_baseline
from sf.forecast.baselines.common import masked_mean_curve, resolve_columns, weighted_curves
from sf.forecast.inputs import Inputs

CHUNK = 512  # query rows per similarity block: bounds memory at CHUNK x n_train floats per k


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


class KNNAnalog:
    features = "both"  # "image" | "attributes" | "both"; set by the registered subclasses

    def __init__(self, k: int = 10, eps: float = 1e-2, select_k: bool = False,
                 k_grid: Sequence[int] = (1, 3, 5, 10, 20, 50), columns: Sequence[str] | None = None) -> None:
        self.k, self.eps, self.select_k, self.k_grid = k, eps, select_k, tuple(k_grid)
        self.columns = None if columns is None else list(columns)

    # -- feature vectors
    def _attr_block(self, inp: Inputs) -> np.ndarray:
        codes = inp.attributes[:, self.cols_]
        blocks = []
        for j, card in enumerate(self.cards_):
            onehot = np.zeros((len(inp), card), dtype=np.float32)
            known = codes[:, j] > 0
            onehot[np.flatnonzero(known), codes[known, j] - 1] = 1.0
            blocks.append(onehot)
        if not blocks:
            return np.zeros((len(inp), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))

    def _vectors(self, inp: Inputs) -> tuple[np.ndarray, np.ndarray]:
        """(vectors used with an image, vectors used without one) for every row of `inp`."""
        attr = self._attr_block(inp)
        img = _unit(inp.image_pooled)
        if self.features == "image":
            with_image = img
        elif self.features == "both":
            with_image = np.concatenate([img, attr], axis=1) / np.sqrt(2)
        else:
            with_image = attr
        return with_image, attr

    # -- fit / predict
    def fit(self, train: Inputs) -> "KNNAnalog":
        self.cols_ = resolve_columns(train, self.columns)
        self.cards_ = [len(train.attribute_vocab[train.attribute_names[c]]) for c in self.cols_]
        self.y_, self.mask_ = train.y.astype(np.float32), train.y_mask
        self.global_ = masked_mean_curve(train.y, train.y_mask)
        self.img_vec_, self.attr_vec_ = self._vectors(train)
        self.train_has_image_ = train.has_image.copy()
        if self.select_k:
            self.k = self._leave_one_out_k(train)
        return self

    def weights(self, inp: Inputs, k: int | None = None, exclude_self: bool = False) -> np.ndarray:
        """(Q, n_train) neighbour weights: 1 / (d + eps) for each row's k nearest training products, 0 elsewhere.

        Every product tied with the k-th nearest is kept too (attribute distances take few values, and
        cutting a tie by table order would favour the oldest products), so a row may have more than k."""
        out = np.zeros((len(inp), len(self.y_)))
        for rows, (w,) in self._chunks(inp, [self.k if k is None else k], exclude_self):
            out[rows] = w
        return out

    def _chunks(self, inp: Inputs, ks: Sequence[int], exclude_self: bool):
        """Yield (query rows, [their (rows, n_train) weights for each k in ks]), CHUNK rows at a time."""
        q_img, q_attr = self._vectors(inp)
        can_image = self.features != "attributes" and self.train_has_image_.any()
        use_image = inp.has_image & can_image
        for mode in (True, False):
            rows = np.flatnonzero(use_image == mode)
            if not rows.size:
                continue
            pool = np.flatnonzero(self.train_has_image_) if mode else np.arange(len(self.y_))
            q = q_img[rows] if mode else q_attr[rows]
            t = (self.img_vec_ if mode else self.attr_vec_)[pool]
            for s in range(0, rows.size, CHUNK):
                r = rows[s:s + CHUNK]
                sim = (q[s:s + CHUNK] @ t.T).astype(np.float64)
                if exclude_self:  # leave-one-out: a training product is not its own analog
                    sim[pool[None, :] == r[:, None]] = -np.inf
                ranked = -np.sort(-sim, axis=1)
                w = 1.0 / (np.clip(1.0 - sim, 0.0, None) + self.eps)
                chunk = []
                for k in ks:
                    kth = ranked[:, min(k, pool.size) - 1][:, None]
                    # float32 features: similarities within 1e-6 of the k-th count as tied with it
                    keep = (sim >= kth - 1e-6) & np.isfinite(sim)
                    full = np.zeros((r.size, len(self.y_)))
                    full[:, pool] = np.where(keep, w, 0.0)
                    chunk.append(full)
                yield r, chunk

    def predict(self, inp: Inputs) -> np.ndarray:
        out = np.zeros((len(inp), self.y_.shape[1]), dtype=np.float32)
        for rows, (w,) in self._chunks(inp, [self.k], exclude_self=False):
            out[rows] = weighted_curves(self.y_, self.mask_, w, self.global_)
        return out[:, : inp.horizon]

    def _leave_one_out_k(self, train: Inputs) -> int:
        err = np.zeros(len(self.k_grid))
        for rows, ws in self._chunks(train, self.k_grid, exclude_self=True):
            for j, w in enumerate(ws):
                pred = weighted_curves(self.y_, self.mask_, w, self.global_)
                err[j] += np.abs(np.where(train.y_mask[rows], pred - train.y[rows], 0.0)).sum()
        return int(self.k_grid[int(np.argmin(err))])


@register_baseline("knn_image", "k-NN analogs by cosine on pooled image features (no image: attributes)")
class KNNImage(KNNAnalog):
    features = "image"


@register_baseline("knn_attributes", "k-NN analogs by Hamming distance on attribute values")
class KNNAttributes(KNNAnalog):
    features = "attributes"


@register_baseline("knn_both", "k-NN analogs on normalised image features and attributes concatenated")
class KNNBoth(KNNAnalog):
    features = "both"
