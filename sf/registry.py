"""Name → entry registries, as timm does for its models: one class behind all six of sf's.

    models      sf.forecast.models     (Entry: the class, a description)
    fusions     sf.fusion              (FusionEntry: + which modalities it reads)
    heads       sf.forecast.heads      (HeadEntry: + whether it is causal)
    baselines   sf.forecast.baselines  (Entry)
    backbones   sf.extract.backbones   (Backbone: channels, input size, preprocessing, weights)
    text encoders sf.extract.text      (TextEncoderSpec: dim, availability)

A registry is defined in its package's `base` module (or the module of its entries), filled by the modules
that import it, and read through the package, whose import fills it once; no module imports its own package
back. `register` is the class decorator, `add` registers an entry object; `entry`/`create` give one error for
an unknown name, and a loud one when the registry was read before its package filled it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from sf.errors import SfError

E = TypeVar("E")


@dataclass(frozen=True)
class Entry:
    """What a class registry records of each name (fusions and heads add their own fields)."""

    name: str
    cls: Callable
    description: str


class Registry(dict[str, E], Generic[E]):
    def __init__(self, kind: str, package: str, entry: Callable[..., E] = Entry):
        super().__init__()
        self.kind, self.package, self.make_entry = kind, package, entry

    def register(self, name: str, description: str, **fields):
        """Class decorator: `@REGISTRY.register("name", "what it is", field=...)`."""

        def deco(cls):
            self.add(name, self.make_entry(name, cls, description, **fields))
            return cls

        return deco

    def add(self, name: str, entry: E) -> E:
        if name in self:
            raise RuntimeError(f"{self.kind} {name!r} is registered twice")
        self[name] = entry
        return entry

    def entry(self, name: str) -> E:
        if not self:
            raise RuntimeError(f"the {self.kind} registry is empty: import {self.package} (which fills it) first")
        if name not in self:
            raise SfError(f"unknown {self.kind} {name!r}; choose from {', '.join(sorted(self))}")
        return self[name]

    def create(self, name: str, *args, **kwargs):
        return self.entry(name).cls(*args, **kwargs)
