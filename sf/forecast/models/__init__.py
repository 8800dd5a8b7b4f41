"""Neural forecasters, one file each over one contract (sf.forecast.models.base); importing this package
registers them all in MODELS."""

from __future__ import annotations

from sf.forecast.models.base import MODELS, Dims, ForecastModel, register_model
from sf.registry import Entry

__all__ = ["MODELS", "Dims", "ForecastModel", "create_model", "model_entry", "register_model"]


def model_entry(name: str) -> Entry:
    return MODELS.entry(name)


def create_model(name: str, dims: Dims, **hparams) -> ForecastModel:
    return MODELS.create(name, dims, **hparams)


# Importing the models registers each of them in MODELS.
from sf.forecast.models import sf_model  # noqa: E402,F401
from sf.forecast.models import ekambaram, gtm  # noqa: E402,F401
