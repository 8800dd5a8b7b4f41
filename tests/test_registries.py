"""All six registries are sf.registry.Registry objects, filled by importing their package once: never empty (an
empty one would make every parametrised contract test collect nothing), every entry described, one error for an
unknown name, and a loud one for a registry read before its package filled it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sf.errors import SfError
from sf.extract.backbones import BACKBONES
from sf.extract.text import TEXT_ENCODERS
from sf.forecast.baselines import BASELINES
from sf.forecast.heads import HEADS
from sf.forecast.models import MODELS
from sf.fusion import FUSIONS
from sf.registry import Registry

REGISTRIES = {"models": MODELS, "fusions": FUSIONS, "heads": HEADS, "baselines": BASELINES, "backbones": BACKBONES,
              "text encoders": TEXT_ENCODERS}
EXPECTED = {"models": {"sf", "gtm", "ekambaram"}, "fusions": {"biattn", "t2i", "i2t", "i2t_image", "concat", "image", "text", "none"},
            "heads": {"lstm", "bilstm"}, "baselines": {"mean_curve", "attribute_mean", "knn_image", "knn_attributes",
                                                       "knn_both"},
            "backbones": {"resnet18", "resnet101", "efficientnet_lite0"}, "text encoders": {"hash", "minilm"}}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_registry_is_filled_by_its_package(kind):
    reg = REGISTRIES[kind]
    assert isinstance(reg, Registry)
    assert EXPECTED[kind] <= set(reg), f"{kind}: {sorted(reg)}"


@pytest.mark.parametrize("kind", ["models", "fusions", "heads", "baselines"])
def test_every_entry_names_its_class_and_says_what_it_is(kind):
    for name, entry in REGISTRIES[kind].items():
        assert entry.name == name and callable(entry.cls) and len(entry.description) > 10, (kind, name)


@pytest.mark.parametrize("kind", REGISTRIES)
def test_unknown_name_is_one_user_error(kind):
    with pytest.raises(SfError, match=f"unknown {REGISTRIES[kind].kind} 'nope'; choose from"):
        REGISTRIES[kind].entry("nope")


def test_an_empty_registry_fails_loudly():
    reg = Registry("widget", "sf.widgets")
    with pytest.raises(RuntimeError, match="widget registry is empty: import sf.widgets"):
        reg.entry("any")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(RuntimeError, match="registered twice"):
        HEADS.add("lstm", HEADS["lstm"])


def test_the_model_package_imports_first_without_a_cycle():
    """sf.forecast.models, imported first in a fresh interpreter (it once imported a module that imported it
    back), fills its registry and, through sf's model, the fusion and head registries."""
    code = ("import sf.forecast.models as m, sf.fusion as f, sf.forecast.heads as h; "
            "assert {'sf', 'gtm', 'ekambaram'} <= set(m.MODELS) and f.FUSIONS and h.HEADS")
    subprocess.run([sys.executable, "-c", code], check=True)
