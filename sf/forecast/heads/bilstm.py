"""BiLSTM head: a forward and a backward LSTM over the horizon steps, ŷ_t = W_o [h→_t ; h←_t] + b_o.

Every step sees the whole season's known inputs (dates, trends, observed weeks) from both sides.
"""

from __future__ import annotations

from sf.forecast.heads.base import register_head
from sf.forecast.heads.lstm import LSTMHead


@register_head("bilstm", "bidirectional LSTM over the horizon steps (the paper)", causal=False)
class BiLSTMHead(LSTMHead):
    bidirectional = True
