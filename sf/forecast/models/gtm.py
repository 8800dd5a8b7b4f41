"""A GTM-Transformer-style forecaster (Skenderi et al. 2021, "Well Googled is Half Done"; the paper's Model_2).

    memory = TransformerEncoder( W_e · exog_w + p_w ),  w = the lookback weeks before release (one token each;
                                                          with exog_future=True the horizon weeks too)
    q      = MLP( [ image ; text ; date ; Σ_a attribute_a ; obs ] )      one query token per product
    h      = TransformerDecoder( q, memory )                             (1 layer: self-attn, cross-attn, FFN)
    ŷ      = W_o · h   reshaped to (H, n_outputs)                        the whole horizon at once

image = W_i · pooled image vector (a learned vector when the product has no image), text = W_t · pooled
sentence vector (learned when absent), date = W_d · the calendar features of the release week. GTM-Transformer
embeds the category/colour/fabric words with BERT; here each attribute value has a learned embedding, summed.
obs = the observed first weeks of sales and their mask (zeros for a new product), so the model also serves
short-observation forecasting. Without exogenous series (none in the data, or use_exog=False) the memory is
one learned token.
"""

from __future__ import annotations

import torch
from torch import nn

from sf.errors import SfError
from sf.forecast.models.base import Dims, ForecastModel, register_model


def _learned(d: int) -> nn.Parameter:
    return nn.Parameter(0.02 * torch.randn(d))


@register_model("gtm", "GTM-Transformer style: transformer over exog trends, image/text/date query, "
                "1-layer decoder emitting the horizon at once")
class GTMTransformer(ForecastModel):
    def __init__(self, dims: Dims, hidden: int = 32, heads: int = 2, layers: int = 1, dropout: float = 0.1,
                 use_exog: bool = True, exog_future: bool = False, use_attributes: bool = True) -> None:
        super().__init__()
        if hidden % heads:
            raise SfError(f"gtm: hidden ({hidden}) must be divisible by heads ({heads})")
        d, self.dims = hidden, dims
        self.exog_future = use_exog and exog_future and dims.exog_terms > 0
        self.weeks = dims.lookback + (dims.horizon if self.exog_future else 0)
        self.has_exog = use_exog and dims.exog_terms > 0 and self.weeks > 0
        if self.has_exog:
            self.exog_in = nn.Linear(dims.exog_terms, d)
            self.position = nn.Parameter(0.02 * torch.randn(1, self.weeks, d))
            enc = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(enc, layers, enable_nested_tensor=False)
        else:
            self.memory_token = nn.Parameter(0.02 * torch.randn(1, 1, d))
        self.image_in, self.image_missing = nn.Linear(dims.image_channels, d), _learned(d)
        self.text_in, self.text_missing = nn.Linear(dims.text_dim, d), _learned(d)
        self.date_in = nn.Linear(dims.calendar, d)
        self.obs_in = nn.Linear(2 * dims.horizon, d)
        self.attributes = nn.ModuleList(
            nn.Embedding(card, d) for card in (dims.attribute_cardinalities if use_attributes else ()))
        parts = 4 + (1 if len(self.attributes) else 0)
        self.fuse = nn.Sequential(nn.Linear(parts * d, 2 * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        dec = nn.TransformerDecoderLayer(d, heads, 2 * d, dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(dec, 1)
        self.out = nn.Linear(d, dims.horizon * dims.n_outputs)
        # Dropout stays on the residual paths only: dropping attention weights costs more CPU time here
        # (one mask per head and week pair) than the rest of the model.
        for layer in [*(self.encoder.layers if self.has_exog else ()), *self.decoder.layers]:
            for attn in (getattr(layer, "self_attn", None), getattr(layer, "multihead_attn", None)):
                if attn is not None:
                    attn.dropout = 0.0

    @property
    def reads(self) -> frozenset[str]:
        """Batch keys used: pooled vectors only, so the trainer never copies the region grid."""
        return frozenset({"image_pooled", "has_image", "text_pooled", "has_text", "exog", "calendar", "attributes"})

    def memory(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        b = batch["exog"].shape[0]
        if not self.has_exog:
            return self.memory_token.expand(b, -1, -1)
        weeks = batch["exog"][:, : self.weeks]
        return self.encoder(self.exog_in(weeks) + self.position)

    def query(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = torch.where(batch["has_image"][:, None], self.image_in(batch["image_pooled"]), self.image_missing)
        text = torch.where(batch["has_text"][:, None], self.text_in(batch["text_pooled"]), self.text_missing)
        date = self.date_in(batch["calendar"][:, 0])
        obs = self.obs_in(torch.cat([batch["obs"], batch["obs_mask"]], dim=1))
        parts = [image, text, date, obs]
        if len(self.attributes):
            parts.append(sum(emb(batch["attributes"][:, j]) for j, emb in enumerate(self.attributes)))
        return self.fuse(torch.cat(parts, dim=1))[:, None, :]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.decoder(self.query(batch), self.memory(batch))[:, 0]
        return self.out(h).view(-1, self.dims.horizon, self.dims.n_outputs)
