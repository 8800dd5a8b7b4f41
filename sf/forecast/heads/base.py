"""The contract of a sequence head, and the registry `--head` looks names up in."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sf.registry import Entry, Registry


class Head(nn.Module):
    """Built as `cls(in_dim=, hidden=, n_outputs=, dropout=, layers=, skip=)`; `forward(x (B, H, in_dim)) ->
    (B, H, n_outputs)`, every step at once. A causal head's output at step t reads only steps <= t. skip=True:
    the output also reads each step's input directly, beside the sequence model's state."""


@dataclass(frozen=True)
class HeadEntry(Entry):
    causal: bool = False  # True: the output at step t reads only steps <= t


HEADS: Registry[HeadEntry] = Registry("head", "sf.forecast.heads", HeadEntry)


def register_head(name: str, description: str, causal: bool):
    """Class decorator: `@register_head("bilstm", "...", causal=False)` makes the head buildable by name."""
    return HEADS.register(name, description, causal=causal)
