"""What every fusion variant shares: token projections, learned missing-modality embeddings, positions.

Image regions x_j (C channels) and words w_i (D dims) are projected to a common width d:

    v^I_j = W_I x_j + p^I_j          (a learned e^I_missing + p^I_j when the product has no image)
    v^T_i = W_T w_i + p^T_i          (masked; a product without text gets one learned word e^T_missing)

p^I / p^T are learned position embeddings (grid cell, word position), so the spatial layout of the
regions and the word order can matter. Padded words are zeroed and masked, so they never leak.
A variant builds only the parts it reads (class flags below), so every parameter it has is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from sf import keyed_noise
from sf.registry import Entry, Registry


@dataclass(frozen=True)
class FusionEntry(Entry):
    uses_image: bool = True
    uses_text: bool = True


FUSIONS: Registry[FusionEntry] = Registry("fusion", "sf.fusion", FusionEntry)


def register_fusion(name: str, description: str):
    """Class decorator: `@register_fusion("biattn", "...")` makes the variant buildable by name."""

    def deco(cls):
        cls.name = name
        return FUSIONS.register(name, description, uses_image=cls.uses_image, uses_text=cls.uses_text)(cls)

    return deco


class FusionOutput(NamedTuple):
    fused: torch.Tensor  # (B, out_dim)
    attention: dict[str, torch.Tensor]  # "t2i": (B, L, R), "i2t": (B, R, L) where the variant has them


def _small(*shape: int) -> nn.Parameter:
    return nn.Parameter(0.02 * torch.randn(*shape))


class Fusion(nn.Module):
    """The contract of a fusion variant: built with the keyword arguments of `create_fusion`, `reads` the batch
    keys it uses, `forward(batch) -> FusionOutput(F (B, out_dim), attention maps it has)`."""

    name = "?"
    uses_image = True
    uses_text = True
    uses_tokens = True  # region grid + word vectors; False: the pooled vectors only

    def __init__(self, image_dim: int, text_dim: int, regions: int, text_len: int, width: int = 30,
                 out_dim: int = 30, dropout: float = 0.0) -> None:
        super().__init__()
        self.width, self.out_dim = width, out_dim
        if self.uses_image:
            self.image_proj = nn.Linear(image_dim, width)
            self.image_missing = _small(width)
        if self.uses_text:
            self.text_proj = nn.Linear(text_dim, width)
            self.text_missing = _small(width)
        if self.uses_tokens:
            self.image_pos = _small(regions, width)
            self.text_pos = _small(text_len, width)
        self.drop = keyed_noise.Dropout(dropout)

    @property
    def reads(self) -> frozenset[str]:
        """The batch entries this variant reads, so the trainer can skip copying the (large) image grid."""
        keys = {"has_image", "has_text"}
        if self.uses_image:
            keys |= {"image_grid_present"} if self.uses_tokens else {"image_pooled"}
        if self.uses_text:
            keys |= {"text_tokens", "text_mask"} if self.uses_tokens else {"text_pooled"}
        return frozenset(keys)

    def image_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, R, d). Only rows that have an image are projected: on VISUELLE 90% have none, and the
        C→d projection of the grid is the most expensive step of the whole model."""
        has = batch["has_image"]
        present = batch["image_grid_present"]  # only the rows that have an image (batching.TensorInputs)
        proj = torch.zeros(len(has), *self.image_pos.shape, device=has.device, dtype=self.image_missing.dtype)
        if len(present):
            proj = proj.index_put((has,), self.image_proj(present.float()))
        v = torch.where(has[:, None, None], proj, self.image_missing)
        return v + self.image_pos

    def text_tokens(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, d) word vectors and their (B, L) mask; a product without text gets one learned word."""
        has = batch["has_text"]
        mask = batch["text_mask"] & has[:, None]
        # Drop the trailing positions that no product of the batch uses (padding is most of L).
        used = int(mask.any(0).nonzero().max()) + 1 if bool(mask.any()) else 1
        mask = mask[:, :used]
        v = self.text_proj(batch["text_tokens"][:, :used].float()) + self.text_pos[:used]
        first = torch.zeros_like(mask)
        first[:, 0] = True
        v = torch.where(has[:, None, None], v, self.text_missing + self.text_pos[:used])
        mask = torch.where(has[:, None], mask, first)
        return v * mask[..., None], mask

    @staticmethod
    def full_length(attention: dict[str, torch.Tensor], text_len: int) -> dict[str, torch.Tensor]:
        """Pad the word axis of the maps back to the store's L (text_tokens trims unused trailing words)."""
        out = {}
        for k, a in attention.items():
            missing = text_len - (a.shape[1] if k == "t2i" else a.shape[2])
            pad = (0, 0, 0, missing) if k == "t2i" else (0, missing)
            out[k] = nn.functional.pad(a, pad) if missing else a
        return out

    def image_pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.where(batch["has_image"][:, None], self.image_proj(batch["image_pooled"].float()), self.image_missing)

    def text_pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.where(batch["has_text"][:, None], self.text_proj(batch["text_pooled"].float()), self.text_missing)


def cross_attention(vt: torch.Tensor, tmask: torch.Tensor, vi: torch.Tensor) -> dict[str, torch.Tensor]:
    """The paper's scores e_ij = v^T_i · v^I_j (scaled by 1/√d), read in both directions.

    α^{T→I}_ij = softmax_j e_ij   (each word over the regions)   → image context per word  c^I_i = Σ_j α_ij v^I_j
    α^{I→T}_ji = softmax_i e_ij   (each region over real words)  → text context per region c^T_j = Σ_i α_ji v^T_i
    pooled:  u^{T→I} = masked mean_i c^I_i,   u^{I→T} = mean_j c^T_j
    """
    e = torch.einsum("bld,brd->blr", vt, vi) * vt.shape[-1] ** -0.5
    t2i = torch.softmax(e, dim=-1) * tmask[..., None]  # padded words attend to nothing
    i2t = torch.softmax(e.masked_fill(~tmask[..., None], float("-inf")), dim=1).transpose(1, 2)
    ctx_image = t2i @ vi  # (B, L, d)
    ctx_text = i2t @ vt  # (B, R, d)
    n_words = tmask.sum(1, keepdim=True).clamp(min=1)
    return {
        "t2i": t2i,
        "i2t": i2t,
        "u_t2i": ctx_image.sum(1) / n_words,
        "u_i2t": ctx_text.mean(1),
    }
