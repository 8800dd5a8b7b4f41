"""The contract every neural forecaster keeps, its input dimensions, and the registry `--model` looks up.

A model is a `ForecastModel` built as `cls(dims, **hparams)`:

    reads       the feature keys of the batch it uses (sf.forecast.batching.FEATURES); the one batch builder,
                `TensorInputs`, builds only those, plus what every batch has: y, y_mask, obs, obs_mask, loss_mask
    forward     batch -> (B, H, dims.n_outputs) in the training target's units (batching.encode_target);
                n_outputs = 1 for a point forecast, Q for quantiles
    exog_future False (the default): batch["exog"] holds only the `lookback` weeks before release; True (an
                explicit choice: known-future covariates): also the horizon weeks after them
    representation  batch -> FusionOutput (the fused product vector F and the attention maps) or None, what
                `sf explain` shows; only models built on a fusion variant have one
    validated_choices  {constructor argument: candidate values}: settings the engine fits every candidate of,
                per seed, keeping the one with the lowest validation WAPE, when the config leaves them unset
                (sf.forecast.engine.train_seed; `choose_on_validation = false` fits the constructor's default)

tests/test_model_contract.py checks every registered model against this.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sf.forecast.inputs import Inputs
from sf.registry import Entry, Registry


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
    popularity: int = 0  # popularity signals per product (sf.forecast.popularity); 0: none

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
            popularity=0 if inp.popularity is None else inp.popularity.shape[1],
        )

    def to_dict(self) -> dict:
        return asdict(self)


class ForecastModel(nn.Module):
    """Base class of every registered model (see the module docstring for the contract)."""

    exog_future: bool = False
    mc_passes: int = 0  # > 0: the forecast is the mean of this many passes with dropout on (sf.forecast.fit.predict)
    # True: every random draw of the model in training mode goes through sf.keyed_noise, so its MC-dropout passes
    # run many products per batch, each product's draws its own (sf.forecast.fit._mc_dropout).
    keyed_draws: bool = False
    # A setting whose best value depends on the catalogue, chosen on its validation products like the epoch; keep
    # the constructor's default first: it wins ties. Each candidate is a whole fit, so declare few.
    validated_choices: dict[str, tuple] = {}

    @classmethod
    def open_choices(cls, given: dict) -> dict[str, tuple]:
        """The validated choices left to make when the constructor gets `given`: those it does not set."""
        return {k: v for k, v in cls.validated_choices.items() if k not in given}

    @property
    def reads(self) -> frozenset[str]:
        raise NotImplementedError(f"{type(self).__name__} must declare the batch keys it reads")

    def representation(self, batch: dict[str, torch.Tensor]):
        """The fused product vector and attention maps (sf.fusion.FusionOutput), or None without a fusion."""
        return None


MODELS: Registry[Entry] = Registry("model", "sf.forecast.models")


def register_model(name: str, description: str):
    """Class decorator: `@register_model("sf", "...")` makes the model buildable by name; a model that is not a
    ForecastModel or does not declare what it reads is refused when its module is imported."""

    def deco(cls):
        if not issubclass(cls, ForecastModel):
            raise TypeError(f"model {name!r}: {cls.__name__} must subclass ForecastModel")
        if cls.reads is ForecastModel.reads:
            raise TypeError(f"model {name!r}: {cls.__name__} must declare `reads`, the batch keys it uses")
        params = inspect.signature(cls.__init__).parameters
        for arg, values in cls.validated_choices.items():
            if arg not in params or len(values) < 2 or values[0] != params[arg].default:
                raise TypeError(f"model {name!r}: validated_choices[{arg!r}] must name a constructor argument and list "
                                f"at least two values, its default first")
        return MODELS.register(name, description)(cls)

    return deco
