"""The comparison models of `sf compare` (gtm, ekambaram): build from Dims, shapes, gradients, missing
modalities, and that a few optimiser steps on the fake data lower the loss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast.base import MODELS, Dims, create_model, to_batch
from sf.forecast.inputs import build_inputs
from tests.fakes import make_dataset

NAMES = ["gtm", "ekambaram"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("fake"), n=96, horizon=6)
    full = build_inputs(load_dataset(root), load_features(store))
    # a quarter of the products lack an image, another quarter lack a description
    has_image, has_text = full.has_image.copy(), full.has_text.copy()
    grid, pooled, mask = full.image_grid.copy(), full.image_pooled.copy(), full.text_mask.copy()
    has_image[::4] = False
    grid[::4], pooled[::4] = 0, 0
    has_text[1::4] = False
    mask[1::4] = False
    return replace(full, has_image=has_image, image_grid=grid, image_pooled=pooled, has_text=has_text, text_mask=mask)


def scale(inp):
    return float(inp.y.max())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_forward_shape(inp, name, n_outputs):
    torch.manual_seed(0)
    model = create_model(name, Dims.from_inputs(inp, n_outputs=n_outputs))
    out = model(to_batch(inp, np.arange(10), scale(inp)))
    assert out.shape == (10, inp.horizon, n_outputs)
    assert torch.isfinite(out).all()
    assert MODELS[name].description


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(inp, name):
    torch.manual_seed(0)
    model = create_model(name, Dims.from_inputs(inp, n_outputs=3))
    batch = to_batch(inp, np.arange(32), scale(inp), observed_steps=2)
    model(batch).pow(2).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("name", NAMES)
def test_missing_modalities_ignore_their_placeholder_features(inp, name):
    torch.manual_seed(0)
    model = create_model(name, Dims.from_inputs(inp)).eval()
    rows = np.arange(8)  # rows 0 and 4 lack an image, rows 1 and 5 lack text
    batch = to_batch(inp, rows, scale(inp))
    noisy = dict(batch)
    no_image, no_text = ~batch["has_image"], ~batch["has_text"]
    noisy["image_grid"] = torch.where(no_image[:, None, None], torch.randn_like(batch["image_grid"]), batch["image_grid"])
    noisy["image_pooled"] = torch.where(no_image[:, None], torch.randn_like(batch["image_pooled"]), batch["image_pooled"])
    noisy["text_tokens"] = torch.where(no_text[:, None, None], torch.randn_like(batch["text_tokens"]), batch["text_tokens"])
    noisy["text_pooled"] = torch.where(no_text[:, None], torch.randn_like(batch["text_pooled"]), batch["text_pooled"])
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model(noisy))
        # ...while a product that has an image does depend on it
        changed = dict(batch)
        changed["image_grid"] = batch["image_grid"] + torch.randn_like(batch["image_grid"])
        changed["image_pooled"] = batch["image_pooled"] + torch.randn_like(batch["image_pooled"])
        diff = (model(changed) - model(batch)).abs().sum(dim=(1, 2))
    assert (diff[batch["has_image"]] > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_model_works_without_exogenous_series_or_attributes(inp, name):
    bare = replace(inp, exog=inp.exog[:, :, :0], attributes=inp.attributes[:, :0], attribute_names=[], exog_names=[])
    model = create_model(name, Dims.from_inputs(bare))
    assert model(to_batch(bare, np.arange(4), scale(bare))).shape == (4, bare.horizon, 1)


@pytest.mark.parametrize("name", NAMES)
def test_short_training_lowers_the_loss(inp, name):
    torch.manual_seed(0)
    model = create_model(name, Dims.from_inputs(inp))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    everything = to_batch(inp, np.arange(len(inp)), scale(inp))

    def loss_on(batch):
        return (model(batch)[..., 0] - batch["y"]).pow(2)[batch["y_mask"]].mean()

    model.eval()
    with torch.no_grad():
        before = loss_on(everything).item()
    model.train()
    for _ in range(30):
        loss = loss_on(to_batch(inp, rng.choice(len(inp), 32, replace=False), scale(inp)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = loss_on(everything).item()
    assert after < 0.7 * before
