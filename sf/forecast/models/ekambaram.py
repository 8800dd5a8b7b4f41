"""An attention-based multimodal encoder-decoder RNN in the style of Ekambaram et al. 2020 (the paper's Model_1).

Encoder: the product's multimodal tokens m_1..m_M, each projected to width d plus a modality embedding —
image regions (W_i · v_j^I), description words (W_t · v_i^T, padding masked) and one token per attribute
value. A product without an image (or text) gets a learned "missing" token in that place.
Decoder: a GRU over the horizon steps t = 0..H-1 whose every state attends to the tokens (Luong-style
attention, computed for all steps in one batched product):

    h_0  = tanh(W_h · mean_j m_j + W_z vec(exog[-lookback:0]))
    h_t  = GRU( [calendar_t ; (exog_t) ; s_{t-1} ; known_{t-1}], h_{t-1} )
    α_t  = softmax_j( (W_q h_t) · m_j / sqrt(d) ),   c_t = Σ_j α_tj m_j
    ŷ_t  = W_o · [h_t ; c_t]                                          (n_outputs values)

exog[-lookback:0] are the exogenous series over the weeks before release (all a retailer has for a new product);
exog_t, the series at that horizon week, only with exog_future=True (known-future covariates); s_{t-1} is the previous week's observed sales with
its flag known_{t-1} (both zero for a new product, so no teacher forcing and no train/forecast mismatch;
given the first weeks, the same model serves short-observation forecasting). Feeding the model's own
previous prediction instead would force a Python loop over the steps; this keeps one GRU call per batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from sf.forecast.models.base import Dims, ForecastModel, register_model

IMAGE, TEXT, ATTRIBUTE = 0, 1, 2


@register_model("ekambaram", "attention-based multimodal encoder-decoder RNN (Ekambaram et al. 2020 style): "
                "GRU over the horizon attending to image regions, words and attributes")
class AttentionRNN(ForecastModel):
    def __init__(self, dims: Dims, hidden: int = 32, dropout: float = 0.1, use_exog: bool = True,
                 exog_future: bool = False, use_attributes: bool = True) -> None:
        super().__init__()
        d, self.dims = hidden, dims
        use_exog = use_exog and dims.exog_terms > 0
        self.exog_future = use_exog and exog_future
        self.exog_terms = dims.exog_terms if self.exog_future else 0  # per horizon step
        self.lookback = nn.Linear(dims.lookback * dims.exog_terms, d) if use_exog and dims.lookback > 0 else None
        self.image_in = nn.Linear(dims.image_channels, d)
        self.text_in = nn.Linear(dims.text_dim, d)
        self.image_missing = nn.Parameter(0.02 * torch.randn(d))
        self.text_missing = nn.Parameter(0.02 * torch.randn(d))
        self.attributes = nn.ModuleList(
            nn.Embedding(card, d) for card in (dims.attribute_cardinalities if use_attributes else ()))
        self.modality = nn.Embedding(3, d)
        self.init_h = nn.Linear(d, d)
        self.rnn = nn.GRU(dims.calendar + self.exog_terms + 2, d, batch_first=True)
        self.query = nn.Linear(d, d, bias=False)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * d, dims.n_outputs)

    @property
    def reads(self) -> frozenset[str]:
        return frozenset({"image_grid", "has_image", "text_tokens", "text_mask", "has_text", "exog", "calendar",
                          "attributes"})

    def tokens(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Multimodal tokens (B, M, d) and their validity mask (B, M)."""
        has_image, has_text = batch["has_image"], batch["has_text"]
        grid = batch["image_grid"]
        # Only rows with an image are projected: most of VISUELLE has none, and this is the costliest matmul.
        image = self.image_missing.expand(grid.shape[0], grid.shape[1], -1)
        rows = has_image.nonzero().squeeze(1)
        if rows.numel():
            image = image.index_put((rows,), self.image_in(grid[rows]))
        image = image + self.modality.weight[IMAGE]
        text = self.text_in(batch["text_tokens"])
        text = torch.where(has_text[:, None, None], text, self.text_missing) + self.modality.weight[TEXT]
        first = torch.zeros_like(batch["text_mask"])
        first[:, 0] = True
        # Without text the only valid word is the learned "missing" token in position 0.
        text_valid = torch.where(has_text[:, None], batch["text_mask"], first)
        parts, valid = [image, text], [torch.ones(image.shape[:2], dtype=torch.bool, device=image.device), text_valid]
        if len(self.attributes):
            attrs = torch.stack([emb(batch["attributes"][:, j]) for j, emb in enumerate(self.attributes)], dim=1)
            parts.append(attrs + self.modality.weight[ATTRIBUTE])
            valid.append(torch.ones(attrs.shape[:2], dtype=torch.bool, device=attrs.device))
        return self.drop(torch.cat(parts, dim=1)), torch.cat(valid, dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        memory, valid = self.tokens(batch)
        w = valid.unsqueeze(-1).float()
        lookback = self.dims.lookback
        h0 = self.init_h((memory * w).sum(1) / w.sum(1))
        if self.lookback is not None:
            h0 = h0 + self.lookback(batch["exog"][:, :lookback].flatten(1))
        h0 = torch.tanh(h0)
        # s_{t-1}: last week's sales and whether it is known, shifted so step t never sees its own target.
        previous = F.pad(torch.stack([batch["obs"], batch["obs_mask"]], dim=-1)[:, :-1], (0, 0, 1, 0))
        steps = [batch["calendar"], previous]
        if self.exog_future:
            steps.insert(1, batch["exog"][:, lookback:lookback + self.dims.horizon])
        steps = torch.cat(steps, dim=-1)
        states, _ = self.rnn(steps, h0[None].contiguous())
        scores = torch.einsum("bhd,bmd->bhm", self.query(states), memory) / math.sqrt(memory.shape[-1])
        alpha = torch.softmax(scores.masked_fill(~valid[:, None, :], float("-inf")), dim=-1)
        context = torch.einsum("bhm,bmd->bhd", alpha, memory)
        return self.out(self.drop(torch.cat([states, context], dim=-1)))
