"""Where backbone weights come from: torchvision's hub cache, a local state-dict file, or a seed.

Offline machines are the normal case here, so nothing may wait on the network: a missing cached
file is reported in one line that says how to proceed, after at most a short connection probe.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import torch

from sf.errors import SfError

CLASSIFIER_PREFIXES = ("fc.", "_fc.", "classifier.")
DOWNLOAD_HOST = "download.pytorch.org"


def state_dict_sha256(state: dict[str, torch.Tensor] | torch.nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor, in name order.

    Independent of how the file was serialised, so the same weights always hash the same.
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def hub_checkpoint(url: str) -> Path:
    """Where torch.hub (and so torchvision's weights API) keeps the file for `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def offline() -> bool:
    flags = ("SF_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(f, "").lower() in ("1", "true", "yes") for f in flags)


def network_reachable(host: str = DOWNLOAD_HOST, timeout: float = 2.0) -> bool:
    if offline():
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def torchvision_imagenet(arch: str, wanted: str | None = None) -> tuple[dict, str]:
    """State dict of torchvision's ImageNet weights for `arch`, from the hub cache (or downloaded once).

    Any cached variant is used (DEFAULT first, e.g. IMAGENET1K_V2, then the others), so a file a user
    copied in by hand is found. `wanted` pins one variant (when re-creating a store's extractor).
    """
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    variants = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    if wanted:
        variants = [w for w in variants if w.name == wanted] or variants
    for w in variants:
        path = hub_checkpoint(w.url)
        if path.exists():
            return _load_file(path), f"torchvision {type(w).__name__}.{w.name} ({path})"
    want = variants[0]
    path = hub_checkpoint(want.url)
    if not network_reachable():
        raise SfError(
            f"no ImageNet weights for {arch} in the torch hub cache and no network: put {path.name} "
            f"(from {want.url}) into {path.parent}, or pass --weights PATH, --weights random, "
            f"or --backbone efficientnet_lite0"
        )
    try:
        state = want.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # urllib/hash errors: anything here means "could not download"
        raise SfError(f"downloading {want.url} failed ({type(e).__name__}: {e}); pass --weights PATH or --weights random") from None
    return state, f"torchvision {type(want).__name__}.{want.name} (downloaded to {path})"


def imagenet_cached(arch: str) -> bool:
    from torchvision.models import get_model_weights

    return any(hub_checkpoint(w.url).exists() for w in get_model_weights(arch))


def load_state_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SfError(f"{path}: weights file not found (--weights takes imagenet, random or a state-dict file)")
    return _load_file(path)


def _load_file(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SfError(f"{path}: cannot be read as a PyTorch state dict ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    # Training checkpoints often wrap the weights; DataParallel prefixes every name with "module.".
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SfError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_into(model: torch.nn.Module, state: dict, source: str) -> None:
    """Load weights; only the classifier head may be missing (the trunk is what we keep)."""
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in result.missing_keys if not k.startswith(CLASSIFIER_PREFIXES)]
    if missing or result.unexpected_keys:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {result.unexpected_keys[0]!r}"
        n = len(missing) + len(result.unexpected_keys)
        raise SfError(f"{source}: weights do not fit this backbone ({n} mismatched tensors, first {what})")
