"""What every neural forecaster shares: its input dimensions, its batch format, and its registry.

A model is an nn.Module built as `cls(dims, **hparams)` whose `forward(batch)` returns
(B, H, n_outputs) in scaled units (n_outputs = 1 for a point forecast, Q for quantiles).
Batches are dicts of tensors made by `to_batch`, so sf's model and the baselines read the same thing.
`batch["exog"]` holds only the `lookback` weeks before release, unless the model sets `exog_future = True`
(known-future covariates, an explicit choice): then it also holds the horizon weeks after them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from sf.forecast.inputs import Inputs
from sf.registry import Registry


@dataclass(frozen=True)
class Dims:
    image_channels: int
    regions: int
    text_dim: int
    text_len: int
    exog_terms: int
    lookback: int
    horizon: int
    calendar: int
    attribute_cardinalities: tuple[int, ...]  # per attribute: vocabulary size + 1 (code 0 = unknown)
    n_outputs: int = 1

    @classmethod
    def from_inputs(cls, inp: Inputs, n_outputs: int = 1) -> "Dims":
        return cls(
            image_channels=inp.image_grid.shape[2],
            regions=inp.image_grid.shape[1],
            text_dim=inp.text_tokens.shape[2],
            text_len=inp.text_tokens.shape[1],
            exog_terms=inp.exog.shape[2],
            lookback=inp.lookback,
            horizon=inp.horizon,
            calendar=inp.calendar.shape[2],
            attribute_cardinalities=tuple(len(inp.attribute_vocab[n]) + 1 for n in inp.attribute_names),
            n_outputs=n_outputs,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def to_batch(inp: Inputs, idx: np.ndarray, y_scale: float, observed_steps: int = 0,
             device: str | torch.device = "cpu", exog_future: bool = False) -> dict[str, torch.Tensor]:
    """Tensors for rows `idx`. The first `observed_steps` of sales are given as inputs (short-observation
    forecasting); `y` is the full target divided by `y_scale`, `y_mask` marks steps with a sale figure;
    `exog` stops at the release unless `exog_future`."""
    def t(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a[idx]), dtype=dtype, device=device)

    y = inp.y[idx] / y_scale
    obs_mask = np.zeros_like(inp.y_mask[idx], dtype=np.float32)
    if observed_steps > 0:
        obs_mask[:, :observed_steps] = inp.y_mask[idx][:, :observed_steps]
    return {
        "image_grid": t(inp.image_grid),
        "image_pooled": t(inp.image_pooled),
        "has_image": t(inp.has_image, torch.bool),
        "text_tokens": t(inp.text_tokens),
        "text_mask": t(inp.text_mask, torch.bool),
        "text_pooled": t(inp.text_pooled),
        "has_text": t(inp.has_text, torch.bool),
        "exog": t(inp.exog if exog_future else inp.exog[:, : inp.lookback]),
        "calendar": t(inp.calendar),
        "attributes": t(inp.attributes, torch.long),
        "obs": torch.as_tensor(y * obs_mask, dtype=torch.float32, device=device),
        "obs_mask": torch.as_tensor(obs_mask, device=device),
        "y": torch.as_tensor(y, dtype=torch.float32, device=device),
        "y_mask": t(inp.y_mask, torch.bool),
    }


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: Callable[..., nn.Module]
    description: str


MODELS: Registry[ModelEntry] = Registry("model", ModelEntry)


def register_model(name: str, description: str):
    """Class decorator: `@register_model("sf", "...")` makes the model buildable by name."""
    return MODELS.register(name, description)


def model_entry(name: str) -> ModelEntry:
    from sf.forecast import models  # noqa: F401  (importing registers every model)

    return MODELS.entry(name)


def create_model(name: str, dims: Dims, **hparams) -> nn.Module:
    return model_entry(name).cls(dims, **hparams)
