"""The HDF5 feature store layout: the one contract between `sf extract` and everything after it.

    /keys            (N,)        utf-8 str   product_id, or image path relative to --images without extension
    /content_hash    (N,)        utf-8 str   sha256 of the image file bytes + text ("" parts when absent)
    /status          (N,)        utf-8 str   ok | no_image | unreadable
    /reason          (N,)        utf-8 str   why a row is not ok ("" when ok)
    /image/pooled    (N, C)      float16     global-average-pooled last conv stage (zeros unless status == ok)
    /image/grid      (M, R, C)   float16     last conv stage, R = grid_h * grid_w regions, one row per ok row only
                                             (absent in pooled-only mode; schema 1 stored N rows, zeros unless ok)
    /image/grid_slot (N,)        int64       row's index into /image/grid, -1 without an image (schema >= 2)
    /text/tokens     (N, L, D)   float16     word vectors v_i^T, zero-padded to L (absent without text)
    /text/mask       (N, L)      uint8       1 where a token is real
    /text/pooled     (N, D)      float16     sentence vector
    /image/decoder   (N,)        uint8       which decoder made an ok row: DECODERS[code] (0 = none / not recorded)
    /input_index     (N,)        int64       row's position in the input listing of the run that wrote it
                                             (lets `sf cache merge` restore the unsharded order)

Root attributes (FINGERPRINT_KEYS decide compatibility; the rest describe the run):
    schema_version, backbone, weights, weights_sha256, preprocessing (JSON), grid_h, grid_w, channels,
    text_encoder, text_encoder_sha256, text_dim, text_len, pooled_only, fingerprint, complete,
    created, versions (JSON), random_weights.
    Also written by `sf extract`: weights_source, weights_seed, weights_path, image_size, precision,
    device, shard ("I/N" or ""), input_sha256, updated, strings_sha256 (sha256 over the string
    datasets, which HDF5 cannot checksum per chunk; `sf cache verify` recomputes it).

`preprocessing` is JSON {"image": {...}, "text": {...}}: everything that turns a file or a
description into the tensor the encoder sees (size, fit, interpolation, mean/std, max tokens).

Numeric datasets are chunked along rows (one chunk ~ 256 KiB), fletcher32-checksummed and
resizable (maxshape=(None, ...)). Rows are in input order. A store is written whole to
`NAME.h5.tmp` and renamed into place; rows of an unfinished run wait in `NAME.h5.parts/`.
"""

from __future__ import annotations

import hashlib
import json

SCHEMA_VERSION = 2  # 2: sparse grids (/image/grid_slot); 1: a dense grid row per store row, still read
READABLE_VERSIONS = (1, 2)
# Versions whose features are the same (only the layout differs) share a fingerprint, so a run trained on a
# schema-1 store applies to the same store converted by `sf cache merge`.
FEATURE_VERSION = {1: 1, 2: 1}

STATUS_OK = "ok"
STATUS_NO_IMAGE = "no_image"
STATUS_UNREADABLE = "unreadable"

KEYS = "keys"
CONTENT_HASH = "content_hash"
STATUS = "status"
REASON = "reason"
IMAGE_POOLED = "image/pooled"
IMAGE_GRID = "image/grid"
IMAGE_GRID_SLOT = "image/grid_slot"
IMAGE_DECODER = "image/decoder"
TEXT_TOKENS = "text/tokens"
TEXT_MASK = "text/mask"
TEXT_POOLED = "text/pooled"
INPUT_INDEX = "input_index"

STRING_DATASETS = (KEYS, CONTENT_HASH, STATUS, REASON)

# /image/decoder codes. pillow: sf.extract.images (CPU); nvjpeg: torchvision.io.decode_jpeg on CUDA;
# libjpeg: the same call on CPU. Stores written before the column existed lack it (readers treat it as 0).
DECODERS = ("", "pillow", "nvjpeg", "libjpeg")


def decoder_code(name: str) -> int:
    return DECODERS.index(name)

# What must match for two stores (or a store and a trained model) to be interchangeable.
FINGERPRINT_KEYS = (
    "schema_version",
    "backbone",
    "weights",
    "weights_sha256",
    "preprocessing",
    "text_encoder",
    "text_encoder_sha256",
)


def fingerprint(attrs: dict) -> str:
    """Short stable hash of the FINGERPRINT_KEYS of a store's attributes."""
    payload = {k: _fingerprint_value(attrs, k) for k in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_diff(a: dict, b: dict) -> list[str]:
    """Human-readable list of the fingerprint fields that differ between two attribute dicts."""
    return [f"{k}: {_plain(a.get(k))!r} != {_plain(b.get(k))!r}" for k in FINGERPRINT_KEYS
            if _fingerprint_value(a, k) != _fingerprint_value(b, k)]


def _fingerprint_value(attrs: dict, key: str):
    v = _plain(attrs.get(key))
    return FEATURE_VERSION.get(v, v) if key == "schema_version" else v


def version(attrs: dict) -> int:
    """A store's schema version (1 for stores that predate sparse grids)."""
    return int(_plain(attrs.get("schema_version", 1)) or 1)


def sparse_grid(attrs: dict) -> bool:
    """Whether the store keeps grid rows only for rows with an image (/image/grid_slot)."""
    return version(attrs) >= 2 and not attrs.get("pooled_only", False)


def _plain(v):
    if hasattr(v, "item"):  # numpy scalars read back from HDF5
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode()
    return v
