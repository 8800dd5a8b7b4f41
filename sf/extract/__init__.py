"""Stage 1: frozen image backbones and text encoders -> the HDF5 feature store (sf.cache).

`sf.extract(data, ...)` itself is callable: it is the Python API's stage 1 (`sf.api.extract`), so notebooks
write `sf.extract("data/mine", backbone="efficientnet_lite0")` while `sf.extract.job` stays this package.

Public API (imported lazily, so `import sf.extract.images` stays light):
    extract_dataset(data, out=None, like=None, **ExtractConfig fields) -> Path
    run(inputs, out, ExtractConfig) -> ExtractReport, check_outcome(report, strict)
    config_from_attrs(store or attrs) -> ExtractConfig   (re-create a store's extractor)
    best_available_backbone() -> (backbone, weights);  best_available_text_encoder() -> name
"""

from __future__ import annotations

import sys as _sys
import types as _types

_EXPORTS = {
    "ExtractConfig": "sf.extract.job",
    "ExtractReport": "sf.extract.job",
    "extract_dataset": "sf.extract.job",
    "config_from_attrs": "sf.extract.job",
    "run": "sf.extract.job",
    "check_outcome": "sf.extract.job",
    "build_extractor": "sf.extract.job",
    "best_available_backbone": "sf.extract.backbones",
    "best_available_text_encoder": "sf.extract.text",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sf.extract' has no attribute {name!r}")


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        from sf.api import extract

        return extract(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
