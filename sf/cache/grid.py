"""Image grids as stage 2 holds them: only rows with an image are kept, in memory or read from the store.

A `SparseGrid` is an (N, R, C) grid of which row i is `data[slot[i]]`, or zeros where `slot[i] == -1`.
Selecting rows (`grid[idx]`) only selects slots, so the training, validation and test parts of a run share
one copy of the grid rows. `data` is a float16 array in memory, or a `GridFile` that reads the store's grid
rows when a batch asks for them (stage 2 streaming, see sf.cache.budget): one h5py handle per process
(handles do not survive a fork), HDF5's chunk cache sized to the budget, reads in increasing slot order.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from sf.cache import schema as S
from sf.cache.damage import reading


class GridFile:
    """The store's /image/grid rows, read on demand; picklable (a process reopens the file itself)."""

    def __init__(self, path: str | Path, cache_bytes: int = 64 * 2**20):
        self.path, self.cache_bytes = Path(path), int(cache_bytes)
        with reading(self.path), h5py.File(self.path, "r") as f:
            ds = f[S.IMAGE_GRID]
            self.shape, self.dtype, self.chunk_rows = ds.shape, ds.dtype, ds.chunks[0] if ds.chunks else 1
        self._pid, self._file = None, None

    def __getstate__(self):
        return {"path": self.path, "cache_bytes": self.cache_bytes, "shape": self.shape, "dtype": self.dtype,
                "chunk_rows": self.chunk_rows, "_pid": None, "_file": None}

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def _dataset(self) -> h5py.Dataset:
        if self._pid != os.getpid():
            self._file = h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes, rdcc_nslots=100_003)
            self._pid = os.getpid()
        return self._file[S.IMAGE_GRID]

    def read(self, slots: np.ndarray) -> np.ndarray:
        """Rows `slots` (any order, repeats allowed), as float16 (len(slots), R, C)."""
        slots = np.asarray(slots, dtype=np.int64)
        out = np.empty((len(slots), *self.shape[1:]), dtype=self.dtype)
        if len(slots) == 0:
            return out
        order, inverse = np.unique(slots, return_inverse=True)
        ds = self._dataset()
        with reading(self.path):
            # Runs of neighbouring slots are read as one slice: a chunk is decoded (and checksummed) once.
            got = np.empty((len(order), *self.shape[1:]), dtype=self.dtype)
            breaks = np.flatnonzero(np.diff(order) > 1) + 1
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(order)]):
                ds.read_direct(got, np.s_[int(order[lo]):int(order[hi - 1]) + 1], np.s_[lo:hi])
        out[:] = got[inverse.reshape(-1)]
        return out

    def __getitem__(self, idx) -> np.ndarray:
        return self.read(np.arange(len(self))[idx])


class SparseGrid:
    """(N, R, C) grid rows by slot; see the module docstring."""

    ndim = 3

    def __init__(self, slot: np.ndarray, data: np.ndarray | GridFile):
        self.slot = np.asarray(slot, dtype=np.int64)
        self.data = data

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.slot), *self.data.shape[1:])

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def streamed(self) -> bool:
        return isinstance(self.data, GridFile)

    def __len__(self) -> int:
        return len(self.slot)

    def __getitem__(self, idx):
        if isinstance(idx, tuple):  # region/channel selections: on the dense rows
            return np.asarray(self)[idx]
        rows = np.arange(len(self))[idx]
        if np.ndim(rows) == 0:
            return self.rows(np.array([rows]))[0]
        return SparseGrid(self.slot[rows], self.data)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Dense float16 rows `rows` (zeros where a row has no grid)."""
        slot = self.slot[np.asarray(rows, dtype=np.int64)]
        out = np.zeros((len(slot), *self.shape[1:]), dtype=self.dtype)
        have = slot >= 0
        if have.any():
            out[have] = self.read(slot[have])
        return out

    def read(self, slots: np.ndarray) -> np.ndarray:
        return self.data.read(slots) if isinstance(self.data, GridFile) else self.data[slots]

    def __array__(self, dtype=None, copy=None):
        a = self.rows(np.arange(len(self)))
        return a if dtype is None else a.astype(dtype)

    def in_memory(self) -> "SparseGrid":
        """The same rows with only the grid rows they use, in memory."""
        have = self.slot >= 0
        slot = np.full(len(self), -1, dtype=np.int64)
        slot[have] = np.arange(int(have.sum()))
        return SparseGrid(slot, self.read(self.slot[have]))


def concat_grids(parts: list[SparseGrid]) -> SparseGrid:
    """Rows of several grids one after the other; grids over the same data keep sharing it."""
    if all(p.data is parts[0].data for p in parts):
        return SparseGrid(np.concatenate([p.slot for p in parts]), parts[0].data)
    mem = [p.in_memory() for p in parts]
    offsets = np.cumsum([0] + [len(m.data) for m in mem[:-1]])
    slot = np.concatenate([np.where(m.slot >= 0, m.slot + o, -1) for m, o in zip(mem, offsets)])
    return SparseGrid(slot, np.concatenate([m.data for m in mem]))


def from_dense(grid: np.ndarray, has: np.ndarray) -> SparseGrid:
    """A dense (N, R, C) grid as a SparseGrid holding rows `has` only."""
    has = np.asarray(has, dtype=bool)
    slot = np.full(len(has), -1, dtype=np.int64)
    slot[has] = np.arange(int(has.sum()))
    return SparseGrid(slot, np.ascontiguousarray(grid[has]))
