"""Name → class registries (fusions, heads, models, baselines), as timm does for its models.

A registry is a dict of typed entries, so callers list, look up and describe by name; `register` is the
class decorator each module uses on itself, `entry`/`create` give one error for an unknown name.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from sf.errors import SfError

E = TypeVar("E")


class Registry(dict[str, E], Generic[E]):
    def __init__(self, kind: str, entry: Callable[..., E]):
        super().__init__()
        self.kind, self.make_entry = kind, entry

    def register(self, name: str, description: str, **fields):
        """Class decorator: `@REGISTRY.register("name", "what it is", field=...)`."""

        def deco(cls):
            self[name] = self.make_entry(name, cls, description, **fields)
            return cls

        return deco

    def entry(self, name: str) -> E:
        if name not in self:
            raise SfError(f"unknown {self.kind} {name!r}; choose from {', '.join(sorted(self))}")
        return self[name]

    def create(self, name: str, *args, **kwargs):
        return self.entry(name).cls(*args, **kwargs)
