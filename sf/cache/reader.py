"""Read a feature store fully into memory once, so training never touches HDF5 per batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.errors import SfError


@dataclass
class Features:
    path: Path
    attrs: dict
    keys: list[str]
    status: np.ndarray  # (N,) str
    reason: np.ndarray  # (N,) str
    image_pooled: np.ndarray  # (N, C) float16
    image_grid: np.ndarray | None  # (N, R, C) float16; None in pooled-only stores
    text_tokens: np.ndarray | None  # (N, L, D) float16
    text_mask: np.ndarray | None  # (N, L) bool
    text_pooled: np.ndarray | None  # (N, D) float16
    content_hash: np.ndarray | None = None  # (N,) str: sha256 of the image bytes + text each row was made from

    @property
    def fingerprint(self) -> str:
        return str(self.attrs["fingerprint"])

    @property
    def has_image(self) -> np.ndarray:
        return self.status == S.STATUS_OK

    @property
    def has_text(self) -> np.ndarray:
        if self.text_mask is None:
            return np.zeros(len(self.keys), dtype=bool)
        return self.text_mask.any(axis=1)

    def rows(self, keys: list[str]) -> np.ndarray:
        """Row indices of `keys`; a key the store lacks is an error naming it and the store."""
        index = {k: i for i, k in enumerate(self.keys)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise SfError(
                f"{self.path}: {len(missing)} product(s) not in the feature store (first: {missing[0]!r}); "
                f"run `sf extract --data DIR --out {self.path}` to add them"
            )
        return np.array([index[k] for k in keys], dtype=np.int64)


def read_attrs(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        if path.with_name(path.name + ".parts").is_dir():
            raise SfError(f"{path}: extraction is still running or was killed before finishing; re-run the same `sf extract` to finish it")
        raise SfError(f"{path}: feature store not found (make one with `sf extract`)")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: S._plain(v) for k, v in f.attrs.items()}
            is_store = S.KEYS in f and S.STATUS in f and "schema_version" in attrs
    except OSError as e:
        raise SfError(f"{path}: not a readable HDF5 feature store ({e})") from None
    if not is_store:
        raise SfError(f"{path}: an HDF5 file but not an sf feature store (no {S.KEYS}/{S.STATUS} datasets or schema_version)")
    return attrs


def _strings(ds) -> np.ndarray:
    return np.array(ds.asstr()[()], dtype=object)


def load_features(path: str | Path, allow_incomplete: bool = False) -> Features:
    path = Path(path)
    attrs = read_attrs(path)
    if attrs.get("schema_version") != S.SCHEMA_VERSION:
        raise SfError(f"{path}: store schema version {attrs.get('schema_version')} is not {S.SCHEMA_VERSION}; re-run `sf extract`")
    if not attrs.get("complete", False) and not allow_incomplete:
        raise SfError(f"{path}: store is incomplete (extraction was interrupted); re-run the same `sf extract` to finish it")
    with h5py.File(path, "r") as f:
        def opt(name, dtype=None):
            if name not in f:
                return None
            a = f[name][()]
            return a.astype(dtype) if dtype is not None else a

        return Features(
            path=path,
            attrs=attrs,
            keys=list(_strings(f[S.KEYS])),
            status=_strings(f[S.STATUS]),
            reason=_strings(f[S.REASON]),
            image_pooled=f[S.IMAGE_POOLED][()],
            image_grid=opt(S.IMAGE_GRID),
            text_tokens=opt(S.TEXT_TOKENS),
            text_mask=opt(S.TEXT_MASK, bool),
            text_pooled=opt(S.TEXT_POOLED),
            content_hash=_strings(f[S.CONTENT_HASH]) if S.CONTENT_HASH in f else None,
        )
