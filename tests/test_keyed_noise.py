"""Dropout draws keyed per product (sf.keyed_noise): what lets the MC-dropout forecast batch many products."""

from __future__ import annotations

import pytest
import torch

from sf import keyed_noise
from sf.forecast.heads import HEADS, create_head


def test_a_products_draws_depend_on_its_seed_only():
    with keyed_noise.keyed_rows([7, 8, 9], repeats=3):
        together = keyed_noise.rand((9, 4, 2))
        second_site = keyed_noise.rand((9, 5))
    with keyed_noise.keyed_rows([8], repeats=3):
        alone = keyed_noise.rand((3, 4, 2))
        alone_second = keyed_noise.rand((3, 5))
    assert torch.equal(together[3:6], alone) and torch.equal(second_site[3:6], alone_second)
    assert not torch.equal(together[0:3], together[3:6])  # another seed, other draws
    assert not torch.equal(together[3], together[4])  # a product's passes differ
    with keyed_noise.keyed_rows([1, 2], repeats=3), pytest.raises(ValueError, match="5 rows drawn"):
        keyed_noise.rand((5, 2))


def test_outside_the_block_draws_come_from_the_global_stream():
    torch.manual_seed(0)
    a = keyed_noise.rand((4, 3))
    torch.manual_seed(0)
    assert torch.equal(a, torch.rand(4, 3)) and not keyed_noise.active()


def test_keyed_dropout_is_inverted_dropout_and_off_in_eval():
    x = torch.ones(4000, 10)
    drop = keyed_noise.Dropout(0.25)
    with keyed_noise.keyed_rows(range(40), repeats=100):
        y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.75))
    drop.eval()
    with keyed_noise.keyed_rows(range(40), repeats=100):
        assert torch.equal(drop(x), x)


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_draws_its_dropout_per_product_inside_the_block(name):
    """Two stacked layers with dropout between them (inside nn.LSTM while training): a product's passes come out
    the same alone or among others, and the passes differ, so the dropout was on."""
    torch.manual_seed(0)
    head = create_head(name, in_dim=7, hidden=8, n_outputs=1, dropout=0.3, layers=2, skip=True).train()
    x = torch.randn(12, 6, 7)  # 3 products x 4 passes
    with keyed_noise.keyed_rows([10, 11, 12], repeats=4):
        y = head(x)
    with keyed_noise.keyed_rows([11], repeats=4):
        alone = head(x[4:8])
    torch.testing.assert_close(y[4:8], alone, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(y[4], y[5])


@pytest.mark.parametrize("name", [n for n in HEADS if n.endswith("lstm")])
def test_the_lstm_stack_one_layer_at_a_time_is_nn_lstm(name):
    torch.manual_seed(0)
    head = create_head(name, in_dim=7, hidden=8, n_outputs=1, dropout=0.0, layers=3)
    x = torch.randn(5, 6, 7)
    torch.testing.assert_close(head._layer_by_layer(x), head.rnn(x)[0], rtol=1e-5, atol=1e-6)
