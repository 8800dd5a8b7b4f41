"""The one device resolution for both stages: --device auto | cpu | cuda | cuda:N."""

from __future__ import annotations

import os

import torch

from sf.errors import SfError


def resolve_device(device: str = "auto") -> torch.device:
    """auto: the GPU when PyTorch sees one (torchrun's local rank when it started us), else the CPU; a named
    GPU that is not there is refused with one line."""
    if device == "auto":
        if torch.cuda.is_available():
            # torchrun starts one process per GPU and tells each its local rank.
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SfError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SfError("--device cuda: no CUDA GPU is visible to PyTorch here; use --device cpu")
    return dev
