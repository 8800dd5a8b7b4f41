"""Contract tests for every registered fusion variant, and the properties of bidirectional attention."""

from __future__ import annotations

import pytest
import torch

from sf.errors import SfError
from sf.fusion import FUSIONS, create_fusion
from sf.fusion.base import cross_attention

B, R, C, L, D, W = 6, 4, 16, 5, 12, 8
TOKEN_VARIANTS = [n for n, e in FUSIONS.items() if e.cls.uses_tokens]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[:, 3:] = False  # two padded positions everywhere
    mask[1, 2:] = False
    has_image = torch.tensor([True, True, True, False, True, False])
    has_text = torch.tensor([True, True, False, True, True, True])
    tokens = torch.randn(B, L, D, generator=g)
    grid = torch.randn(B, R, C, generator=g)
    return {
        "image_grid": grid, "image_pooled": grid.mean(1), "has_image": has_image,
        "text_tokens": tokens, "text_mask": mask & has_text[:, None], "text_pooled": tokens[:, :3].mean(1),
        "has_text": has_text,
    }


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return create_fusion(name, image_dim=C, text_dim=D, regions=R, text_len=L, width=W, out_dim=W, dropout=0.0).eval()


def fused(model, batch):
    with torch.no_grad():
        return model(batch).fused


@pytest.mark.parametrize("name", list(FUSIONS))
def test_shape_finite_and_deterministic(name):
    out = build(name)(make_batch())
    assert out.fused.shape == (B, W)
    assert torch.isfinite(out.fused).all()
    assert torch.equal(fused(build(name, seed=1), make_batch()), fused(build(name, seed=1), make_batch()))
    assert not torch.equal(fused(build(name, seed=1), make_batch()), fused(build(name, seed=2), make_batch()))


@pytest.mark.parametrize("name", list(FUSIONS))
def test_every_parameter_gets_a_gradient(name):
    model = build(name).train()
    model(make_batch()).fused.pow(2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", list(FUSIONS))
def test_padding_and_missing_modalities_never_leak(name):
    model, batch = build(name), make_batch()
    base = fused(model, batch)
    noisy = dict(batch)
    noise = torch.randn(B, L, D) * 100
    noisy["text_tokens"] = torch.where(batch["text_mask"][..., None], batch["text_tokens"], noise)
    no_img, no_txt = ~batch["has_image"], ~batch["has_text"]
    noisy["image_grid"] = torch.where(no_img[:, None, None], 50.0, batch["image_grid"])
    noisy["image_pooled"] = torch.where(no_img[:, None], 50.0, batch["image_pooled"])
    noisy["text_pooled"] = torch.where(no_txt[:, None], 50.0, batch["text_pooled"])
    torch.testing.assert_close(fused(model, noisy), base)


@pytest.mark.parametrize("name", list(FUSIONS))
def test_depends_on_exactly_the_modalities_it_declares(name):
    model, batch = build(name), make_batch()
    base = fused(model, batch)
    other = make_batch(seed=7)
    img = dict(batch, image_grid=other["image_grid"], image_pooled=other["image_pooled"])
    txt = dict(batch, text_tokens=other["text_tokens"], text_pooled=other["text_pooled"])
    rows_img, rows_txt = batch["has_image"], batch["has_text"]
    img_changed = not torch.allclose(fused(model, img)[rows_img], base[rows_img])
    txt_changed = not torch.allclose(fused(model, txt)[rows_txt], base[rows_txt])
    assert img_changed == FUSIONS[name].uses_image
    assert txt_changed == FUSIONS[name].uses_text


@pytest.mark.parametrize("name", TOKEN_VARIANTS)
def test_region_and_word_order_matter(name):
    model, batch = build(name), make_batch()
    base = fused(model, batch)
    regions = dict(batch, image_grid=batch["image_grid"][:, torch.tensor([2, 0, 3, 1])])
    words = dict(batch, text_tokens=batch["text_tokens"][:, torch.tensor([1, 0, 2, 3, 4])])
    rows = batch["has_image"] & batch["has_text"] & (batch["text_mask"].sum(1) >= 2)
    assert not torch.allclose(fused(model, regions)[rows], base[rows], atol=1e-6)
    assert not torch.allclose(fused(model, words)[rows], base[rows], atol=1e-6)


def test_missing_modality_rows_still_get_distinct_learned_vectors():
    model, batch = build("biattn"), make_batch()
    none = dict(batch, has_image=torch.zeros(B, dtype=torch.bool), has_text=torch.zeros(B, dtype=torch.bool),
                text_mask=torch.zeros(B, L, dtype=torch.bool))
    f = fused(model, none)
    assert torch.isfinite(f).all()
    torch.testing.assert_close(f, f[:1].expand(B, -1))  # nothing known: the same learned vector for all


def test_attention_maps_are_distributions_over_real_tokens():
    model, batch = build("biattn"), make_batch()
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


def test_unknown_fusion_is_a_user_error():
    with pytest.raises(SfError, match="choose from"):
        create_fusion("nope", image_dim=C, text_dim=D, regions=R, text_len=L)
