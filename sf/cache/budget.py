"""How much memory stage 2 may hold a store's image grids in; larger grids are read from the store per batch.

`--memory-budget` (sf's global option) or SF_MEMORY_BUDGET: a size ("2G", "512M", "0" = always stream) or
"auto" (the default): half of the memory the OS reports available when the store is opened, since the
batches, the model and the other parts of the inputs need the rest. Kept in the environment so the forked
and spawned workers of a study see the same budget.
"""

from __future__ import annotations

import os
import re

from sf.errors import SfError

ENV = "SF_MEMORY_BUDGET"
AUTO_SHARE = 0.5
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str, setting: str = "--memory-budget") -> int | None:
    """"2G" -> bytes; "auto" -> None."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    if t == "AUTO":
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([KMGT]?)", t)
    if not m:
        raise SfError(f"{setting}: {text!r} is not a size (e.g. 2G, 512M, 0) or auto")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def set_memory_budget(text: str | None) -> None:
    if text is not None:
        parse_size(text)
        os.environ[ENV] = str(text)


def available_memory() -> int:
    """MemAvailable from /proc/meminfo (bytes); a cgroup limit below it wins."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limit = open(path).read().strip()
        except OSError:
            continue
        if limit.isdigit() and (avail is None or int(limit) < avail):
            avail = int(limit)
    return avail if avail is not None else 8 * 2**30


def memory_budget() -> int:
    """Bytes of image grid stage 2 may hold in memory."""
    size = parse_size(os.environ.get(ENV, "auto"), ENV)
    return int(AUTO_SHARE * available_memory()) if size is None else size
