"""Contract tests: every registered forecaster (sf.forecast.models.MODELS) through the same checks, on batches of
the one builder (TensorInputs, in the target encoding training uses) — shapes, gradients, declared reads, no
target leakage, observed weeks, missing modalities, row independence, determinism, learning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.forecast.batching import FEATURES, TensorInputs
from sf.forecast.config import TrainConfig
from sf.forecast.inputs import build_inputs
from sf.forecast.losses import non_crossing
from sf.forecast.models import MODELS, Dims, ForecastModel, create_model, register_model
from tests.fakes import make_dataset

NAMES = sorted(MODELS)
TARGET = TrainConfig().target  # what training feeds: observed weeks and targets in this encoding
ALWAYS = {"y", "y_mask", "obs", "obs_mask", "loss_mask"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_model_is_registered_by_importing_the_package():
    assert {"sf", "gtm", "ekambaram"} <= set(NAMES)  # an empty registry would collect no contract test at all


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("contract"), n=96, horizon=6)
    full = build_inputs(load_dataset(root), load_features(store))
    # a quarter of the products lack an image, another quarter lack a description
    has_image, has_text = full.has_image.copy(), full.has_text.copy()
    grid, pooled, mask, tokens = np.asarray(full.image_grid), full.image_pooled.copy(), full.text_mask.copy(), full.text_tokens.copy()
    has_image[::4] = False
    grid[::4], pooled[::4] = 0, 0
    has_text[1::4] = False
    mask[1::4], tokens[1::4] = False, 0
    return replace(full, has_image=has_image, image_grid=grid, image_pooled=pooled, has_text=has_text,
                   text_mask=mask, text_tokens=tokens)


def build(name, inp, n_outputs=1, seed=0) -> ForecastModel:
    torch.manual_seed(seed)
    return create_model(name, Dims.from_inputs(inp, n_outputs))


def batch(model, inp, rows=8, observed=0) -> dict[str, torch.Tensor]:
    return TensorInputs.for_model(inp.take(np.arange(rows)), model, y_scale=10.0, target=TARGET).batch_all(observed)


def run(model, b):
    model.eval()
    with torch.no_grad():
        return model(b)


@pytest.mark.parametrize("name", NAMES)
def test_model_declares_what_it_reads(name, inp):
    model = build(name, inp)
    assert isinstance(model, ForecastModel) and MODELS[name].description
    assert model.reads and set(model.reads) <= set(FEATURES) | ALWAYS, model.reads
    # the batch holds what it declared and nothing else of the features: forward() reading more would fail
    assert set(batch(model, inp)) - ALWAYS == set(model.reads) - ALWAYS


def test_a_model_without_declared_reads_is_refused():
    with pytest.raises(TypeError, match="must declare `reads`"):
        @register_model("undeclared", "reads nothing it says")
        class Undeclared(ForecastModel):
            def forward(self, batch):
                return batch["exog"]
    assert "undeclared" not in MODELS


@pytest.mark.parametrize("name", NAMES)
def test_validated_choices_build_and_differ(name, inp):
    """Every candidate of a model's validated choices builds, and each is a different model: a candidate that
    changed nothing would cost the engine a whole fit for nothing."""
    cls = MODELS[name].cls
    for arg, values in cls.validated_choices.items():
        outs = []
        for value in values:
            model = create_model(name, Dims.from_inputs(inp), **{arg: value})
            assert getattr(model, arg) == value
            torch.manual_seed(0)
            model.train()
            b = batch(model, inp, rows=32)
            torch.manual_seed(1)
            with torch.no_grad():
                outs.append(model(b))
        assert all(not torch.equal(outs[0], o) for o in outs[1:]), arg


def test_a_validated_choice_must_list_the_default_first():
    with pytest.raises(TypeError, match="its default first"):
        @register_model("badchoice", "chooses a value it would not build by default")
        class BadChoice(ForecastModel):
            validated_choices = {"rate": (0.2, 0.0)}

            def __init__(self, dims, rate: float = 0.0):
                super().__init__()

            reads = frozenset({"exog"})
    assert "badchoice" not in MODELS


@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("name", NAMES)
def test_model_shape_and_gradients(name, n_outputs, inp):
    model = build(name, inp, n_outputs).train()
    out = model(batch(model, inp, rows=32, observed=2))
    assert out.shape == (32, inp.horizon, n_outputs) and torch.isfinite(out).all()
    non_crossing(out).pow(2).mean().backward()
    dead = [p for p, t in model.named_parameters() if t.requires_grad and (t.grad is None or not t.grad.abs().sum() > 0)]
    assert not dead, f"{name}: parameters without a gradient: {dead}"


@pytest.mark.parametrize("name", NAMES)
def test_model_never_reads_the_target(name, inp):
    model = build(name, inp)
    b = batch(model, inp)
    leaked = dict(b, y=b["y"] * 0 + 123.0)
    torch.testing.assert_close(run(model, leaked), run(model, b))


@pytest.mark.parametrize("name", NAMES)
def test_model_uses_observed_sales_when_given(name, inp):
    model = build(name, inp)
    assert not torch.allclose(run(model, batch(model, inp, observed=0)), run(model, batch(model, inp, observed=3)))


@pytest.mark.parametrize("name", NAMES)
def test_model_ignores_padding_and_absent_modalities(name, inp):
    model = build(name, inp)
    no_img, no_txt = ~inp.has_image, ~inp.has_text
    rng = np.random.default_rng(0)
    noisy = replace(inp, image_grid=np.where(no_img[:, None, None], rng.standard_normal(inp.image_grid.shape),
                                             inp.image_grid).astype(np.float16),
                    image_pooled=np.where(no_img[:, None], 9.0, inp.image_pooled).astype(np.float16),
                    text_tokens=np.where(inp.text_mask[..., None], inp.text_tokens, 9.0).astype(np.float16),
                    text_pooled=np.where(no_txt[:, None], 9.0, inp.text_pooled).astype(np.float16))
    torch.testing.assert_close(run(model, batch(model, noisy)), run(model, batch(model, inp)))
    # ...while a product that has an image does depend on it
    changed = replace(inp, image_grid=(inp.image_grid + rng.standard_normal(inp.image_grid.shape)).astype(np.float16),
                      image_pooled=(inp.image_pooled + rng.standard_normal(inp.image_pooled.shape)).astype(np.float16))
    diff = (run(model, batch(model, changed)) - run(model, batch(model, inp))).abs().sum(dim=(1, 2))
    assert (diff.numpy()[inp.has_image[:8]] > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_model_rows_are_independent_and_deterministic(name, inp):
    model = build(name, inp, seed=5)
    full = run(model, batch(model, inp))
    torch.testing.assert_close(run(model, batch(model, inp, rows=4)), full[:4])
    torch.testing.assert_close(run(build(name, inp, seed=5), batch(model, inp)), full)


@pytest.mark.parametrize("name", NAMES)
def test_model_works_without_exogenous_series_or_attributes(name, inp):
    bare = replace(inp, exog=inp.exog[:, :, :0], attributes=inp.attributes[:, :0], attribute_names=[], exog_names=[])
    model = build(name, bare)
    assert run(model, batch(model, bare, rows=4)).shape == (4, bare.horizon, 1)


@pytest.mark.parametrize("name", NAMES)
def test_short_training_lowers_the_loss(name, inp):
    model = build(name, inp)
    data = TensorInputs.for_model(inp, model, y_scale=float(inp.y.max()), target=TARGET)
    everything = data.batch_all()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def loss_on(b):
        return (model(b)[..., 0] - b["y"]).pow(2)[b["y_mask"]].mean()

    model.eval()
    with torch.no_grad():
        before = loss_on(everything).item()
    model.train()
    for _ in range(30):
        loss = loss_on(data.batch(torch.randperm(data.n, generator=gen)[:32]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = loss_on(everything).item()
    assert after < 0.7 * before
