"""Contract tests: every registered head, and every registered forecaster in sf.forecast.base.MODELS,
through the same checks — shapes, gradients, masking, missing modalities, no target leakage, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast import models  # noqa: F401  (registers every model)
from sf.forecast.base import MODELS, Dims, create_model, to_batch
from sf.forecast.heads import HEADS, create_head
from sf.forecast.inputs import build_inputs
from sf.forecast.losses import non_crossing
from tests.fakes import make_dataset

B, H, IN = 5, 6, 7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build_head(name, seed=0, n_outputs=2):
    torch.manual_seed(seed)
    return create_head(name, in_dim=IN, hidden=8, n_outputs=n_outputs, dropout=0.0)


@pytest.mark.parametrize("name", list(HEADS))
def test_head_shape_gradients_determinism(name):
    x = torch.randn(B, H, IN, generator=torch.Generator().manual_seed(0))
    head = build_head(name)
    y = head(x)
    assert y.shape == (B, H, 2) and torch.isfinite(y).all()
    y.sum().backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"
    assert torch.equal(build_head(name, seed=3)(x), build_head(name, seed=3)(x))


@pytest.mark.parametrize("name", list(HEADS))
def test_head_causality_matches_its_registration(name):
    x = torch.randn(B, H, IN, generator=torch.Generator().manual_seed(0))
    head = build_head(name).eval()
    later = x.clone()
    later[:, -1] += 5.0  # change only the last step's input
    with torch.no_grad():
        a, b = head(x), head(later)
    torch.testing.assert_close(a[:, -1] != b[:, -1], torch.ones(B, 2, dtype=torch.bool))
    earlier_changed = not torch.allclose(a[:, 0], b[:, 0])
    assert earlier_changed == (not HEADS[name].causal)


# ---------------------------------------------------------------- every registered forecaster


@pytest.fixture(scope="module")
def fake_inputs(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("heads") / "d", n=24, horizon=6)
    inp = build_inputs(load_dataset(root), load_features(store))
    inp.has_image[[1, 4]] = False  # some products without an image ...
    inp.image_grid[[1, 4]] = 0
    inp.image_pooled[[1, 4]] = 0
    inp.text_mask[[2, 4]] = False  # ... or without a description
    inp.text_tokens[[2, 4]] = 0
    inp.has_text[[2, 4]] = False
    return inp


def model_batch(inp, observed=0):
    return to_batch(inp, np.arange(8), y_scale=10.0, observed_steps=observed)


def build_model(name, inp, n_outputs=1, seed=0):
    torch.manual_seed(seed)
    return create_model(name, Dims.from_inputs(inp, n_outputs))


def run(model, batch):
    model.eval()
    with torch.no_grad():
        return model(batch)


@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_shape_and_gradients(name, n_outputs, fake_inputs):
    model = build_model(name, fake_inputs, n_outputs).train()
    batch = model_batch(fake_inputs, observed=2)
    out = model(batch)
    assert out.shape == (8, fake_inputs.horizon, n_outputs) and torch.isfinite(out).all()
    non_crossing(out).pow(2).mean().backward()
    silent = [p for p, t in model.named_parameters() if t.requires_grad and t.grad is None]
    assert not silent, f"{name}: parameters without a gradient: {silent}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_never_reads_the_target(name, fake_inputs):
    model, batch = build_model(name, fake_inputs), model_batch(fake_inputs)
    leaked = dict(batch, y=batch["y"] * 0 + 123.0)
    torch.testing.assert_close(run(model, leaked), run(model, batch))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_uses_observed_sales_when_given(name, fake_inputs):
    model = build_model(name, fake_inputs)
    a = run(model, model_batch(fake_inputs, observed=0))
    b = run(model, model_batch(fake_inputs, observed=3))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_ignores_padding_and_absent_modalities(name, fake_inputs):
    model, batch = build_model(name, fake_inputs), model_batch(fake_inputs)
    noisy = dict(batch)
    no_img, no_txt = ~batch["has_image"], ~batch["has_text"]
    noisy["image_grid"] = torch.where(no_img[:, None, None], 9.0, batch["image_grid"])
    noisy["image_pooled"] = torch.where(no_img[:, None], 9.0, batch["image_pooled"])
    noisy["text_tokens"] = torch.where(batch["text_mask"][..., None], batch["text_tokens"], 9.0)
    noisy["text_pooled"] = torch.where(no_txt[:, None], 9.0, batch["text_pooled"])
    torch.testing.assert_close(run(model, noisy), run(model, batch))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_rows_are_independent_and_deterministic(name, fake_inputs):
    model, batch = build_model(name, fake_inputs, seed=5), model_batch(fake_inputs)
    full = run(model, batch)
    half = run(model, {k: v[:4] for k, v in batch.items()})
    torch.testing.assert_close(half, full[:4])
    torch.testing.assert_close(run(build_model(name, fake_inputs, seed=5), batch), full)
