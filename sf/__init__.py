"""sf: forecast e-commerce product sales from images, text and sales history.

The Python API (docs/api.md), imported lazily so `import sf` and the `sf` command start fast:
    sf.FeatureStore(path), sf.extract(data, ...) -> FeatureStore           stage 1
    sf.Forecaster(model=, fusion=, head=, horizon=, seeds=, ...)            stage 2: fit / predict / evaluate /
                                                                             explain / save / load
    sf.ablate(store, data, ...), sf.compare(store, data, ...) -> polars    the studies
    sf.demo_data(out, products=...) -> Path                                a synthetic catalogue
"""

__version__ = "0.1.0"

_API = ("FeatureStore", "Forecaster", "ablate", "compare", "demo_data")
__all__ = [*_API, "extract"]


def __getattr__(name: str):
    if name in _API:
        from sf import api

        return getattr(api, name)
    if name == "extract":  # the stage-1 package, which is also callable: sf.extract(data, ...) (see sf/extract)
        import importlib

        return importlib.import_module("sf.extract")
    raise AttributeError(f"module 'sf' has no attribute {name!r}")
