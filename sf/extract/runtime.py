"""Device and precision choices, and the batched forward pass: uint8 images -> float16 features.

CPU: channels_last, fp32 unless `--precision bf16` is asked for. `auto` does not look at the CPU's
features: bf16 gained only 1.1-1.8x on an AVX512-BF16 CPU, was 4-22x slower where emulated (AVX2), and
moves features by up to 8% of a pooled vector, so a CPU-dependent choice made one dataset's stores differ
between machines far beyond fp32's cross-CPU agreement (bit-identical to 2e-4) — bench/cpu_precision.py,
docs/numerics.md. CUDA: channels_last, bf16/fp16 autocast, uint8 transfer from pinned memory with
normalisation on the GPU.

Every forward pass has the same shape: short batches are zero-padded to the full batch size.
Kernels pick their algorithm by shape, so an image's features then depend only on the image —
not on its batch neighbours — and shards, resumed runs and incremental updates give bit-identical
rows. (cudnn autotuning is off for the same reason: it may pick a different algorithm per run.)
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from sf.errors import SfError
from sf.extract.images import ImagePrep

F16_MAX = float(np.finfo(np.float16).max)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def resolve_precision(precision: str, device: torch.device, like: dict | None = None) -> str:
    """The precision to run: an explicit choice; else that of the store `like` re-creates when it was made
    on this kind of device (a re-extraction then repeats the very same computation); else bf16/fp16 on
    CUDA and fp32 on any CPU."""
    if precision not in PRECISIONS:
        raise SfError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise SfError("--precision fp16 is for CUDA; on CPU use fp32 or bf16")
        return precision
    if like is not None:
        made, made_on = like.get("precision"), str(like.get("device") or "").split(":")[0]
        if made in PRECISIONS[1:] and made_on == device.type:
            return made
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class ImageFeaturizer:
    """trunk + normalisation on `device`: (B, S, S, 3) uint8 -> pooled (B, C) and grid (B, R, C) float16."""

    def __init__(self, trunk: torch.nn.Module, prep: ImagePrep, device: torch.device, precision: str, grid: bool = True,
                 batch_size: int = 32):
        self.device, self.precision, self.want_grid, self.batch_size = device, precision, grid, batch_size
        self.trunk = trunk.to(device).to(memory_format=torch.channels_last)
        mean = torch.tensor(prep.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(prep.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        # x/255 then (x - mean)/std folded into one multiply-add.
        self.scale = 1.0 / (255.0 * std)
        self.shift = -mean / std
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        return self.submit(images)()

    @torch.inference_mode()
    def submit(self, images: torch.Tensor):
        """Queue one forward pass; returns a function that waits for it and gives (pooled, grid).

        On CUDA the results come back by a non-blocking copy into pinned memory, so the caller can
        queue the next pass (and decode, encode text, hand rows to the writer) before collecting this one."""
        n = images.shape[0]
        if n % self.batch_size:
            pad = self.batch_size - n % self.batch_size
            images = torch.cat([images, images.new_zeros((pad, *images.shape[1:]))])
        # NHWC uint8 viewed as NCHW is already channels_last in memory: no copy.
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        x = (x.float() * self.scale + self.shift).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            fmap = self.trunk(x)
        fmap = fmap[:n].float()
        pooled = fmap.mean(dim=(2, 3)).clamp(-F16_MAX, F16_MAX).half()
        grid = None
        if self.want_grid:
            b, c = fmap.shape[:2]
            grid = fmap.permute(0, 2, 3, 1).reshape(b, -1, c).clamp(-F16_MAX, F16_MAX).half()
        if self.device.type != "cuda":
            out = (pooled.numpy(), None if grid is None else grid.numpy())
            return lambda: out
        pooled, grid = _to_pinned(pooled), None if grid is None else _to_pinned(grid)
        done = torch.cuda.Event()
        done.record()

        def result() -> tuple[np.ndarray, np.ndarray | None]:
            done.synchronize()
            return pooled.numpy(), None if grid is None else grid.numpy()

        return result


def _to_pinned(t: torch.Tensor) -> torch.Tensor:
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out
