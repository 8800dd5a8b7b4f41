"""Contract tests for every registered head: shapes, gradients, determinism, causality as registered."""

from __future__ import annotations

import pytest
import torch

from sf.forecast.heads import HEADS, create_head

B, H, IN = 5, 6, 7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build_head(name, seed=0, n_outputs=2, skip=False):
    torch.manual_seed(seed)
    return create_head(name, in_dim=IN, hidden=8, n_outputs=n_outputs, dropout=0.0, skip=skip)


@pytest.mark.numerics
@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("name", list(HEADS))
def test_head_shape_gradients_determinism(name, skip):
    x = torch.randn(B, H, IN, generator=torch.Generator().manual_seed(0))
    head = build_head(name, skip=skip)
    y = head(x)
    assert y.shape == (B, H, 2) and torch.isfinite(y).all()
    y.sum().backward()
    for pname, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"
    assert torch.equal(build_head(name, seed=3, skip=skip)(x), build_head(name, seed=3, skip=skip)(x))


@pytest.mark.parametrize("name", list(HEADS))
def test_head_skip_reads_each_steps_input_directly(name):
    """With skip the output keeps a path from a step's input that bypasses the sequence model: with the recurrent
    part's output weights zeroed, changing step t's input still changes step t's output (and only through it)."""
    x = torch.randn(B, H, IN, generator=torch.Generator().manual_seed(0))
    head = build_head(name, skip=True).eval()
    with torch.no_grad():
        state = head.out.in_features - IN
        head.out.weight[:, :state] = 0
        moved = x.clone()
        moved[:, 2] += 1.0
        a, b = head(x), head(moved)
    changed = (a != b).any(-1).any(0)
    assert changed.tolist() == [t == 2 for t in range(H)]
    plain = build_head(name).eval()
    with torch.no_grad():
        plain.out.weight.zero_()
        assert torch.equal(plain(x), plain(moved))  # without skip the state is the only path


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
