"""Contract tests for every registered fusion variant, and the properties of bidirectional attention."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sf.errors import SfError
from sf.forecast.batching import TensorInputs
from sf.forecast.inputs import CALENDAR_FEATURES, Inputs
from sf.fusion import FUSIONS, create_fusion
from sf.fusion.base import cross_attention

B, R, C, L, D, W = 6, 4, 16, 5, 12, 8
TOKEN_VARIANTS = [n for n, e in FUSIONS.items() if e.cls.uses_tokens]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_inputs(seed: int = 0) -> Inputs:
    """B products' image regions and words (the sales parts are empty: a fusion never reads them)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((B, L), dtype=bool)
    mask[:, 3:] = False  # two padded positions everywhere
    mask[1, 2:] = False
    has_image = np.array([True, True, True, False, True, False])
    has_text = np.array([True, True, False, True, True, True])
    tokens = rng.standard_normal((B, L, D)).astype(np.float32)
    grid = rng.standard_normal((B, R, C)).astype(np.float32)
    z = np.zeros
    return Inputs(
        product_ids=[f"p{i}" for i in range(B)], horizon=1, image_grid=grid, image_pooled=grid.mean(1),
        has_image=has_image, text_tokens=tokens, text_mask=mask & has_text[:, None], text_pooled=tokens[:, :3].mean(1),
        has_text=has_text, exog=z((B, 1, 0), np.float32), exog_names=[],
        calendar=z((B, 1, len(CALENDAR_FEATURES)), np.float32), attributes=z((B, 0), np.int64), attribute_names=[],
        attribute_vocab={}, release=np.full(B, np.datetime64("NaT"), dtype="datetime64[D]"),
        y=z((B, 1), np.float32), y_mask=z((B, 1), bool), split=None)


def batch_of(model, inp: Inputs) -> dict[str, torch.Tensor]:
    """The batch training builds for this variant (sf.forecast.batching, the one builder)."""
    return TensorInputs(inp, 1.0, reads=model.reads).batch_all()


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return create_fusion(name, image_dim=C, text_dim=D, regions=R, text_len=L, width=W, out_dim=W, dropout=0.0).eval()


def fused(model, inp: Inputs):
    with torch.no_grad():
        return model(batch_of(model, inp)).fused


@pytest.mark.numerics
@pytest.mark.parametrize("name", list(FUSIONS))
def test_shape_finite_and_deterministic(name):
    out = fused(build(name), make_inputs())
    assert out.shape == (B, W)
    assert torch.isfinite(out).all()
    assert torch.equal(fused(build(name, seed=1), make_inputs()), fused(build(name, seed=1), make_inputs()))
    assert not torch.equal(fused(build(name, seed=1), make_inputs()), fused(build(name, seed=2), make_inputs()))


