"""Numerics that hold on any x86-64 CPU (AVX2, AVX-512, AMX) and any thread count.

Bitwise equality only where the very same computation is repeated (same precision, same batch shape);
a tolerance derived from the arithmetic, stated beside the assertion, where a shape or a kernel may
differ. `.ci/run` runs every test marked `numerics` a second time under other CPU kernels and another
thread count (docs/numerics.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sf.cache.reader import read_attrs
from sf.extract import sources as I
from sf.extract import job
from sf.extract.runtime import resolve_precision
from tests.test_extract_helpers import assert_same_store, make_dataset, store_arrays, tiny_config

pytestmark = [pytest.mark.numerics, pytest.mark.usefixtures("one_torch_thread")]

F16_U = 2.0**-11  # unit roundoff of float16, the store's feature dtype
F32_U = 2.0**-24  # unit roundoff of float32, the forward pass's


def test_auto_precision_does_not_depend_on_the_cpu():
    cpu = torch.device("cpu")
    # fp32 whether or not this CPU has native bf16 (the CI's second run flips that on bf16 CPUs)
    assert resolve_precision("auto", cpu) == "fp32"
    # re-creating a store repeats its precision when it was made on this kind of device ...
    assert resolve_precision("auto", cpu, like={"precision": "bf16", "device": "cpu"}) == "bf16"
    # ... not a GPU's (fp16 does not run on a CPU, and a CPU's bf16 rounds differently anyway)
    assert resolve_precision("auto", cpu, like={"precision": "fp16", "device": "cuda:0"}) == "fp32"
    assert resolve_precision("fp32", cpu, like={"precision": "bf16", "device": "cpu"}) == "fp32"


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ||a - b|| / ||b|| over the feature vectors (last axis) that are not all zero."""
    a, b = a.astype(np.float64).reshape(-1, a.shape[-1]), b.astype(np.float64).reshape(-1, b.shape[-1])
    norm = np.linalg.norm(b, axis=1)
    keep = norm > 0
    return float((np.linalg.norm(a - b, axis=1)[keep] / norm[keep]).max())


def test_another_batch_size_agrees_to_float16_storage(tmp_path):
    """Batch size 4 vs 8 (and 8 pads 14 images to 16, 4 to 16 as well, in other batches): other conv shapes,
    so oneDNN may pick other kernels and sum in another order."""
    data = make_dataset(tmp_path / "shop", n=14)
    a = job.run(I.from_dataset(data), tmp_path / "a.h5", tiny_config(batch_size=4)).out
    b = job.run(I.from_dataset(data), tmp_path / "b.h5", tiny_config(batch_size=8)).out
    x, y = store_arrays(a), store_arrays(b)
    # Each store rounds its float32 features to float16 once: <= F16_U relative per element, so two stores
    # differ by <= 2 F16_U per vector from storage alone. Under it, float32 summation-order differences:
    # <= sqrt(K) F32_U per layer typically (K <= 9 * 512 in ResNet-18), over 20 layers whose BatchNorm keeps
    # gains near 1: ~2e-5, rounded up to 2^-14 ≈ 6e-5 (bench/cpu_precision.py measures 4.9e-5 for ResNet-18's
    # fp32 features between AVX2 and AVX-512 kernels at 224 px).
    tol = 2 * F16_U + 2.0**-14
    for name in ("image/pooled", "image/grid"):
        assert rel_err(x[name], y[name]) <= tol, name
    # The text encoder does not batch across rows here, and the row bookkeeping is exact.
    for name in ("text/tokens", "text/pooled", "text/mask", "keys", "status"):
        np.testing.assert_array_equal(x[name], y[name], err_msg=name)


def test_recreating_a_bf16_store_repeats_its_precision_and_its_bytes(tmp_path):
    data = make_dataset(tmp_path / "shop", n=6)
    first = job.run(I.from_dataset(data), tmp_path / "bf16.h5", tiny_config(precision="bf16")).out
    again = job.extract_dataset(data, tmp_path / "again.h5", like=first, workers=0, batch_size=4)
    assert read_attrs(again)["precision"] == "bf16"
    assert_same_store(again, first)  # same precision, same batch shape: the very same computation
