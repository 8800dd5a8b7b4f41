"""LSTM head (one direction): h_t = LSTM(x_t, h_{t-1}),  ŷ_t = W_o dropout(h_t) + b_o."""

from __future__ import annotations

import torch
from torch import nn

from sf.forecast.heads.base import Head, register_head


@register_head("lstm", "one-directional LSTM over the horizon steps", causal=True)
class LSTMHead(Head):
    bidirectional = False

    def __init__(self, in_dim: int, hidden: int = 30, n_outputs: int = 1, dropout: float = 0.0, layers: int = 1) -> None:
        super().__init__()
        self.rnn = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True, bidirectional=self.bidirectional,
                           dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden * (2 if self.bidirectional else 1), n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.out(self.drop(h))