@pytest.mark.parametrize("name", list(FUSIONS))
def test_every_parameter_gets_a_gradient(name):
    model = build(name).train()
    model(batch_of(model, make_inputs())).fused.pow(2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", list(FUSIONS))
def test_padding_and_missing_modalities_never_leak(name):
    model, inp = build(name), make_inputs()
    base = fused(model, inp)
    noise = np.random.default_rng(1).standard_normal((B, L, D)).astype(np.float32) * 100
    no_img, no_txt = ~inp.has_image, ~inp.has_text
    noisy = replace(inp, text_tokens=np.where(inp.text_mask[..., None], inp.text_tokens, noise),
                    image_grid=np.where(no_img[:, None, None], 50.0, inp.image_grid).astype(np.float32),
                    image_pooled=np.where(no_img[:, None], 50.0, inp.image_pooled).astype(np.float32),
                    text_pooled=np.where(no_txt[:, None], 50.0, inp.text_pooled).astype(np.float32))
    torch.testing.assert_close(fused(model, noisy), base)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_depends_on_exactly_the_modalities_it_declares(name):
    model, inp = build(name), make_inputs()
    base = fused(model, inp)
    other = make_inputs(seed=7)
    img = replace(inp, image_grid=other.image_grid, image_pooled=other.image_pooled)
    txt = replace(inp, text_tokens=other.text_tokens, text_pooled=other.text_pooled)
    rows_img, rows_txt = torch.from_numpy(inp.has_image), torch.from_numpy(inp.has_text)
    img_changed = not torch.allclose(fused(model, img)[rows_img], base[rows_img])
    txt_changed = not torch.allclose(fused(model, txt)[rows_txt], base[rows_txt])
    assert img_changed == FUSIONS[name].uses_image
    assert txt_changed == FUSIONS[name].uses_text


@pytest.mark.parametrize("name", TOKEN_VARIANTS)
def test_region_and_word_order_matter(name):
    model, inp = build(name), make_inputs()
    base = fused(model, inp)
    regions = replace(inp, image_grid=inp.image_grid[:, [2, 0, 3, 1]])
    words = replace(inp, text_tokens=inp.text_tokens[:, [1, 0, 2, 3, 4]])
    rows = torch.from_numpy(inp.has_image & inp.has_text & (inp.text_mask.sum(1) >= 2))
    assert not torch.allclose(fused(model, regions)[rows], base[rows], atol=1e-6)
    assert not torch.allclose(fused(model, words)[rows], base[rows], atol=1e-6)


def test_missing_modality_rows_still_get_distinct_learned_vectors():
    model, inp = build("biattn"), make_inputs()
    none = replace(inp, has_image=np.zeros(B, dtype=bool), has_text=np.zeros(B, dtype=bool),
                   text_mask=np.zeros((B, L), dtype=bool))
    f = fused(model, none)
    assert torch.isfinite(f).all()
    torch.testing.assert_close(f, f[:1].expand(B, -1))  # nothing known: the same learned vector for all


def test_attention_maps_are_distributions_over_real_tokens():
    model, inp = build("biattn"), make_inputs()
    batch = batch_of(model, inp)
    with torch.no_grad():
        att = model(batch).attention
    t2i, i2t = att["t2i"], att["i2t"]
    assert t2i.shape == (B, L, R) and i2t.shape == (B, R, L)
    real = batch["text_mask"].clone()
    real[~batch["has_text"], 0] = True  # a product without text attends through its learned missing word
    torch.testing.assert_close(t2i.sum(-1), real.float())
    torch.testing.assert_close(i2t.sum(-1), torch.ones(B, R))
    assert (i2t.masked_select(~real[:, None, :].expand(-1, R, -1)) == 0).all()


def test_each_direction_pools_the_other_modality_guided_by_the_first():
    """Literal eq. (3) would pool a word's own vector with weights summing to 1, so text alone would decide
    the text term. Here the text decides which image regions are pooled, and vice versa."""
    g = torch.Generator().manual_seed(3)
    vt, vi = torch.randn(2, L, W, generator=g), torch.randn(2, R, W, generator=g)
    mask = torch.ones(2, L, dtype=torch.bool)
    base = cross_attention(vt, mask, vi)
    new_text = cross_attention(torch.randn(2, L, W, generator=g), mask, vi)
    new_image = cross_attention(vt, mask, torch.randn(2, R, W, generator=g))
    # u^{T→I} is a mix of image regions whose weights the words choose: it moves with the text ...
    assert not torch.allclose(new_text["u_t2i"], base["u_t2i"])
    # ... and stays inside the hull of the regions (a convex combination), unlike a sum of word vectors.
    assert (base["u_t2i"] <= vi.max(1).values + 1e-6).all() and (base["u_t2i"] >= vi.min(1).values - 1e-6).all()
    assert not torch.allclose(new_image["u_i2t"], base["u_i2t"])
    assert (base["u_i2t"] <= vt.max(1).values + 1e-6).all() and (base["u_i2t"] >= vt.min(1).values - 1e-6).all()


def test_i2t_reads_an_image_only_through_the_words_it_picks():
    """i2t: every region picks a mix of the words and F averages the regions' picks, so a product with an image
    but no description (one learned word to pick) gets the same F whatever its image; biattn's other half and
    i2t_image's mean region (sf's default) do see it (docs/model.md)."""
    inp, other = make_inputs(), make_inputs(seed=7)
    img = replace(inp, image_grid=other.image_grid, image_pooled=other.image_pooled)
    no_words = torch.from_numpy(inp.has_image & ~inp.has_text)
    with_words = torch.from_numpy(inp.has_image & inp.has_text)
    assert no_words.any() and with_words.any()
    i2t = build("i2t")
    torch.testing.assert_close(fused(i2t, img)[no_words], fused(i2t, inp)[no_words])
    assert not torch.allclose(fused(i2t, img)[with_words], fused(i2t, inp)[with_words])
    for name in ("biattn", "i2t_image"):
        model = build(name)
        assert not torch.allclose(fused(model, img)[no_words], fused(model, inp)[no_words])


def test_unknown_fusion_is_a_user_error():
    with pytest.raises(SfError, match="choose from"):
        create_fusion("nope", image_dim=C, text_dim=D, regions=R, text_len=L)
