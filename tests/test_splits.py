"""Splits: sizes, disjointness, release-date order with ties kept together, the products table's column."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sf.cache.reader import load_features
from sf.data.contract import load_dataset
from sf.errors import SfError
from sf.forecast.inputs import build_inputs
from sf.forecast.splits import make_split, resolve_kind
from tests.fakes import make_dataset


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    root, store = make_dataset(tmp_path_factory.mktemp("splits") / "d", n=200, horizon=4)
    return build_inputs(load_dataset(root), load_features(store))


def check_partition(split, n):
    allidx = np.concatenate([split["train"], split["val"], split["test"]])
    assert sorted(allidx.tolist()) == list(range(n))


def test_random_split_is_seeded_and_sized(inp):
    a, b, c = (make_split(inp, "random", seed=s) for s in (0, 0, 1))
    check_partition(a, len(inp))
    assert [len(a[k]) for k in ("train", "val", "test")] == [140, 40, 20]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_time_split_puts_latest_releases_last_and_keeps_ties_together(inp):
    s = make_split(inp, "time")
    check_partition(s, len(inp))
    rel = {k: inp.release[v] for k, v in s.items()}
    assert rel["train"].max() < rel["val"].min() and rel["val"].max() < rel["test"].min()
    assert len(s["test"]) >= 20 and len(s["val"]) >= 40  # shares reached, whole release days added
    assert len(set(rel["train"]) & set(rel["val"])) == 0


def test_time_split_keeps_undated_products_in_train(inp):
    release = inp.release.copy()
    release[:10] = np.datetime64("NaT")
    s = make_split(replace(inp, release=release), "time")
    assert set(range(10)) <= set(s["train"].tolist())


def test_auto_means_time_with_dates_and_random_without(inp):
    assert resolve_kind(inp, "auto") == "time"
    undated = replace(inp, release=np.full(len(inp), np.datetime64("NaT"), dtype="datetime64[D]"))
    assert resolve_kind(undated, "auto") == "random"
    with pytest.raises(SfError, match="release dates"):
        make_split(undated, "time")


def test_column_split_follows_the_products_table(inp):
    with pytest.raises(SfError, match="split"):
        make_split(replace(inp, split=None), "column")
    col = np.array(["train", "val", "test", "train"] * 50, dtype=object)
    s = make_split(replace(inp, split=col), "column")
    assert np.array_equal(s["val"], np.arange(1, 200, 4)) and np.array_equal(s["test"], np.arange(2, 200, 4))


def test_bad_fractions_are_refused(inp):
    with pytest.raises(SfError, match="fractions"):
        make_split(inp, "random", fractions=(0.5, 0.2, 0.1))


def test_attribute_values_only_held_out_products_have_become_unknown(inp):
    from sf.forecast.inputs import with_training_vocab

    split = make_split(inp, "random", seed=0)
    a = inp.attributes.copy()
    name = inp.attribute_names[0]
    a[split["test"][0], 0] = len(inp.attribute_vocab[name]) + 1  # a value no training product has
    held = replace(inp, attributes=a, attribute_vocab={**inp.attribute_vocab, name: [*inp.attribute_vocab[name], "unseen"]})
    out = with_training_vocab(held, split["train"])
    assert "unseen" not in out.attribute_vocab[name]
    assert out.attributes[split["test"][0], 0] == 0
    # Training rows keep their values: decoding a code through the new vocabulary gives the same value back.
    for j, n in enumerate(inp.attribute_names):
        for r in split["train"][:20]:
            old, new = held.attributes[r, j], out.attributes[r, j]
            assert (old == 0) == (new == 0)
            if old:
                assert held.attribute_vocab[n][old - 1] == out.attribute_vocab[n][new - 1]
