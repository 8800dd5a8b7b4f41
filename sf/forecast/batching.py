"""The one batch builder: an Inputs as torch tensors, converted once; a batch is then a handful of index-selects.

Training, prediction, `sf explain` and the tests all build batches here (`TensorInputs.for_model`), so a
model is only ever fed the encoding it trains on. A batch is a dict: the FEATURES keys the model `reads`
(float32, bool masks, long codes) and always y, y_mask (the target, encoded by `encode_target`), obs,
obs_mask (the first weeks given as inputs, same encoding) and loss_mask (what the loss scores).
float16 arrays stay float16 in memory (the 5,080 × 49 × 2048 VISUELLE grid is 1 GB) and only the batch's
rows are widened; a pooled-only model never touches the grid. `image_grid_present` holds the grid rows
of the batch's products that have an image (what the fusion variants read); `image_grid` the dense grid.
"""

from __future__ import annotations

import numpy as np
import torch

from sf.cache.grid import SparseGrid
from sf.forecast.inputs import Inputs
from sf.forecast.popularity import with_popularity

_FIELDS = {  # batch key -> (Inputs attribute, dtype in the batch)
    "image_grid": ("image_grid", torch.float32),
    "image_pooled": ("image_pooled", torch.float32),
    "has_image": ("has_image", torch.bool),
    "text_tokens": ("text_tokens", torch.float32),
    "text_mask": ("text_mask", torch.bool),
    "text_pooled": ("text_pooled", torch.float32),
    "has_text": ("has_text", torch.bool),
    "exog": ("exog", torch.float32),
    "calendar": ("calendar", torch.float32),
    "attributes": ("attributes", torch.long),
    "popularity": ("popularity", torch.float32),
}


FEATURES = (*_FIELDS, "image_grid_present")  # what a model may name in `reads`
TARGETS = ("scaled", "log")


def encode_target(units, y_scale: float, target: str = "scaled"):
    """Units -> what the model fits: units / y_scale, or log(1 + units / y_scale)."""
    z = units / y_scale
    return (torch.log1p(z) if isinstance(z, torch.Tensor) else np.log1p(z)) if target == "log" else z


def decode_target(z, y_scale: float, target: str = "scaled"):
    """The model's outputs -> units (monotone, so quantiles stay quantiles)."""
    if target == "log":
        z = torch.expm1(z) if isinstance(z, torch.Tensor) else np.expm1(z)
    return z * y_scale


def pre_release_exog(inp: Inputs) -> np.ndarray:
    """(N, lookback, K): the exog series up to the release, what is known when a new product is forecast."""
    return inp.exog[:, : inp.lookback]


def reads_future_exog(model) -> bool:
    """Whether the model was built to read the exog series over the horizon (known-future covariates). Models
    that do not say so get batches without those weeks at all, so none can read them by accident."""
    return bool(getattr(model, "exog_future", False))


class TensorInputs:
    @classmethod
    def for_model(cls, inp: Inputs, model, y_scale: float, target: str = "scaled",
                  device: str | torch.device | None = None) -> "TensorInputs":
        """What `model` reads of `inp` (its `reads`, its exog window), on the model's device unless given."""
        device = device if device is not None else next(model.parameters()).device
        reference = getattr(model, "popularity_reference", None)
        if reference is not None and inp.popularity is None and "popularity" in model.reads:
            # Signals from the model's own training products (sf.forecast.popularity), never from `inp`'s sales.
            inp = with_popularity(inp, reference)
        return cls(inp, y_scale, device, model.reads, target, exog_future=reads_future_exog(model))

    def batch_all(self, observed: int = 0) -> dict[str, torch.Tensor]:
        """Every row in one batch (small inputs: tests, one product)."""
        return self.batch(torch.arange(self.n), observed)

    def __init__(self, inp: Inputs, y_scale: float, device: str | torch.device = "cpu",
                 reads: frozenset[str] | None = None, target: str = "scaled", exog_future: bool = False) -> None:
        self.n, self.horizon, self.device = len(inp), inp.horizon, torch.device(device)
        keys = [k for k in _FIELDS if (reads is None or k in reads) and getattr(inp, _FIELDS[k][0]) is not None]
        self.dtypes = {k: _FIELDS[k][1] for k in keys if k != "image_grid"}
        arrays = {k: getattr(inp, _FIELDS[k][0]) for k in self.dtypes}
        if "exog" in arrays and not exog_future:
            # Honest inputs: only the weeks before release. A model reading horizon weeks fails on the shape.
            arrays["exog"] = pre_release_exog(inp)
        self.t = {k: self._tensor(a, _FIELDS[k][1]) for k, a in arrays.items()}
        self.grid, self.streamed = None, False
        # "image_grid_present": only the rows that have an image, (n_present, R, C), in batch order — what
        # sf's fusion reads; it saves widening and zero-filling B x R x C floats per batch.
        self.dense_grid = "image_grid" in keys
        if self.dense_grid or (reads is not None and "image_grid_present" in reads):
            # Only rows with an image are kept (the store's other rows are zeros anyway): on VISUELLE,
            # where 90% of products have no image, that is a tenth of the memory and of the copying.
            rows = np.flatnonzero(inp.has_image)
            grid = inp.image_grid
            if isinstance(grid, SparseGrid) and grid.streamed:
                # Too large for the memory budget: a batch reads its rows from the store (sf.cache.grid).
                self.grid, self.streamed = grid[rows], True
            else:
                kept = grid if len(rows) == len(inp) else grid[rows]  # no copy when all have one
                self.grid = self._tensor(np.asarray(kept), torch.float32)
            slot = np.full(len(inp), -1, dtype=np.int64)
            slot[rows] = np.arange(len(rows))
            self.grid_slot = torch.from_numpy(slot).to(self.device)
            self.grid_shape = grid.shape[1:]
        self.t["y"] = torch.as_tensor(encode_target(inp.y, y_scale, target), dtype=torch.float32).to(self.device)
        self.t["y_mask"] = torch.as_tensor(inp.y_mask, dtype=torch.bool).to(self.device)
        self.steps = torch.arange(inp.horizon, device=self.device)

    def _tensor(self, a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        a = np.ascontiguousarray(a)
        t = torch.from_numpy(a) if a.dtype in (np.float16, np.float32) else torch.as_tensor(a, dtype=dtype)
        return t.to(self.device)

    def batch(self, idx: torch.Tensor, observed: int | torch.Tensor = 0) -> dict[str, torch.Tensor]:
        """Rows `idx`; the first `observed` steps of sales (an int, or one per row) are given as inputs."""
        idx = idx.to(self.device)
        out = {k: self.t[k][idx].to(dtype) for k, dtype in self.dtypes.items()}
        if self.grid is not None:
            slot = self.grid_slot[idx]
            want = slot[slot >= 0]
            if self.streamed:
                present = torch.from_numpy(self.grid.rows(want.cpu().numpy())).to(self.device).float()
            else:
                present = self.grid[want].float()
            if self.dense_grid:
                out["image_grid"] = torch.zeros(len(idx), *self.grid_shape, device=self.device)
                out["image_grid"][slot >= 0] = present
            else:
                out["image_grid_present"] = present
        y, y_mask = self.t["y"][idx], self.t["y_mask"][idx]
        k = torch.as_tensor(observed, device=self.device)
        obs_mask = ((self.steps < (k[:, None] if k.ndim else k)) & y_mask).float()
        # The loss scores only what the model is not shown: weeks given as input are no forecast.
        out.update(y=y, y_mask=y_mask, obs=y * obs_mask, obs_mask=obs_mask, loss_mask=y_mask & (obs_mask == 0))
        return out
